"""batch: $result chaining, per-command errors keyed by name, limits, halt, PHP arrays."""

from __future__ import annotations

import requests

from deal_monitor.bitrix import phpform
from deal_monitor.simulator import PortalSimulator

from .conftest import call, fixture_json

PAGE = "crm.deal.list?order[ID]=ASC&select[0]=ID&start=-1"


def _chain(pages: int, after: int = 0) -> dict[str, str]:
    cmd = {"p0": f"{PAGE}&filter[>ID]={after}"}
    for i in range(1, pages):
        cmd[f"p{i}"] = f"{PAGE}&filter[>ID]=$result[p{i - 1}][49][ID]"
    return cmd


def test_fifty_chained_pages_fetch_3000_deals_in_two_requests() -> None:
    with PortalSimulator(plan=(5, 0.5)) as sim:  # a tiny bucket: a batch must cost one request
        sim.portal.bulk_add(3000)
        sim.reset_stats()
        response = call(sim, "batch", {"halt": 0, "cmd": _chain(50)})
        assert response.status_code == 200
        body = response.json()["result"]
        seen = [int(row["ID"]) for i in range(50) for row in body["result"][f"p{i}"]]
        assert seen == list(range(1, 2501))
        assert body["result_error"] == []
        assert set(body["result_time"]) == {f"p{i}" for i in range(50)}
        assert sim.stats.http_requests == 1 and sim.stats.batch_requests == 1
        assert sim.stats.calls_by_method["crm.deal.list"] == 50
        assert sim.bucket is not None and sim.bucket.level <= 1.0

        rest = call(sim, "batch", {"halt": 0, "cmd": _chain(50, after=seen[-1])}).json()["result"]
        tail = [int(row["ID"]) for i in range(50) for row in rest["result"].get(f"p{i}", [])]
        assert seen + tail == list(range(1, 3001))
        assert rest["result"]["p10"] == []  # ran past the end: an empty page ...
        assert set(rest["result_error"]) == {f"p{i}" for i in range(11, 50)}  # ... then no [49]
        assert sim.stats.http_requests == 2


def test_form_encoded_batch_chain_and_missing_reference_fails_that_command(sim: PortalSimulator) -> None:
    sim.portal.bulk_add(70)
    form = phpform.encode({"halt": 0, "cmd": _chain(3)})
    response = requests.post(sim.webhook_url + "batch", data=form, timeout=10,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    body = response.json()["result"]
    assert [len(body["result"][k]) for k in ("p0", "p1")] == [50, 20]
    assert "p2" not in body["result"]  # p1 had no row 49: the reference cannot resolve
    assert body["result_error"]["p2"]["error_description"] == "Failed to get list. General error"


def test_errors_keyed_by_command_name_and_empty_sections(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({"TITLE": "Есть"})
    cmd = {"ok": f"crm.deal.get?id={deal_id}", "gone": "crm.deal.get?id=999999",
           "badid": "crm.deal.get?id=abc", "list": "crm.deal.list?select[]=ID",
           "unknown": "crm.nothing.here?id=1"}
    body = call(sim, "batch", {"halt": 0, "cmd": cmd}).json()
    result = body["result"]
    assert result["result"]["ok"]["ID"] == str(deal_id)
    assert result["result_error"] == {
        "gone": {"error": "", "error_description": "Not found"},
        "badid": {"error": "", "error_description": "ID is not defined or invalid."},
        "unknown": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"},
    }
    assert result["result_total"] == {"list": 1}
    assert result["result_next"] == []
    assert set(result["result_time"]) == {"ok", "list"}
    assert list(body["time"]) == list(fixture_json("batch_crm_dealcategory_stage_list_real.json")
                                       ["response"]["time"])


def test_numeric_keys_give_php_lists_like_the_real_capture(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({})
    body = call(sim, "batch", {"cmd": {"0": "crm.deal.get?id=0", "1": "crm.deal.get?id=424242",
                                       "2": f"crm.deal.get?ID={deal_id}&select[]=ID"}}).json()
    sample = fixture_json("batch_response_real_mixed_errors.json")["result"]
    assert body["result"]["result_error"] == sample["result_error"]
    assert body["result"]["result_total"] == sample["result_total"] == []
    assert body["result"]["result"] == {"2": sim.portal.get_deal(deal_id)}


def test_halt_stops_at_first_error(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({})
    cmd = {"a": f"crm.deal.get?id={deal_id}", "b": "crm.deal.get?id=999999",
           "c": f"crm.deal.update?id={deal_id}&fields[TITLE]=после"}
    body = call(sim, "batch", {"halt": 1, "cmd": cmd}).json()["result"]
    assert list(body["result"]) == ["a"] and list(body["result_error"]) == ["b"]
    assert sim.portal.get_deal(deal_id)["TITLE"] != "после"
    body = call(sim, "batch", {"halt": 0, "cmd": cmd}).json()["result"]
    assert body["result"]["c"] is True and sim.portal.get_deal(deal_id)["TITLE"] == "после"


def test_more_than_fifty_and_nested_batch_fail_per_command(sim: PortalSimulator) -> None:
    deal_id = sim.portal.add_deal({})
    cmd = {f"g{i}": f"crm.deal.get?id={deal_id}" for i in range(52)}
    cmd["nested"] = "batch?cmd[x]=crm.deal.get%3Fid%3D1"
    response = call(sim, "batch", {"cmd": cmd})
    assert response.status_code == 200
    body = response.json()["result"]
    assert len(body["result"]) == 50
    exceeded = {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"}
    assert body["result_error"] == {"g50": exceeded, "g51": exceeded, "nested": exceeded}
    small = call(sim, "batch", {"cmd": {"nested": "batch?cmd[x]=crm.deal.get"}}).json()["result"]
    assert small["result_error"]["nested"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"


def test_batch_writes_fire_one_event_per_hit(sim: PortalSimulator, receiver) -> None:
    deal_id = sim.portal.add_deal({})
    sim.add_outgoing_webhook(receiver.url)
    cmd = {"u1": f"crm.deal.update?id={deal_id}&fields[TITLE]=one",
           "u2": f"crm.deal.update?id={deal_id}&fields[TITLE]=two"}
    call(sim, "batch", {"cmd": cmd})
    call(sim, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": "three"}})
    assert sim.wait_deliveries(5)
    updates = [d for d in sim.deliveries if d.event == "ONCRMDEALUPDATE"]
    assert len(updates) == 2  # one per HTTP hit, not per change
