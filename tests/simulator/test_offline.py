"""Offline events: coalescing, reservation with clear=0, clear, error, connectors, auth type."""

from __future__ import annotations

import hashlib
import json

from deal_monitor.simulator import PortalSimulator

from .conftest import app_call, call, fixture_json, make_app


def _setup(sim: PortalSimulator, connector: str | None = None) -> str:
    token = make_app(sim)["access_token"]
    for event in ("ONCRMDEALADD", "ONCRMDEALUPDATE"):
        params = {"event": event, "event_type": "offline"}
        if connector:
            params["auth_connector"] = connector
        assert app_call(sim, "event.bind", token, params).json()["result"] is True
    return token


def _get(sim: PortalSimulator, token: str, **params) -> dict:
    response = app_call(sim, "event.offline.get", token, params)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_rows_coalesce_per_event_and_deal(sim: PortalSimulator) -> None:
    token = _setup(sim)
    deal_id = sim.portal.add_deal({})
    for i in range(20):
        sim.portal.update_deal(deal_id, {"TITLE": f"v{i}"})
    other = sim.portal.add_deal({})
    rows = app_call(sim, "event.offline.list", token).json()
    assert rows["total"] == 3
    names = [(r["EVENT_NAME"], r["EVENT_DATA"]["FIELDS"]["ID"]) for r in rows["result"]]
    assert names == [("ONCRMDEALADD", deal_id), ("ONCRMDEALUPDATE", deal_id), ("ONCRMDEALADD", other)]
    row = rows["result"][1]
    expected_mid = hashlib.md5(
        ("ONCRMDEALUPDATE|" + json.dumps({"FIELDS": {"ID": deal_id}}, separators=(",", ":"))).encode()
    ).hexdigest()
    assert row["MESSAGE_ID"] == expected_mid and row["PROCESS_ID"] == "" and row["ERROR"] == "0"
    assert row["EVENT_ADDITIONAL"] == {"user_id": 1}


def test_get_with_clear_deletes_and_shape_matches_docs(sim: PortalSimulator) -> None:
    token = _setup(sim)
    sim.portal.add_deal({})
    result = _get(sim, token)
    sample = fixture_json("event_offline_get_docs.json")["result"]
    assert list(result) == list(sample) and result["process_id"] is None
    assert list(result["events"][0]) == list(sample["events"][0])
    assert _get(sim, token)["events"] == []


def test_reservation_hides_rows_and_survives_reread(sim: PortalSimulator) -> None:
    token = _setup(sim)
    deal_ids = [sim.portal.add_deal({}) for _ in range(3)]
    reserved = _get(sim, token, clear=0, limit=2)
    process_id = reserved["process_id"]
    assert isinstance(process_id, str) and len(process_id) == 32
    assert [e["EVENT_DATA"]["FIELDS"]["ID"] for e in reserved["events"]] == deal_ids[:2]
    other_reader = _get(sim, token, clear=0)
    assert [e["EVENT_DATA"]["FIELDS"]["ID"] for e in other_reader["events"]] == deal_ids[2:]
    sim.portal.update_deal(deal_ids[0], {"TITLE": "после резерва"})
    again = _get(sim, token, clear=0, process_id=process_id)  # e.g. after a crash
    assert again["process_id"] == process_id
    assert [e["ID"] for e in again["events"]] == [e["ID"] for e in reserved["events"]]
    cleared = app_call(sim, "event.offline.clear", token, {"process_id": process_id})
    assert cleared.json()["result"] is True
    assert [r["PROCESS_ID"] for r in sim.offline.list_rows()].count(process_id) == 0
    assert _get(sim, token, clear=0, process_id=process_id)["events"] == []
    fresh = _get(sim, token)["events"]
    assert [(e["EVENT_NAME"], e["EVENT_DATA"]["FIELDS"]["ID"]) for e in fresh] == [
        ("ONCRMDEALUPDATE", deal_ids[0])]


def test_clear_by_message_id_and_error_marking(sim: PortalSimulator) -> None:
    token = _setup(sim)
    a, b = sim.portal.add_deal({}), sim.portal.add_deal({})
    batch = _get(sim, token, clear=0)
    process_id = batch["process_id"]
    by_deal = {e["EVENT_DATA"]["FIELDS"]["ID"]: e for e in batch["events"]}
    app_call(sim, "event.offline.clear", token,
             {"process_id": process_id, "message_id": [by_deal[a]["MESSAGE_ID"]]})
    marked = app_call(sim, "event.offline.error", token,
                      {"process_id": process_id, "message_id": [by_deal[b]["MESSAGE_ID"]]})
    assert marked.json()["result"] is True
    assert _get(sim, token, clear=0, process_id=process_id)["events"] == []
    assert _get(sim, token)["events"] == []  # error rows are not in the normal stream
    errors = _get(sim, token, error=1)["events"]
    assert [e["EVENT_DATA"]["FIELDS"]["ID"] for e in errors] == [b]
    bad = app_call(sim, "event.offline.clear", token, {"process_id": process_id, "message_id": ["short"]})
    assert bad.status_code == 400


def test_filter_order_and_limit(sim: PortalSimulator) -> None:
    token = _setup(sim)
    ids = [sim.portal.add_deal({}) for _ in range(4)]
    sim.portal.update_deal(ids[1], {"TITLE": "x"})
    only_updates = _get(sim, token, clear=0, filter={"EVENT_NAME": "ONCRMDEALUPDATE"})
    assert [e["EVENT_NAME"] for e in only_updates["events"]] == ["ONCRMDEALUPDATE"]
    newest_first = _get(sim, token, clear=0, order={"ID": "DESC"}, limit=2)
    assert [e["EVENT_DATA"]["FIELDS"]["ID"] for e in newest_first["events"]] == [ids[3], ids[2]]
    zero = app_call(sim, "event.offline.get", token, {"limit": 0})
    assert zero.status_code == 400


def test_own_changes_with_same_connector_are_not_queued(sim: PortalSimulator) -> None:
    token = _setup(sim, connector="deal-monitor")
    own = app_call(sim, "crm.deal.add", token, {"fields": {"TITLE": "моя"},
                                                "auth_connector": "deal-monitor"}).json()["result"]
    foreign = app_call(sim, "crm.deal.add", token, {"fields": {"TITLE": "без коннектора"}}).json()["result"]
    by_user = sim.portal.add_deal({})
    by_webhook = call(sim, "crm.deal.add", {"fields": {"TITLE": "вебхук"}}).json()["result"]
    assert _get(sim, token)["events"] == []  # no connector given: only connector-less rows
    rows = _get(sim, token, auth_connector="deal-monitor")["events"]
    assert sorted(e["EVENT_DATA"]["FIELDS"]["ID"] for e in rows) == sorted([foreign, by_user, by_webhook])
    assert own not in [e["EVENT_DATA"]["FIELDS"]["ID"] for e in rows]


def test_offline_methods_refuse_webhooks(sim: PortalSimulator) -> None:
    body = fixture_json("errors_examples.json")["WRONG_AUTH_TYPE"]["body"]
    for method in ("event.offline.get", "event.offline.list", "event.offline.clear",
                   "event.offline.error", "event.get", "event.unbind"):
        response = call(sim, method, {"process_id": "x"})
        assert response.status_code == 403 and response.json() == body, method


def test_onofflineevent_notification(sim: PortalSimulator, receiver) -> None:
    token = _setup(sim)
    app_call(sim, "event.bind", token, {"event": "ONOFFLINEEVENT", "handler": receiver.url,
                                        "options": {"minTimeout": 60}})
    sim.portal.add_deal({})
    sim.portal.add_deal({})  # within minTimeout: no second notification
    assert receiver.wait_for(1) and sim.wait_deliveries(5)
    assert len(receiver.requests) == 1
    assert b"event=ONOFFLINEEVENT" in receiver.requests[0]["body"]
    assert b"auth%5Brefresh_token%5D=" in receiver.requests[0]["body"]
