"""Event delivery in the real wire format to a local receiver; no retries; disabled delivery."""

from __future__ import annotations

import time

from deal_monitor.bitrix import phpform
from deal_monitor.simulator import PortalSimulator

from .conftest import Receiver, app_call, call, fixture_json, fixture_text, make_app


def _keys(form: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in form.items():
        name = f"{prefix}[{key}]" if prefix else key
        out.extend(_keys(value, name) if isinstance(value, dict) else [name])
    return out


def _decode(body: bytes) -> dict:
    return phpform.decode(body, max_fields=100, max_depth=4)


def test_outgoing_webhook_wire_format_matches_fixture(sim: PortalSimulator, receiver: Receiver) -> None:
    handler_id = sim.add_outgoing_webhook(receiver.url)
    deal_id = sim.portal.add_deal({"TITLE": "Событие"})
    assert receiver.wait_for(1)
    request = receiver.requests[0]
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = _decode(request["body"])
    sample = _decode(fixture_text("event_oncrmdealadd_outgoing_webhook_DERIVED.urlencoded.txt"))
    assert _keys(form) == _keys(sample)
    assert form["event"] == "ONCRMDEALADD" and form["data"]["FIELDS"]["ID"] == str(deal_id)
    assert form["event_handler_id"] == str(handler_id)
    assert abs(int(form["ts"]) - time.time()) < 5
    auth = form["auth"]
    assert auth["application_token"] == sim.application_token and auth["member_id"] == sim.member_id
    assert auth["domain"] == sim.domain and auth["client_endpoint"] == sim.url + "/rest/"
    assert request["body"].startswith(b"event=ONCRMDEALADD&event_handler_id=")
    assert b"data%5BFIELDS%5D%5BID%5D=" in request["body"]


def test_update_delete_and_product_rows_fire_events(sim: PortalSimulator, receiver: Receiver) -> None:
    deal_id = sim.portal.add_deal({})
    sim.add_outgoing_webhook(receiver.url)
    call(sim, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": "x"}})
    call(sim, "crm.deal.productrows.set", {"id": deal_id, "rows": [{"PRODUCT_NAME": "a", "PRICE": 1}]})
    sim.portal.delete_deal(deal_id)
    assert receiver.wait_for(3)
    events = [_decode(r["body"])["event"] for r in receiver.requests]
    assert events == ["ONCRMDEALUPDATE", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"]
    assert all(d.ok and d.deal_id == deal_id for d in sim.deliveries)


def test_app_handler_gets_app_envelope_with_usable_token(sim: PortalSimulator, receiver: Receiver) -> None:
    tokens = make_app(sim)
    bound = app_call(sim, "event.bind", tokens["access_token"],
                     {"event": "onCrmDealUpdate", "handler": receiver.url})
    assert bound.json()["result"] is True
    deal_id = sim.portal.add_deal({})
    sim.portal.update_deal(deal_id, {"TITLE": "обновлено"}, user_id=6)
    assert receiver.wait_for(1)
    form = _decode(receiver.requests[0]["body"])
    real = _decode(fixture_text("event_oncrmcontactadd_app_real.urlencoded.txt"))
    assert _keys(form) == _keys(real)
    assert form["event"] == "ONCRMDEALUPDATE" and form["auth"]["user_id"] == "6"
    assert form["auth"]["application_token"] == sim.application_token
    assert form["auth"]["expires_in"] == "3600" and form["auth"]["status"] == "L"
    event_token = form["auth"]["access_token"]
    got = app_call(sim, "crm.deal.get", event_token, {"id": deal_id})
    assert got.status_code == 200 and got.json()["result"]["TITLE"] == "обновлено"


def test_robot_change_carries_no_user_token(sim: PortalSimulator, receiver: Receiver) -> None:
    tokens = make_app(sim)
    app_call(sim, "event.bind", tokens["access_token"], {"event": "ONCRMDEALADD", "handler": receiver.url})
    with sim.act_as_robot():
        sim.portal.add_deal({})
    assert receiver.wait_for(1)
    auth = _decode(receiver.requests[0]["body"])["auth"]
    assert set(auth) == {"domain", "member_id", "application_token"}


def test_move_to_category_only_reaches_apps(sim: PortalSimulator, receiver: Receiver) -> None:
    other = Receiver()
    try:
        tokens = make_app(sim)
        app_call(sim, "event.bind", tokens["access_token"],
                 {"event": "ONCRMDEALMOVETOCATEGORY", "handler": receiver.url})
        sim.add_outgoing_webhook(other.url)
        deal_id = sim.portal.add_deal({})
        sim.portal.move_deal_to_category(deal_id, 1)
        assert sim.wait_deliveries(5)
        assert [_decode(r["body"])["event"] for r in other.requests] == ["ONCRMDEALADD"]
        form = _decode(receiver.requests[0]["body"])
        assert form["data"]["FIELDS"] == {"ID": str(deal_id), "CATEGORY_ID": "1", "STAGE_ID": "C1:NEW"}
    finally:
        other.close()


def test_delivery_disabled_drops_events_for_good(sim: PortalSimulator, receiver: Receiver) -> None:
    sim.add_outgoing_webhook(receiver.url)
    sim.delivery_enabled = False
    lost = sim.portal.add_deal({})
    assert sim.wait_deliveries(2)
    assert receiver.requests == []
    dropped = sim.deliveries
    assert len(dropped) == 1 and dropped[0].status is None and dropped[0].error
    assert dropped[0].deal_id == lost
    sim.delivery_enabled = True
    kept = sim.portal.add_deal({})
    assert receiver.wait_for(1) and sim.wait_deliveries(5)
    time.sleep(0.1)
    assert [_decode(r["body"])["data"]["FIELDS"]["ID"] for r in receiver.requests] == [str(kept)]


def test_failed_delivery_is_not_retried(sim: PortalSimulator) -> None:
    failing = Receiver(status=500)
    try:
        sim.add_outgoing_webhook(failing.url)
        sim.add_outgoing_webhook("http://127.0.0.1:9/unreachable")
        sim.portal.add_deal({})
        assert sim.wait_deliveries(10)
        time.sleep(0.2)
        assert len(failing.requests) == 1
        by_url = {d.url: d for d in sim.deliveries}
        assert by_url[failing.url].status == 500 and not by_url[failing.url].ok
        unreachable = by_url["http://127.0.0.1:9/unreachable"]
        assert unreachable.status is None and "Connection" in (unreachable.error or "")
    finally:
        failing.close()


def test_event_bind_rules(sim: PortalSimulator, receiver: Receiver) -> None:
    errors = fixture_json("errors_examples.json")
    from_webhook = call(sim, "event.bind", {"event": "ONCRMDEALADD", "handler": receiver.url})
    assert from_webhook.status_code == 403
    assert from_webhook.json() == errors["WRONG_AUTH_TYPE"]["body"]
    token = make_app(sim)["access_token"]
    params = {"event": "ONCRMDEALADD", "handler": receiver.url}
    assert app_call(sim, "event.bind", token, params).json()["result"] is True
    duplicate = app_call(sim, "event.bind", token, params)
    assert duplicate.status_code == 400
    assert duplicate.json() == errors["event_bind_duplicate_SOURCE_DERIVED"]["body"]
    unknown = app_call(sim, "event.bind", token, {"event": "ONNOTHING", "handler": receiver.url})
    assert unknown.json() == errors["ERROR_EVENT_NOT_FOUND"]["body"]
    local = app_call(sim, "event.bind", token, {"event": "ONCRMDEALADD",
                                                "handler": "http://localhost:8080/x"})
    assert local.json()["error"] == "ERROR_WRONG_HANDLER_URL"
    app_call(sim, "event.bind", token, {"event": "ONCRMDEALUPDATE", "event_type": "offline"})
    listed = app_call(sim, "event.get", token).json()["result"]
    assert listed == [
        {"event": "ONCRMDEALADD", "handler": receiver.url, "auth_type": "0", "offline": 0},
        {"event": "ONCRMDEALUPDATE", "connector_id": "", "offline": 1},
    ]
    gone = app_call(sim, "event.unbind", token, params).json()["result"]
    assert gone == {"count": 1}
