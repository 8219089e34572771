"""Overlapped deal reads against the simulator over HTTP: the bound, the budget, cancel.

The simulator counts the ``/rest`` requests it serves at once (``stats.max_in_flight``);
expected deals come from the simulator's own store. No latency is asserted: ``latency`` only
makes each request last long enough for overlap to be visible.
"""

from __future__ import annotations

import threading
import time

import pytest

from deal_monitor.bitrix.client import BitrixClient, WebhookAuth
from deal_monitor.bitrix.throttle import Cancelled, LeakyBucket, OperatingBudget
from deal_monitor.simulator import PortalSimulator


def client_for(sim: PortalSimulator, **kwargs) -> BitrixClient:
    kwargs.setdefault("backoff_base", 0.05)
    return BitrixClient(WebhookAuth(sim.webhook_url), LeakyBucket(50, 2.0), **kwargs)


def read_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bitrix-read")]


@pytest.mark.parametrize("bound", [2, 3])
def test_batches_of_one_read_overlap_and_never_exceed_the_bound(bound):
    with PortalSimulator(latency=0.2) as sim:
        ids = sim.portal.bulk_add(600, STAGE_ID="EXECUTING")  # 12 batches of 50
        client = client_for(sim, max_in_flight=bound)
        sim.reset_stats()
        found, failed = client.get_deals(ids)
        assert not failed
        assert {i: d["TITLE"] for i, d in found.items()} == {
            i: sim.portal.get_deal(i)["TITLE"] for i in ids
        }
        assert sim.stats.batch_requests == 12 and sim.stats.http_requests == 12
        assert 2 <= sim.stats.max_in_flight <= bound
        assert sim.stats.in_flight == 0
        assert not read_threads()  # the read's pool lives for the call only


def test_requests_of_many_threads_share_one_bound():
    with PortalSimulator(latency=0.1) as sim:
        client = client_for(sim, max_in_flight=3)
        errors: list[Exception] = []

        def work() -> None:
            try:
                for _ in range(3):
                    client.call("crm.deal.fields")
            except Exception as exc:  # pragma: no cover - the assertion reports it
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and sim.stats.http_requests == 24
        assert 2 <= sim.stats.max_in_flight <= 3


def test_overlap_stops_before_the_operating_budget_would_run_out():
    """Four batches in flight could each still add its cost after the last answer seen:
    the client overlaps only while that fits under the soft share, so the portal never has
    to refuse a command with 429, and every deal is read."""
    limit = 10.0
    with PortalSimulator(operating_limit=limit, operating_window=6.0, latency=0.2,
                         method_costs={"crm.deal.get": 0.02}) as sim:  # 1 s per batch of 50
        ids = sim.portal.bulk_add(800, STAGE_ID="EXECUTING")  # 16 s of budget: > one window
        client = client_for(sim, operating_limit=limit)
        sim.reset_stats()
        found, failed = client.get_deals(ids)
        assert sim.stats.refusals_429 == 0 and client.stats.refusals == 0
        assert not failed and set(found) == set(ids)
        assert sim.stats.max_in_flight >= 2  # it did overlap while there was room
        assert sim.stats.calls_by_method["crm.deal.get"] == 800


def test_refusals_during_overlapped_reads_are_retried_without_loss():
    # the portal's bucket is far smaller than the client believes (other apps share it)
    with PortalSimulator(plan=(3, 2.0), latency=0.2) as sim:
        ids = sim.portal.bulk_add(500, STAGE_ID="EXECUTING")
        client = client_for(sim, max_retries=8)
        client.call("crm.deal.get", {"id": ids[0]})  # the budget knows the method: overlap
        sim.reset_stats()
        found, failed = client.get_deals(ids)
        assert sim.stats.refusals_503 >= 1  # the storm happened
        assert client.stats.refusals == sim.stats.refusals_503
        assert not failed and set(found) == set(ids)
        assert sim.stats.calls_by_method["crm.deal.get"] == 500  # refused requests ran nothing
        assert sim.stats.max_in_flight <= 4


def test_cancel_during_overlapped_reads_stops_them():
    with PortalSimulator(latency=0.5) as sim:
        ids = sim.portal.bulk_add(1000, STAGE_ID="EXECUTING")  # 20 batches
        client = client_for(sim)
        client.call("crm.deal.get", {"id": ids[0]})
        sim.reset_stats()
        outcome: list[BaseException | tuple] = []

        def read() -> None:
            try:
                outcome.append(client.get_deals(ids))
            except BaseException as exc:  # noqa: BLE001 - the assertion looks at it
                outcome.append(exc)

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 30
        while sim.stats.batch_requests < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        client.cancel.set()
        reader.join(30)
        assert not reader.is_alive()  # hang guard: the requests in flight end within ~0.5 s
        assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
        assert not read_threads()
        sent = sim.stats.http_requests
        assert sent < 20  # the rest never went out
        time.sleep(1.0)
        assert sim.stats.http_requests == sent and sim.stats.in_flight == 0


def test_headroom_counts_every_request_in_flight_at_the_largest_call_cost():
    now = [1000.0]
    budget = OperatingBudget(limit_seconds=100.0, soft_share=0.8, clock=lambda: now[0])  # soft 80
    calls = {"crm.deal.get": 50}
    assert not budget.headroom(calls, 0)  # nothing seen yet: the budget may be spent already
    budget.observe("crm.deal.get", {"operating": 30.0, "finish": 10.0})
    assert not budget.headroom(calls, 0)  # no cost of a call seen yet either
    budget.note_cost("crm.deal.get", 0.1)
    budget.note_cost("crm.deal.get", 0.2)  # the largest counts: 50 calls -> 10 s a request
    assert budget.headroom(calls, 3)  # 30 + 4 x 10 = 70 < 80
    assert not budget.headroom(calls, 4)  # 30 + 5 x 10 = 80: not under the soft share
    budget.observe("crm.deal.get", {"operating": 5.0, "finish": 9.0})  # an older answer
    assert not budget.headroom(calls, 4)  # ... does not replace the newer one
    budget.observe("crm.deal.get", {"operating": 55.0, "finish": 11.0})
    assert budget.headroom(calls, 1) and not budget.headroom(calls, 2)  # 75 < 80, 85
    budget.pause("crm.deal.get", 30.0)
    assert not budget.headroom(calls, 0)
    now[0] += 31.0
    assert budget.headroom(calls, 0)
    assert not budget.headroom({**calls, "crm.deal.productrows.get": 50}, 0)  # unknown method
