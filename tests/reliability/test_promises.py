"""Promises of design §6 that the other suites do not already cover row by row.

Durability settings (1), fast ack while everything downstream is stuck (2), duplicates (5),
order (6, Hypothesis), deletes need proof (7), forged floods (8), replays (14), staying under
the bucket in a mass edit (16, §8 row 19), clock skew (26, §8 row 17), visible lag (31).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from deal_monitor.service import Monitor
from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import wait_for
from tests.e2e.test_never_miss import settings_for
from tests.oracle import live_ids, monitor_target, row_matches, target_table
from tests.reliability.support import (
    FORM,
    LIVE_STAGES,
    SCALE,
    envelope,
    post,
    post_all,
    state_counts,
    timed_post,
)


@dataclass
class Rig:
    sim: PortalSimulator
    monitor: Monitor

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.monitor.listener.port}/bitrix24/events"

    def rows(self) -> dict:
        return target_table(self.monitor.where.target_url)

    def drained(self, timeout: float = 15.0) -> None:
        wait_for(lambda: self.monitor.state.inbox_depth() == 0, timeout=timeout)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    sim = PortalSimulator(utc_offset="+03:00").start(host="127.0.0.1", port=0)
    monitor = Monitor(settings_for(sim, tmp_path_factory.mktemp("promises"),
                                   sync={"debounce_seconds": 0.05, "max_delay_seconds": 1.0}))
    monitor.start()
    wait_for(lambda: monitor.scheduler.runs >= 1)
    yield Rig(sim, monitor)
    monitor.stop()
    sim.stop()


# -- promise 1: ack means stored (the settings that make it so) ------------------------------------
def test_p1_inbox_is_wal_with_full_sync_and_target_normal(rig):
    with rig.monitor.state.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    with rig.monitor.target.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert rig.monitor.where.state_url != rig.monitor.where.target_url  # separate files


# -- promise 2: fast ack while the portal stalls and the target is locked -----------------------------
def test_p2_ack_latency_independent_of_a_stalled_portal_and_a_locked_target(tmp_path, running, sim):
    monitor = running(settings_for(sim, tmp_path, sync={"debounce_seconds": 0.05}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    url = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
    deals = [sim.portal.add_deal({"TITLE": f"slow {n}", "STAGE_ID": "EXECUTING"}) for n in range(60)]
    sim.faults.stall_next(100, seconds=4.0)  # every REST call hangs for 4 s
    locker = sqlite3.connect(monitor.where.target_url.removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    latencies: list[float] = []
    try:
        with requests.Session() as session:
            for n in range(300):  # ~100 events/s from one sender
                status, took = timed_post(session, url, envelope(sim, deals[n % 60], ts=10_000 + n))
                assert status == 200
                latencies.append(took)
                time.sleep(0.005)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        sim.faults.clear()
    # hang detector, not a latency goal (that lives in bench/): an ack takes ~10 ms here, so 2 s
    # is far over 10x that, and still half the 4 s stall an ack that waited for the portal would show
    assert max(latencies) < 2.0, max(latencies)  # hang guard


# -- promise 5: duplicates, sequential -------------------------------------------------------------------
def test_p5_sequential_duplicates_store_one_row_and_read_once(rig):
    deal_id = rig.sim.portal.add_deal({"TITLE": "dup", "STAGE_ID": "EXECUTING", "OPPORTUNITY": "19.99"})
    rig.drained()
    rig.sim.reset_stats()
    before = state_counts(rig.monitor.state.engine)["inbox"]
    body = envelope(rig.sim, deal_id, ts=1_800_000_000)
    rig.monitor.pause()  # all five land within one coalescing window
    try:
        assert [post(rig.url, body).status_code for _ in range(5)] == [200] * 5
        assert state_counts(rig.monitor.state.engine)["inbox"] == before + 1
    finally:
        rig.monitor.resume()
    wait_for(lambda: row_matches(rig.rows().get(deal_id), rig.sim.portal.get_deal(deal_id)))
    rig.drained()
    assert rig.sim.stats.calls_by_method["crm.deal.get"] == 1


# -- promises 6 and 7: any order of ADD/UPDATE/DELETE ends in the portal's state ----------------------
@st.composite
def histories(draw):
    """Portal changes for one deal, when each event is delivered (never before the change
    that fired it), in which order, and which ones come twice."""
    steps = draw(st.lists(st.sampled_from(["update", "update", "stage"]), max_size=3))
    if draw(st.booleans()):
        steps.append("delete")
    events = len(steps) + 1  # the ADD, then one per change
    deliver_after = [draw(st.integers(k, len(steps))) for k in range(events)]
    order = draw(st.permutations(range(events)))
    duplicated = draw(st.lists(st.integers(0, events - 1), max_size=2))
    return steps, deliver_after, order, duplicated


@settings(max_examples=40 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(histories())
def test_p6_p7_event_order_never_changes_the_outcome(rig, history):
    steps, deliver_after, order, duplicated = history
    portal = rig.sim.portal
    deal_id = portal.add_deal({"TITLE": "h0", "STAGE_ID": "PREPARATION", "OPPORTUNITY": "1000000.01"})
    bodies = [envelope(rig.sim, deal_id, event="ONCRMDEALADD", ts=1)]
    for n in range(len(steps) + 1):
        if n:  # change n fires event n
            step = steps[n - 1]
            if step == "delete":
                portal.delete_deal(deal_id)
                bodies.append(envelope(rig.sim, deal_id, event="ONCRMDEALDELETE", ts=1 + n))
            else:
                fields = {"TITLE": f"h{n}", "OPPORTUNITY": f"{n}000.5{n}"} if step == "update" else {"STAGE_ID": LIVE_STAGES[n]}
                portal.update_deal(deal_id, fields)
                bodies.append(envelope(rig.sim, deal_id, event="ONCRMDEALUPDATE", ts=1 + n))
        for k in order:  # the events due after this change, in shuffled order
            if deliver_after[k] == n:
                assert post(rig.url, bodies[k]).status_code == 200
    for k in duplicated:
        assert post(rig.url, bodies[k]).status_code == 200
    rig.drained(timeout=20)
    row = rig.rows().get(deal_id)
    final = portal.get_deal(deal_id)
    if final is None:  # deleted: a late ADD/UPDATE never brings it back
        assert row is None or row["deleted"], row
    else:
        assert row_matches(row, final), (row, final)


def test_p7_update_after_delete_does_not_resurrect(rig):
    deal_id = rig.sim.portal.add_deal({"TITLE": "to delete", "STAGE_ID": "WON"})
    assert post(rig.url, envelope(rig.sim, deal_id, event="ONCRMDEALADD")).status_code == 200
    wait_for(lambda: deal_id in rig.rows())
    rig.sim.portal.delete_deal(deal_id)
    assert post(rig.url, envelope(rig.sim, deal_id, event="ONCRMDEALDELETE")).status_code == 200
    wait_for(lambda: rig.rows()[deal_id]["deleted"])
    stale = envelope(rig.sim, deal_id, event="ONCRMDEALUPDATE", ts=int(time.time()) + 5)
    assert post(rig.url, stale).status_code == 200
    rig.drained()
    assert rig.rows()[deal_id]["deleted"]


# -- promise 8: forged floods cost nothing downstream ------------------------------------------------
def test_p8_thousand_forged_posts_touch_nothing(rig):
    rig.drained()
    rig.sim.reset_stats()
    before = state_counts(rig.monitor.state.engine)
    target_before = rig.rows()
    with requests.Session() as session:
        for n in range(1000):
            body = envelope(rig.sim, 1 + n % 50, application_token=f"forged-{n:06d}-xxxxxxxxxxxxxxxx")
            status, _ = timed_post(session, rig.url, body)
            assert status == 401
    time.sleep(0.3)
    after = state_counts(rig.monitor.state.engine)
    assert after["inbox"] == before["inbox"]
    assert rig.sim.stats.http_requests == 0
    assert rig.rows() == target_before
    # rejections are kept bounded (newest 2 000) and visible
    assert 0 < after["rejection"] <= before["rejection"] + 1000


# -- promise 14: replays ------------------------------------------------------------------------------
def test_p14_replayed_bodies_after_changes_end_equal_to_the_portal(rig):
    deals = [rig.sim.portal.add_deal({"TITLE": f"r{n}", "STAGE_ID": "EXECUTING",
                                        "OPPORTUNITY": f"{n}.{n:02d}"}) for n in range(30)]
    captured = [envelope(rig.sim, d, ts=1_600_000_000 + d) for d in deals]
    for body in captured:
        assert post(rig.url, body).status_code == 200
    rig.drained()
    for deal_id in deals:  # changed, and changed back
        rig.sim.portal.update_deal(deal_id, {"TITLE": "changed"})
        rig.sim.portal.update_deal(deal_id, {"TITLE": f"r{deals.index(deal_id)}"})
    rig.sim.reset_stats()
    for body in captured:  # the attacker replays yesterday's captured bodies
        assert post(rig.url, body).status_code == 200
    rig.drained()
    rows = rig.rows()
    assert all(row_matches(rows.get(d), rig.sim.portal.get_deal(d)) for d in deals)
    assert rig.sim.stats.calls_by_method["crm.deal.get"] <= len(deals)


# -- promise 16 / §8 row 19: a mass edit of 1 000 deals ----------------------------------------------
def test_p16_mass_edit_of_1000_deals_stays_under_the_bucket(tmp_path, running):
    with PortalSimulator(plan="standard") as sim:  # X=50, Y=2 enforced by the fake
        monitor = running(settings_for(sim, tmp_path))  # default debounce and max delay
        wait_for(lambda: monitor.scheduler.runs >= 1)
        url = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
        ids = sim.portal.bulk_add(1000, STAGE_ID="EXECUTING")
        sim.reset_stats()
        bodies = [envelope(sim, deal_id) for deal_id in ids]
        statuses, _ = post_all(url, bodies, timeout=120)
        assert statuses == [200] * 1000
        # the bucket allows ~10 s for 1 000 reads; 120 s only detects a hang (drain time: bench/)
        wait_for(lambda: set(ids) <= live_ids(*monitor_target(monitor)), timeout=120)
        assert sim.stats.refusals_503 == 0 and sim.stats.refusals_429 == 0
        # every deal read once, inside batches of up to 50, on average at least half full
        assert sim.stats.calls_by_method["crm.deal.get"] == 1000
        assert sim.stats.calls_by_method["batch"] == sim.stats.http_requests <= 2 * (1000 // 50)


# -- promise 26 / §8 row 17: clocks ---------------------------------------------------------------------
@pytest.mark.parametrize("skew_hours", [-24, -2, 2, 24])
def test_p26_portal_and_local_clocks_apart(tmp_path, running, sim, skew_hours):
    """The portal's clock ahead of or behind ours (same as our clock skewed the other way):
    no event refused, reconciliation (watermark on the portal's clock) still finds changes,
    and newer versions win."""
    sim.portal.clock_offset = skew_hours * 3600.0
    monitor = running(settings_for(sim, tmp_path, sync={"debounce_seconds": 0.05}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    url = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
    deal_id = sim.portal.add_deal({"TITLE": "v1", "STAGE_ID": "EXECUTING", "OPPORTUNITY": "0.10"})
    assert post(url, envelope(sim, deal_id, ts=int(time.time() + sim.portal.clock_offset))).status_code == 200
    wait_for(lambda: row_matches(target_table(monitor.where.target_url).get(deal_id),
                                 sim.portal.get_deal(deal_id)))
    time.sleep(1.1)  # DATE_MODIFY has one-second resolution
    sim.portal.update_deal(deal_id, {"TITLE": "v2 (no event)"})
    silent = sim.portal.add_deal({"TITLE": "created without an event", "STAGE_ID": "WON"})
    monitor.reconcile_now()
    for d in (deal_id, silent):
        wait_for(lambda d=d: row_matches(target_table(monitor.where.target_url).get(d),
                                         sim.portal.get_deal(d)), timeout=15)


def test_p26_local_clock_jumping_back_does_not_stall_the_queue(tmp_path, running, sim):
    """Our clock steps back 2 h after events were stored (e.g. NTP after a bad RTC): rows
    received "in the future" must still be worked on now, not in two hours. (No faketime
    here: the jump is played by moving the stored times 2 h ahead, which is what the worker
    sees after such a step.)"""
    monitor = running(settings_for(sim, tmp_path, sync={"debounce_seconds": 0.05}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    url = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
    deal_id = sim.portal.add_deal({"TITLE": "clock jump", "STAGE_ID": "EXECUTING"})
    monitor.pause()
    try:
        assert post(url, envelope(sim, deal_id)).status_code == 200
        jump = timedelta(hours=2)
        with monitor.state.writer.begin() as conn:
            rows = conn.execute(text("SELECT id, received_at, next_attempt_at FROM inbox "
                                     "WHERE status = 'queued'")).all()
            for row_id, received, due in rows:
                conn.execute(text("UPDATE inbox SET received_at = :r, next_attempt_at = :n "
                                  "WHERE id = :i"),
                             {"r": _shift(received, jump), "n": _shift(due, jump), "i": row_id})
    finally:
        monitor.resume()
    wait_for(lambda: row_matches(target_table(monitor.where.target_url).get(deal_id),
                                 sim.portal.get_deal(deal_id)), timeout=10)


def _shift(value, delta):
    from datetime import datetime

    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed + delta


# -- promise 31: lag and backlog are visible ------------------------------------------------------------
def test_p31_health_shows_backlog_failures_and_activity(rig):
    deal_id = rig.sim.portal.add_deal({"TITLE": "visible", "STAGE_ID": "EXECUTING"})
    rig.drained()
    rig.monitor.pause()
    try:
        assert post(rig.url, envelope(rig.sim, deal_id)).status_code == 200
        health = requests.get(rig.url.replace("/bitrix24/events", "/healthz"), timeout=5).json()
        assert health["inbox_depth"] >= 1 and health["paused"] is True
        assert health["last_event_at"] is not None
        assert {"failed", "last_sync_at", "last_error", "auth_state", "listening"} <= set(health)
    finally:
        rig.monitor.resume()
    rig.drained()
    health = requests.get(rig.url.replace("/bitrix24/events", "/healthz"), timeout=5).json()
    assert health["inbox_depth"] == 0 and health["last_sync_at"] is not None


def test_p13_live_socket_never_5xx_or_hangs(rig):
    """Promise 13 over a real socket: random bodies and headers within the limits."""
    import random

    rnd = random.Random(13)
    statuses = set()
    with requests.Session() as session:
        for _ in range(200):
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 300)))
            ctype = rnd.choice([FORM["Content-Type"], "application/json", "", "text/plain;x=1"])
            started = time.monotonic()
            reply = session.post(rig.url, data=body, headers={"Content-Type": ctype}, timeout=5)
            # hang detector: an answer takes a few ms; 3 s is far over 10x that on a busy box
            assert time.monotonic() - started < 3.0
            statuses.add(reply.status_code)
    assert statuses <= {200, 400, 401, 403, 415}, statuses
    assert requests.get(rig.url.replace("/bitrix24/events", "/healthz"), timeout=5).ok


def test_two_versions_within_one_second_the_newer_is_written(tmp_path, running, sim):
    """DATE_MODIFY has one-second resolution. A deal read by reconciliation, changed again
    within the same second and reconciled again before the worker got to it must end with the
    newer version in the target (found by the random-kill crash test, seed 11)."""
    monitor = running(settings_for(sim, tmp_path, listener={"enabled": False},
                                   sync={"debounce_seconds": 0.05}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    for _ in range(5):  # bounded: retry if the two changes straddle a second boundary
        monitor.pause()
        deal_id = sim.portal.add_deal({"TITLE": "v1", "STAGE_ID": "EXECUTING"})
        monitor.reconciler.run()  # reads v1 and queues it with its data
        sim.portal.update_deal(deal_id, {"TITLE": "v2"})
        monitor.reconciler.run()  # reads v2: same DATE_MODIFY, other fields
        same_second = sim.portal.get_deal(deal_id)["DATE_MODIFY"] == _first_version(monitor, deal_id)
        monitor.resume()
        if same_second:
            break
    else:
        pytest.skip("could not make two changes within one second")
    wait_for(lambda: monitor.status().inbox_depth == 0, timeout=10)
    row = target_table(monitor.where.target_url).get(deal_id)
    assert row is not None and row["title"] == "v2", row


def _first_version(monitor: Monitor, deal_id: int) -> str | None:
    import json

    with monitor.state.engine.connect() as conn:
        payload = conn.execute(text("SELECT payload FROM inbox WHERE deal_id = :d AND payload IS NOT NULL "
                                    "ORDER BY id LIMIT 1"), {"d": deal_id}).scalar()
    return json.loads(payload)["DATE_MODIFY"] if payload else None
