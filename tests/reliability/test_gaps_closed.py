"""The gaps docs/reliability.md listed, closed: token rotation, member_id pinning, anomaly
counters and auth-failure warnings, a bounded inbox under a valid-token flood, and a second
SIGTERM that exits at once. Real listener, real SQLite, the portal simulator.
"""

from __future__ import annotations

import signal
import time

import pytest

from deal_monitor.credentials import MemoryStore
from deal_monitor.model import EventStatus, Source
from deal_monitor.service import INTAKE_COALESCE_AT, SECRET_APP_TOKEN, Monitor
from deal_monitor.store.state import NewEvent
from tests.e2e.harness import wait_for
from tests.e2e.test_never_miss import settings_for
from tests.oracle import live_ids, monitor_target
from tests.reliability.support import envelope, post

NEW_TOKEN = "n3wt0k3nn3wt0k3nn3wt0k3nn3wt0k3n"


def url_of(monitor: Monitor) -> str:
    return f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"


def live_deal(sim, title: str = "Стол") -> int:
    return sim.portal.add_deal({"TITLE": title, "STAGE_ID": "EXECUTING"})


# -- token rotation ---------------------------------------------------------------------------------
def test_a_token_replaced_in_the_settings_is_accepted_during_its_grace_period(sim, tmp_path):
    secrets = MemoryStore({SECRET_APP_TOKEN: sim.application_token, "webhook_url": sim.webhook_url})
    settings = settings_for(sim, tmp_path, portal={"application_token": "", "webhook_url": ""})
    monitor = Monitor(settings, secrets=secrets)
    monitor.start()
    old = sim.application_token
    deal = live_deal(sim)
    try:
        secrets.set(SECRET_APP_TOKEN, NEW_TOKEN)  # what the settings dialog does on Save
        monitor.apply_settings(settings)
        assert post(url_of(monitor), envelope(sim, deal, application_token=NEW_TOKEN)).status_code == 200
        # an event Bitrix24 signed before the change is still on its way: not refused
        assert post(url_of(monitor), envelope(sim, deal, ts=1, application_token=old)).status_code == 200
        assert monitor.health()["anomalies"]["previous_token"] == 1
        assert "previous_token_in_use" in monitor.health()["warnings"]
        assert secrets.get("previous_application_token") == old
        assert post(url_of(monitor), envelope(sim, deal, application_token="x" * 32)).status_code == 401
    finally:
        monitor.stop()
    # a restart within the grace period still knows the previous token (kept in the keyring)
    monitor = Monitor(settings, secrets=secrets)
    monitor.start()
    try:
        assert post(url_of(monitor), envelope(sim, deal, ts=2, application_token=old)).status_code == 200
        monitor._previous_until = time.time() - 1  # the grace period is over
        assert post(url_of(monitor), envelope(sim, deal, ts=3, application_token=old)).status_code == 401
    finally:
        monitor.stop()


def test_headless_rotation_with_two_tokens_in_the_config(sim, tmp_path):
    settings = settings_for(sim, tmp_path, portal={
        "application_token": NEW_TOKEN, "previous_application_token": sim.application_token})
    monitor = Monitor(settings)
    monitor.start()
    try:
        deal = live_deal(sim)
        assert post(url_of(monitor), envelope(sim, deal)).status_code == 200  # the old one
        assert post(url_of(monitor), envelope(sim, deal, ts=5, application_token=NEW_TOKEN)).status_code == 200
        wait_for(lambda: deal in live_ids(*monitor_target(monitor)))
    finally:
        monitor.stop()


# -- member_id pinned from the first event in webhook mode -----------------------------------------
def test_webhook_mode_pins_the_first_events_portal(sim, tmp_path):
    settings = settings_for(sim, tmp_path, portal={"member_id": ""})
    monitor = Monitor(settings)
    monitor.start()
    deal = live_deal(sim)
    try:
        assert post(url_of(monitor), envelope(sim, deal)).status_code == 200
        other = "0123456789abcdef0123456789abcdef"
        reply = post(url_of(monitor), envelope(sim, deal, ts=7, member_id=other))
        assert reply.status_code == 403 and "member_id" in reply.text
    finally:
        monitor.stop()
    monitor = Monitor(settings)  # the pin survives a restart with the same token
    monitor.start()
    try:
        assert post(url_of(monitor), envelope(sim, deal, ts=8, member_id=other)).status_code == 403
        # a new token (maybe another portal's webhook) learns the portal again
        monitor.apply_settings(settings.replace("portal", application_token=NEW_TOKEN))
        reply = post(url_of(monitor), envelope(sim, deal, ts=9, member_id=other,
                                               application_token=NEW_TOKEN))
        assert reply.status_code == 200
    finally:
        monitor.stop()


# -- anomaly counters ----------------------------------------------------------------------------
def test_anomalies_are_counted_and_auth_failure_bursts_warned(sim, tmp_path):
    monitor = Monitor(settings_for(sim, tmp_path))
    monitor.start()
    deal = live_deal(sim)
    try:
        year_ago = int(time.time()) - 365 * 24 * 3600
        assert post(url_of(monitor), envelope(sim, deal, ts=year_ago)).status_code == 200
        assert post(url_of(monitor), envelope(sim, deal)).status_code == 200
        health = monitor.health()
        assert health["anomalies"]["ts_skew"] == 1
        assert health["auth_failures_last_hour"] == 0 and health["warnings"] == []
        for n in range(20):
            reply = post(url_of(monitor), envelope(sim, deal, ts=100 + n, application_token="w" * 32))
            assert reply.status_code == 401
        health = monitor.health()
        assert health["auth_failures_last_hour"] == 20 and "auth_failures" in health["warnings"]
        wait_for(lambda: monitor.health()["oldest_pending_age_s"] is None)
    finally:
        monitor.stop()


def test_oldest_pending_age_shows_a_stuck_queue(sim, tmp_path):
    monitor = Monitor(settings_for(sim, tmp_path))
    monitor.start()
    try:
        monitor.pause()
        assert post(url_of(monitor), envelope(sim, live_deal(sim))).status_code == 200
        wait_for(lambda: (monitor.health()["oldest_pending_age_s"] or 0) > 0)
    finally:
        monitor.stop()


# -- a valid-token flood cannot grow the inbox without bound -------------------------------------
def test_valid_token_flood_is_bounded_per_deal_and_nothing_is_lost(sim, tmp_path):
    monitor = Monitor(settings_for(sim, tmp_path, sync={"debounce_seconds": 0.05}))
    monitor.start()
    deals = [live_deal(sim, f"Шкаф {n}") for n in range(3)]
    try:
        monitor.pause()
        for n in range(150):  # distinct ts: every one a separate delivery
            assert post(url_of(monitor), envelope(sim, deals[n % 3], ts=1_000 + n)).status_code == 200
        assert monitor.state.inbox_depth() == 3 * INTAKE_COALESCE_AT  # per deal, whatever the source
        with monitor.state.engine.connect() as conn:
            pushed = conn.exec_driver_sql("SELECT COUNT(*) FROM inbox WHERE source = 'push'").scalar()
        assert monitor.health()["anomalies"]["coalesced_at_intake"] == 150 - pushed
        for deal in deals:
            sim.portal.update_deal(deal, {"TITLE": f"после флуда {deal}"})
        monitor.resume()
        wait_for(lambda: all(monitor.state.deal(d) is not None
                             and monitor.state.deal(d).title == f"после флуда {d}" for d in deals))
    finally:
        monitor.stop()


def test_rows_a_pass_has_taken_do_not_count_towards_coalescing(tmp_path):
    """An event that arrives while its deal is being read must be stored: that read may have
    happened before the change it announces."""
    from deal_monitor.paths import sqlite_url
    from deal_monitor.store.engine import make_engine
    from deal_monitor.store.state import StateStore

    state = StateStore(make_engine(sqlite_url(tmp_path / "state.db"), synchronous="FULL"))
    state.create()

    def event(n: int) -> NewEvent:
        return NewEvent(event="ONCRMDEALUPDATE", deal_id=5, source=Source.PUSH, ts=n,
                        dedup_key=f"k{n}", status=EventStatus.QUEUED)

    assert len(state.add_events([event(n) for n in range(3)], coalesce_at=3)) == 3
    assert state.add_events([event(3)], coalesce_at=3) == []  # three untaken rows wait already
    taken = state.queued_rows([5])[5]  # a pass takes them (its read may be under way)
    assert len(taken) == 3
    stored = state.add_events([event(n) for n in range(10, 14)], coalesce_at=3)
    assert len(stored) == 3  # stored again until three new rows wait
    state.engine.dispose()


# -- a second SIGTERM exits at once -----------------------------------------------------------------
@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def test_second_sigterm_exits_at_once_and_nothing_is_lost(make_app, sim):
    app = make_app(hook=False)
    deal = live_deal(sim, "Стеллаж")
    app.start(env={"DEAL_MONITOR_STALL_AT": "after_fetch"})  # the pass hangs after its read
    assert post(app.events_url, envelope(sim, deal)).status_code == 200
    wait_for(lambda: sim.stats.calls_by_method["crm.deal.get"] >= 1)  # read, then stuck
    app.proc.send_signal(signal.SIGTERM)  # a clean stop waits for the pass: it never ends
    wait_for(lambda: "send it again" in app.console())
    assert app.proc.poll() is None
    assert app.stop() == 130  # the second signal: out at once
    assert "exiting now" in app.console()
    app.start()  # the event was committed before the 200: the restart syncs it
    wait_for(lambda: deal in app.target_rows())
    assert app.stop() == 0
