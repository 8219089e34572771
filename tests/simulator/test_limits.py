"""Leaky bucket (503 QUERY_LIMIT_EXCEEDED) and operating budget (429 OPERATION_TIME_LIMIT)."""

from __future__ import annotations

import time

import pytest

from deal_monitor.simulator import PortalSimulator
from deal_monitor.simulator.limits import PLANS, LeakyBucket, plan_limits

from .conftest import call, fixture_json


def test_plans_match_documented_limits() -> None:
    assert plan_limits("standard") == (50.0, 2.0) == PLANS["standard"]
    assert plan_limits("enterprise") == (250.0, 5.0)
    assert plan_limits((10, 4)) == (10.0, 4.0)
    with pytest.raises(ValueError):
        plan_limits("gold")


def test_bucket_unit_drains_at_rate() -> None:
    now = [0.0]
    bucket = LeakyBucket(3, 2.0, clock=lambda: now[0])
    assert [bucket.try_hit() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one request drained
    assert bucket.try_hit() is True and bucket.try_hit() is False


def test_standard_plan_refuses_after_fifty_burst() -> None:
    with PortalSimulator() as sim:
        deal_id = sim.portal.add_deal({})
        statuses = []
        for _ in range(150):  # bounded: the 2/s drain cannot keep up with back-to-back calls
            statuses.append(call(sim, "crm.deal.get", {"id": deal_id}).status_code)
            if statuses[-1] == 503:
                break
        assert statuses[:50] == [200] * 50
        assert statuses[-1] == 503
        assert sim.stats.refusals_503 == 1


def test_503_body_then_recovery_after_drain() -> None:
    with PortalSimulator(plan=(4, 5.0)) as sim:
        deal_id = sim.portal.add_deal({"TITLE": "Лимит"})
        title_before = sim.portal.get_deal(deal_id)["TITLE"]
        responses = [call(sim, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": f"t{i}"}})
                     for i in range(12)]
        refused = [r for r in responses if r.status_code == 503]
        assert refused, "a burst over the bucket must be refused"
        assert refused[0].json() == fixture_json("errors_examples.json")["QUERY_LIMIT_EXCEEDED"]["body"]
        accepted = sum(r.status_code == 200 for r in responses)
        assert sim.portal.get_deal(deal_id)["TITLE"] != title_before
        assert sim.stats.refusals_503 == len(refused) and accepted + len(refused) == 12
        time.sleep(0.3)  # 5/s drain frees room for at least one request
        assert call(sim, "crm.deal.get", {"id": deal_id}).status_code == 200


def test_refusals_do_not_change_data() -> None:
    with PortalSimulator(plan=(1, 0.01)) as sim:
        deal_id = sim.portal.add_deal({"TITLE": "до"})
        assert call(sim, "crm.deal.get", {"id": deal_id}).status_code == 200
        refused = call(sim, "crm.deal.update", {"id": deal_id, "fields": {"TITLE": "после"}})
        assert refused.status_code == 503
        assert sim.portal.get_deal(deal_id)["TITLE"] == "до"


def test_rate_limit_disabled_never_refuses() -> None:
    with PortalSimulator(plan=(1, 0.01), rate_limit=False) as sim:
        assert all(call(sim, "crm.deal.fields").status_code == 200 for _ in range(5))


def test_operating_limit_blocks_one_method_until_reset() -> None:
    with PortalSimulator(rate_limit=False, operating_limit=0.1, operating_window=1.0,
                         method_costs={"crm.deal.list": 0.04}) as sim:
        sim.portal.bulk_add(3)
        operating = []
        status = 200
        for _ in range(10):
            response = call(sim, "crm.deal.list", {"select": ["ID"]})
            status = response.status_code
            if status != 200:
                break
            operating.append(response.json()["time"]["operating"])
        assert status == 429
        assert response.json() == fixture_json("errors_examples.json")["OPERATION_TIME_LIMIT"]["body"]
        assert operating[:3] == pytest.approx([0.04, 0.08, 0.12])
        assert sim.stats.refusals_429 == 1
        other = call(sim, "crm.deal.get", {"id": 1})
        assert other.status_code == 200  # other methods are not blocked
        reset_at = other.json()["time"]["operating_reset_at"]
        assert reset_at > time.time() - 1.0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            if call(sim, "crm.deal.list", {"select": ["ID"]}).status_code == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("method stayed blocked after the window")


def test_batch_inner_commands_charge_their_own_methods() -> None:
    with PortalSimulator(rate_limit=False, operating_limit=0.1, operating_window=60.0,
                         method_costs={"crm.deal.get": 0.05}) as sim:
        deal_id = sim.portal.add_deal({})
        cmd = {f"g{i}": f"crm.deal.get?id={deal_id}" for i in range(4)}
        body = call(sim, "batch", {"cmd": cmd}).json()["result"]
        assert sorted(body["result"]) == ["g0", "g1", "g2"]
        assert body["result_error"]["g3"]["error"] == "OPERATION_TIME_LIMIT"
        assert body["result_time"]["g2"]["operating"] == pytest.approx(0.15)
        assert call(sim, "crm.deal.get", {"id": deal_id}).status_code == 429
        assert call(sim, "crm.deal.list").status_code == 200
