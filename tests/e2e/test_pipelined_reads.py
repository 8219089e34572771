"""The worker's reads of a pass overlap (a few batch requests in flight), against the real
simulator over HTTP and a real SQLite target.

A storm: every deal changes in the portal, one event per deal is posted to the listener
while the worker is paused, then the worker goes. Expected rows come from the simulator's raw
deals (tests/oracle.py), the target and the inbox are read with plain SQL, and the simulator
counts the requests it serves at once. No latency is asserted; ``latency`` only makes each
request last long enough for overlap (or a stop in the middle) to happen.
"""

from __future__ import annotations

import itertools
import threading
import time

import requests
from sqlalchemy import create_engine, text

from deal_monitor.bitrix.client import MAX_IN_FLIGHT
from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import wait_for
from tests.e2e.test_acknowledged import event_body
from tests.e2e.test_never_miss import app_monitor, settings_for, target_ids
from tests.oracle import converge, monitor_target, target_table

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEALS = 500  # one full pass: ten batches of 50
_STORMS = itertools.count()


def queued_deals(monitor) -> set[int]:
    engine = create_engine(monitor.where.state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT DISTINCT deal_id FROM inbox WHERE status = 'queued'"))
            return {int(r[0]) for r in rows}
    finally:
        engine.dispose()


def storm(sim: PortalSimulator, monitor, ids: list[int], label: str) -> None:
    """Change every deal, queue one event each while the worker waits, reset the counters."""
    monitor.worker.pause()
    ts = int(time.time()) + next(_STORMS)  # a new ts per storm: not a duplicate of the last
    for deal_id in ids:
        sim.portal.update_deal(deal_id, {"TITLE": f"{label} {deal_id}"})
    url = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
    with requests.Session() as http:
        for deal_id in ids:
            answer = http.post(url, data=event_body(sim, deal_id, ts), headers=FORM, timeout=10)
            assert answer.status_code == 200
    wait_for(lambda: queued_deals(monitor) >= set(ids), timeout=30)
    sim.reset_stats()


def rows_of(monitor):
    return lambda: target_table(*monitor_target(monitor))


def started(sim: PortalSimulator, tmp_path, running):
    ids = sim.portal.bulk_add(DEALS, STAGE_ID="EXECUTING")
    settings = settings_for(sim, tmp_path)
    monitor = running(settings)
    wait_for(lambda: len(target_ids(monitor)) == DEALS, timeout=60)  # start-up reconciliation
    return monitor, ids, settings


def test_reads_of_a_pass_overlap_within_the_bound_and_every_deal_lands(tmp_path, running):
    with PortalSimulator(latency=0.2) as sim:
        monitor, ids, _ = started(sim, tmp_path, running)
        storm(sim, monitor, ids, "storm")
        monitor.worker.resume()
        converge(rows_of(monitor), sim, set(ids), timeout=120)
        assert 2 <= sim.stats.max_in_flight <= MAX_IN_FLIGHT
        assert sim.stats.calls_by_method["crm.deal.get"] == DEALS  # each deal read once
        wait_for(lambda: not queued_deals(monitor), timeout=30)


def test_a_503_storm_during_overlapped_reads_loses_nothing(tmp_path, running):
    # the portal's bucket is far smaller than the client's mirror of it (other apps share it)
    with PortalSimulator(plan=(3, 2.0), latency=0.2) as sim:
        monitor, ids, _ = started(sim, tmp_path, running)
        storm(sim, monitor, ids, "refused")
        monitor.worker.resume()
        converge(rows_of(monitor), sim, set(ids), timeout=180)
        assert sim.stats.refusals_503 >= 1  # the storm happened
        assert sim.stats.max_in_flight <= MAX_IN_FLIGHT
        wait_for(lambda: not queued_deals(monitor), timeout=30)


def test_stop_during_an_overlapped_pass_ends_every_thread_and_keeps_the_rows(tmp_path, running):
    with PortalSimulator(latency=0.5) as sim:
        monitor, ids, settings = started(sim, tmp_path, running)
        storm(sim, monitor, ids, "stopped")
        worker_thread = monitor.worker._thread
        monitor.worker.resume()
        wait_for(lambda: sim.stats.in_flight >= 2, timeout=30)  # mid-pass, reads overlapping
        monitor.stop()
        assert not worker_thread.alive  # it ended within stop's join, not left behind
        assert not [t for t in threading.enumerate() if t.name.startswith("bitrix-read")]
        sent = sim.stats.http_requests
        time.sleep(1.0)
        assert sim.stats.http_requests == sent  # nothing goes out after stop
        assert sim.stats.batch_requests < DEALS // 50  # the pass did not run to its end
        rows = target_table(*monitor_target(monitor))
        behind = {i for i in ids if rows[i]["title"] != f"stopped {i}"}
        assert behind and behind <= queued_deals(monitor)  # not written means still queued
        again = running(settings)
        converge(rows_of(again), sim, set(ids), timeout=120)


def test_expired_token_during_overlapped_reads_refreshes_once(tmp_path, running, monkeypatch):
    with PortalSimulator(latency=0.2) as sim:
        ids = sim.portal.bulk_add(DEALS, STAGE_ID="EXECUTING")
        monitor, store = app_monitor(sim, tmp_path, running)
        monitor.authorize(sim.issue_auth_code())
        wait_for(lambda: len(target_ids(monitor)) == DEALS, timeout=60)
        # one small read first: then the budget knows crm.deal.get and the storm's first
        # requests go out together, all with the token that is about to expire
        storm(sim, monitor, ids[:2], "warm")
        monitor.worker.resume()
        converge(rows_of(monitor), sim, set(ids), timeout=30)
        storm(sim, monitor, ids, "token")
        auth = monitor.client.auth
        recover = auth.recover
        expired: list[str] = []

        def counting(error):
            if error.code == "expired_token":
                expired.append(error.code)
            return recover(error)

        monkeypatch.setattr(auth, "recover", counting)
        old_tokens = store.get("oauth_tokens")
        sim.expire_access_tokens()
        monitor.worker.resume()
        converge(rows_of(monitor), sim, set(ids), timeout=120)
        assert sim.stats.token_refreshes == 1
        assert len(expired) >= 2  # several requests in flight met the expired token ...
        assert sim.stats.max_in_flight >= 2
        assert store.get("oauth_tokens") != old_tokens  # ... and one refresh served them all
        assert monitor.status().auth_state == "ok"
