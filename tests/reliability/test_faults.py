"""Fault scenarios (design §8, promises 2, 17-23, 25, 27, 31) through the simulator and real servers.

Most run the real Monitor in-process (real listener, real SQLite/PostgreSQL/MariaDB, the
portal simulator over real HTTP) so counters and state can be read exactly; disk-full, port
and keyring scenarios run the app as a subprocess.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from deal_monitor.bitrix.client import BitrixClient
from deal_monitor.bitrix.oauth import OAuthAuth
from deal_monitor.model import EventStatus
from deal_monitor.paths import sqlite_url
from deal_monitor.simulator.errors import RestError
from tests.conftest import MYSQL_URL, PG_URL, _server_or_skip
from tests.e2e.harness import ROOT, HeadlessApp, wait_for
from tests.e2e.test_never_miss import app_monitor, settings_for
from tests.oracle import live_ids, monitor_target, row_matches, target_table
from tests.reliability.support import (
    TcpProxy,
    envelope,
    integrity,
    post,
    recording_simulator,
    timed_post,
)

QUICK = {"debounce_seconds": 0.05, "max_delay_seconds": 1.0}


def listen_url(monitor) -> str:
    return f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"


def add(sim, title: str = "fault", **fields) -> int:
    return sim.portal.add_deal({"TITLE": title, "STAGE_ID": "EXECUTING", "OPPORTUNITY": "1234567.89", **fields})


def synced(monitor, sim, deal_id: int, timeout: float = 15.0) -> None:
    wait_for(lambda: row_matches(target_table(monitor.where.target_url, monitor.settings.target.table)
                                 .get(deal_id), sim.portal.get_deal(deal_id)), timeout=timeout)


def notify(monitor, sim, *deal_ids: int, event_name: str = "ONCRMDEALUPDATE", **auth) -> None:
    for deal_id in deal_ids:
        reply = post(listen_url(monitor), envelope(sim, deal_id, event=event_name, **auth))
        assert reply.status_code == 200, reply.text


@pytest.fixture
def rec_sim():
    sim, log = recording_simulator(utc_offset="+03:00")
    yield sim, log
    sim.stop()


# -- §8 row 1: 503 QUERY_LIMIT_EXCEEDED ---------------------------------------------------------
def test_row1_503_bursts_back_off_and_drain(tmp_path, running, rec_sim):
    sim, log = rec_sim
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    deals = [add(sim, f"q{n}") for n in range(5)]
    sim.faults.fail_next(3, status=503)  # the portal's own QUERY_LIMIT_EXCEEDED body
    since = time.monotonic()
    latencies = []
    with requests.Session() as session:
        for deal_id in deals:
            status, took = timed_post(session, listen_url(monitor), envelope(sim, deal_id))
            assert status == 200
            latencies.append(took)
    for deal_id in deals:
        synced(monitor, sim, deal_id)
    # hang detector, not a latency goal (bench/ has those): an ack takes ~10 ms, 2 s is far over 10x
    assert max(latencies) < 2.0  # hang guard: intake does not wait for the portal's retries
    times = [t for t in log.times() if t >= since]
    assert sim.stats.faults_injected == 3
    assert len(times) <= 3 + 2, times  # three refusals, then at most two reads: no hammering
    gaps = [b - a for a, b in zip(times[:4], times[1:4], strict=False)]
    assert min(gaps) >= 0.4, gaps  # the bucket is treated as full, plus backoff with jitter
    assert monitor.status().failed_count == 0


# -- §8 row 2: 429 OPERATION_TIME_LIMIT only pauses that method ---------------------------------
def test_row2_429_pauses_only_that_method_until_reset(tmp_path, running, rec_sim):
    sim, log = rec_sim
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    deal_id = add(sim, "busy method")
    now = time.time()
    sim.faults.fail_next(1, status=429, method="crm.deal.get", body={
        "error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit.",
        "time": {"start": now, "finish": now, "operating_reset_at": now + 3, "operating": 500}})
    notify(monitor, sim, deal_id)
    wait_for(lambda: sim.stats.faults_injected == 1, timeout=5)
    blocked_at = log.times("crm.deal.get")[-1]
    started = time.monotonic()
    assert monitor.test_portal() == ""  # another method goes through during the pause
    # hang detector: the call takes ~50 ms; 2 s is over 10x that and under the 3 s pause it
    # would show if it waited for the blocked method
    assert time.monotonic() - started < 2.0
    synced(monitor, sim, deal_id)
    gets = log.times("crm.deal.get")
    assert len(gets) == 2, gets  # one refused, one after the reset: no hammering
    assert gets[1] - blocked_at >= 2.5  # waited for operating_reset_at (3 s on the portal's clock)


# -- §8 row 3: expired_token mid-run ----------------------------------------------------------------
def test_row3_expired_token_refreshes_once_for_concurrent_callers(tmp_path, running, sim):
    monitor, store = app_monitor(sim, tmp_path, running, sync=QUICK)
    monitor.authorize(sim.issue_auth_code())
    wait_for(lambda: monitor.scheduler.runs >= 1)
    deals = [add(sim, f"t{n}") for n in range(4)]
    old_tokens = store.get("oauth_tokens")
    sim.reset_stats()
    sim.expire_access_tokens()
    errors: list[Exception] = []
    gate = threading.Barrier(8)

    def caller() -> None:
        gate.wait(5)
        try:
            monitor.client.call("crm.deal.fields")
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    notify(monitor, sim, *deals)  # the worker is a ninth caller
    for t in threads:
        t.join(30)
    for deal_id in deals:
        synced(monitor, sim, deal_id)
    assert errors == []
    assert sim.stats.token_refreshes == 1
    assert store.get("oauth_tokens") != old_tokens  # the rotated pair was stored
    assert monitor.status().auth_state == "ok" and monitor.status().failed_count == 0


# -- §8 row 4: auth lost; the user fixes it ----------------------------------------------------------
def revoke_webhook(sim) -> None:
    sim.webhook_secret = "revoked0000000000"  # the portal now answers 401 NO_AUTH_FOUND


def test_row4_revoked_webhook_keeps_intake_alerts_and_stops_calling(tmp_path, running, rec_sim):
    sim, log = rec_sim
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    first = add(sim, "before")
    notify(monitor, sim, first)
    synced(monitor, sim, first)
    revoke_webhook(sim)
    second = add(sim, "while revoked")
    notify(monitor, sim, second)
    wait_for(lambda: monitor.health()["auth_state"] == "reauthorize", timeout=10)
    health = monitor.health()
    # refused credentials: the instance cannot do its job (readiness 503), intake goes on
    assert health["status"] == "unavailable" and health["ready"] is False
    assert "NO_AUTH_FOUND" in health["last_error"]
    since = time.monotonic()
    later = [add(sim, f"later {n}") for n in range(3)]
    for deal_id in later:
        notify(monitor, sim, deal_id)  # intake keeps storing
        time.sleep(0.5)
    time.sleep(1.0)
    assert monitor.status().inbox_depth >= 4
    assert log.count(since=since) == 0, "the worker kept calling the portal with revoked auth"


def test_row4_backlog_drains_soon_after_the_webhook_is_fixed(tmp_path, running, sim):
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    revoke_webhook(sim)
    waiting = [add(sim, f"held {n}") for n in range(3)]
    notify(monitor, sim, *waiting)
    wait_for(lambda: monitor.health()["auth_state"] == "reauthorize", timeout=10)
    sim.webhook_secret = "fixedsecret000000"
    monitor.apply_settings(monitor.settings.replace("portal", webhook_url=sim.webhook_url))  # what the settings dialog does
    for deal_id in waiting:
        synced(monitor, sim, deal_id, timeout=8)
    wait_for(lambda: monitor.health()["auth_state"] == "ok", timeout=5)


def test_row4_refresh_refused_then_reauthorized_backlog_drains(tmp_path, running, sim):
    monitor, _ = app_monitor(sim, tmp_path, running, sync=QUICK)
    monitor.authorize(sim.issue_auth_code())
    wait_for(lambda: monitor.scheduler.runs >= 1)
    sim.faults.fail_next(1, status=401, method="oauth.token",
                         body={"error": "PAYMENT_REQUIRED", "error_description": "Payment required"})
    sim.expire_access_tokens()
    waiting = [add(sim, f"unpaid {n}") for n in range(3)]
    notify(monitor, sim, *waiting)  # intake keeps storing
    wait_for(lambda: monitor.status().auth_state == "reauthorize", timeout=10)
    sim.reset_stats()
    time.sleep(1.5)
    assert sim.stats.http_requests == 0 and sim.stats.token_refreshes == 0  # no loop
    monitor.authorize(sim.issue_auth_code())  # the user authorizes again
    for deal_id in waiting:
        synced(monitor, sim, deal_id, timeout=10)


# -- §8 row 5 / promise 19: transport faults, bounded timeouts ----------------------------------------
def test_row5_client_timeouts_are_bounded():
    timeout = inspect.signature(BitrixClient).parameters["timeout"].default
    assert timeout[0] <= 5 and timeout[1] <= 70  # connect ≤ 5 s, read ≤ 70 s (portal: 60 s max)
    assert inspect.signature(OAuthAuth).parameters["timeout"].default <= 30


@pytest.mark.parametrize("fault", ["stall", "drop", "truncate", "html_200", "html_502",
                                   "garbage_200", "refused"])
def test_row5_transport_faults_are_transient_and_retried(tmp_path, running, sim, fault):
    proxy = TcpProxy(sim.port)
    try:
        hook = f"http://127.0.0.1:{proxy.port}/rest/{sim.webhook_user}/{sim.webhook_secret}/"
        settings = settings_for(sim, tmp_path, sync=QUICK, portal={"webhook_url": hook})
        monitor = running(settings)
        wait_for(lambda: monitor.scheduler.runs >= 1)
        monitor.client.timeout = (1.0, 1.5)  # the defaults (5 s, 65 s) are checked above
        deal_id = add(sim, fault)
        if fault == "stall":
            sim.faults.stall_next(1, seconds=3.0)
        elif fault == "drop":
            sim.faults.drop_next(1)
        elif fault == "truncate":
            sim.faults.truncate_next(1)
        elif fault == "html_200":
            sim.faults.fail_next(1, status=200, html=True)
        elif fault == "html_502":
            sim.faults.fail_next(1, status=502, html=True)
        elif fault == "garbage_200":
            sim.faults.fail_next(1, status=200, body=b'{"result": {"ID": "1", "TI')
        elif fault == "refused":
            proxy.down()
        notify(monitor, sim, deal_id, domain=f"127.0.0.1:{proxy.port}")
        if fault == "refused":
            time.sleep(1.5)  # the client meets a refused connection and backs off
            proxy.up()
        # recovery takes a few seconds (one backoff); 60 s only detects a hang
        synced(monitor, sim, deal_id, timeout=60)
        assert monitor.worker.alive and monitor.worker.crashes == 0
        assert monitor.status().failed_count == 0
    finally:
        proxy.close()


# -- §8 row 6: 500 and OVERLOAD_LIMIT -----------------------------------------------------------------
def test_row6_internal_server_error_is_retried(tmp_path, running, sim):
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    deal_id = add(sim, "500")
    sim.faults.fail_next(2, status=500)
    notify(monitor, sim, deal_id)
    synced(monitor, sim, deal_id)
    assert monitor.status().failed_count == 0


def test_row6_overload_limit_pauses_all_calls_and_alerts(tmp_path, running, rec_sim):
    """``OVERLOAD_LIMIT`` is a manual block by Bitrix24: pause everything (long), say so."""
    sim, log = rec_sim
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    sim.faults.fail_next(100, status=503, body={
        "error": "OVERLOAD_LIMIT", "error_description": "REST API is blocked due to overload."})
    try:
        notify(monitor, sim, add(sim, "blocked"))
        wait_for(lambda: sim.stats.faults_injected >= 1, timeout=5)
        first = log.times()[-1]
        time.sleep(5)
        assert log.count(since=first + 0.001) == 0, "calls went on after OVERLOAD_LIMIT"
        assert "OVERLOAD_LIMIT" in monitor.health()["last_error"]
    finally:
        sim.faults.clear()


# -- §8 row 7: target database down -------------------------------------------------------------------
def pg_through(proxy: TcpProxy) -> str:
    return make_url(PG_URL).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def test_row7_target_down_mid_run_waits_then_drains(tmp_path, running, sim, table_name):
    _server_or_skip(PG_URL)
    proxy = TcpProxy(make_url(PG_URL).port or 5432)
    try:
        settings = settings_for(sim, tmp_path, sync=QUICK,
                                target={"url": pg_through(proxy), "table": table_name})
        monitor = running(settings)
        wait_for(lambda: monitor.scheduler.runs >= 1)
        first = add(sim, "before the outage")
        notify(monitor, sim, first)
        synced(monitor, sim, first)
        proxy.down()  # the server goes away, open connections are cut
        sim.portal.update_deal(first, {"TITLE": "changed during the outage"})
        second = add(sim, "added during the outage")
        latencies = []
        with requests.Session() as session:
            for deal_id in (first, second):
                status, took = timed_post(session, listen_url(monitor), envelope(sim, deal_id))
                assert status == 200  # intake continues
                latencies.append(took)
        # hang detector, not a latency goal (bench/ has those): an ack takes ~10 ms, 2 s is far over 10x
        assert max(latencies) < 2.0  # hang guard: an ack never waits for the target
        wait_for(lambda: "target database" in monitor.health()["last_error"], timeout=10)
        assert monitor.health()["status"] == "unavailable"  # the target is down: not ready
        assert any("target database" in p for p in monitor.health()["problems"])
        time.sleep(2)
        proxy.up()
        for deal_id in (first, second):
            synced(monitor, sim, deal_id, timeout=20)
        assert monitor.status().failed_count == 0
    finally:
        proxy.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_row7_target_down_at_start_then_back(tmp_path, running, sim, table_name, backend):
    """The app starts while the target is unreachable ("events wait in the inbox"); once the
    target is back, the waiting events must be written (the table created then)."""
    proxy = None
    if backend == "sqlite":
        later = tmp_path / "not-yet" / "target.db"
        url = sqlite_url(later)
    else:
        _server_or_skip(PG_URL)
        proxy = TcpProxy(make_url(PG_URL).port or 5432)
        url = pg_through(proxy)
        proxy.down()
    try:
        monitor = running(settings_for(sim, tmp_path, sync=QUICK,
                                       target={"url": url, "table": table_name}))
        deal_id = add(sim, "waits for the target")
        notify(monitor, sim, deal_id)
        time.sleep(1.0)
        if backend == "sqlite":
            later.parent.mkdir()
        else:
            proxy.up()
        synced(monitor, sim, deal_id, timeout=12)
    finally:
        if proxy is not None:
            proxy.close()


# -- §8 row 8: target locked ----------------------------------------------------------------------------
def test_row8_sqlite_target_locked_intake_unaffected_then_syncs(tmp_path, running, sim):
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    first = add(sim, "first")
    notify(monitor, sim, first)
    synced(monitor, sim, first)
    locker = sqlite3.connect(monitor.where.target_url.removeprefix("sqlite:///"), timeout=1,
                             isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        deals = [add(sim, f"locked {n}") for n in range(30)]
        latencies = []
        with requests.Session() as session:
            for deal_id in deals:
                status, took = timed_post(session, listen_url(monitor), envelope(sim, deal_id))
                assert status == 200
                latencies.append(took)
                time.sleep(0.05)
        # hang detector, not a latency goal (bench/ has those): an ack takes ~10 ms, 2 s is far over 10x
        # and well under the app's 10 s busy timeout an ack that waited for the lock would show
        assert max(latencies) < 2.0, latencies  # hang guard
        rows = target_table(monitor.where.target_url)
        assert not set(deals) & set(rows)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    for deal_id in deals:
        synced(monitor, sim, deal_id, timeout=30)
    assert monitor.status().failed_count == 0


def test_row8_postgres_row_lock_does_not_stall_other_deals(tmp_path, running, sim, table_name):
    """A row held by another session must cost a bounded wait (lock_timeout), not stop the
    worker: other deals keep syncing; the locked one syncs after the release."""
    _server_or_skip(PG_URL)
    monitor = running(settings_for(sim, tmp_path, sync=QUICK,
                                   target={"url": PG_URL, "table": table_name}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    locked = add(sim, "to be locked")
    notify(monitor, sim, locked)
    synced(monitor, sim, locked)
    conn = psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"), autocommit=False)
    try:
        conn.execute(f"SELECT * FROM {table_name} WHERE bitrix_id = %s FOR UPDATE", (locked,))
        sim.portal.update_deal(locked, {"TITLE": "changed while locked"})
        notify(monitor, sim, locked)
        reads = sim.stats.calls_by_method["crm.deal.get"]
        wait_for(lambda: sim.stats.calls_by_method["crm.deal.get"] > reads, timeout=5)
        time.sleep(0.5)  # the worker now waits on the row lock
        other = add(sim, "not locked")
        notify(monitor, sim, other)
        synced(monitor, sim, other, timeout=10)
    finally:
        conn.rollback()
        conn.close()
    synced(monitor, sim, locked, timeout=20)


# -- §8 row 9: schema drift -------------------------------------------------------------------------------
def test_row9_schema_drift_is_dead_lettered_then_redriven(tmp_path, running, sim, target_url, table_name):
    monitor = running(settings_for(sim, tmp_path, sync=QUICK,
                                   target={"url": target_url, "table": table_name}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    deal_id = add(sim, "drift")
    notify(monitor, sim, deal_id)
    synced(monitor, sim, deal_id)
    engine = monitor.target.engine
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table_name} DROP COLUMN comments"))
    sim.portal.update_deal(deal_id, {"TITLE": "after drift"})
    notify(monitor, sim, deal_id)
    wait_for(lambda: monitor.status().failed_count >= 1, timeout=8)
    failed = [e for e in monitor.events(20) if e.status == EventStatus.FAILED]
    assert failed and all(e.deal_id == deal_id and "comments" in e.error for e in failed)
    assert monitor.worker.alive and monitor.worker.crashes == 0
    with engine.begin() as conn:  # the DBA fixes the table
        conn.execute(text(f"ALTER TABLE {table_name} ADD COLUMN comments TEXT"))
        conn.execute(text(f"UPDATE {table_name} SET comments = ''"))
    assert monitor.retry_failed() >= 1
    synced(monitor, sim, deal_id)


def test_row9_narrowed_column_parks_only_the_deal_that_does_not_fit(tmp_path, running, sim, table_name):
    """Promise 21: one poison among many: the rest flow, the poison is parked with the reason."""
    _server_or_skip(PG_URL)
    monitor = running(settings_for(sim, tmp_path, sync={**QUICK, "max_attempts": 1},
                                   target={"url": PG_URL, "table": table_name}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    with monitor.target.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table_name} ALTER COLUMN title TYPE varchar(20)"))
    deals = [add(sim, f"fits {n}") for n in range(49)]
    poison = add(sim, "this title is far too long for twenty characters")
    notify(monitor, sim, *deals, poison)
    wait_for(lambda: monitor.status().inbox_depth == 0, timeout=10)
    rows = target_table(PG_URL, table_name)
    assert set(deals) <= set(rows) and poison not in rows
    failed = [e for e in monitor.events(200) if e.status == EventStatus.FAILED]
    assert {e.deal_id for e in failed} == {poison}
    assert "too long" in failed[0].error


# -- §8 rows 10 and 11: disk full -----------------------------------------------------------------------------
def limit_file_size(pid: int, limit: int | None) -> None:
    """Set the process' RLIMIT_FSIZE from outside (prlimit); None lifts it. Python ignores SIGXFSZ,
    so writes past the limit fail with EFBIG and SQLite reports a disk I/O error."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    soft = hard if limit is None else limit
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


@pytest.fixture
def disk_full_run(make_app, sim):
    """An app whose state DB could not be written while some deals changed."""
    app = make_app(sync__reconcile_minutes=5.0).start()  # the periodic run is out of the window
    before = add(sim, "before the disk filled up")
    synced_app(app, sim, before)
    sim.clear_deliveries()
    limit_file_size(app.proc.pid, 1)
    gap = [add(sim, f"during {n}") for n in range(5)]
    assert sim.wait_deliveries(20)
    direct = post(app.events_url, envelope(sim, gap[0]))
    during = [d.status for d in sim.deliveries] + [direct.status_code]
    health = app.health()
    limit_file_size(app.proc.pid, None)
    return app, gap, during, health


def synced_app(app: HeadlessApp, sim, deal_id: int, timeout: float = 15.0) -> None:
    url = sqlite_url(app.workdir / "data" / "target.db")
    wait_for(lambda: row_matches(target_table(url).get(deal_id), sim.portal.get_deal(deal_id)),
             timeout=timeout)


def test_row10_inbox_disk_full_never_acks_and_recovers(disk_full_run, sim):
    app, gap, during, health = disk_full_run
    assert during and set(during) == {503}, during  # never 200-then-lost
    assert health["listening"] is True  # the listener itself kept answering
    after = add(sim, "after the space came back")
    synced_app(app, sim, after)  # recovers by itself
    assert integrity(app.workdir / "data" / "state.db") == "ok"
    assert app.stop() == 0
    assert integrity(app.workdir / "data" / "state.db") == "ok"


def test_row10_deals_refused_during_the_disk_full_are_caught_up(disk_full_run, sim):
    """Promise 22: a 503 from intake is a known gap: reconcile once writes succeed again."""
    app, gap, during, _ = disk_full_run
    add(sim, "writes work again")  # the first successful write after the fault
    for deal_id in gap:
        synced_app(app, sim, deal_id, timeout=10)


def test_row11_target_sqlite_full_keeps_items_pending_then_drains(tmp_path, running, sim):
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    first = add(sim, "fits")
    notify(monitor, sim, first)
    synced(monitor, sim, first)
    engine = monitor.target.engine

    def full(dbapi_connection, _record) -> None:  # this connection may not grow the file
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    event.listen(engine, "connect", full)
    engine.dispose()
    try:
        big = [add(sim, f"big {n}", COMMENTS="x" * 50_000) for n in range(3)]
        notify(monitor, sim, *big)
        wait_for(lambda: "full" in monitor.status().last_error, timeout=10)
        assert not set(big) & set(target_table(monitor.where.target_url))  # no partial rows
        assert monitor.status().inbox_depth >= 3 and monitor.status().failed_count == 0
    finally:
        event.remove(engine, "connect", full)
        engine.dispose()
    for deal_id in big:
        synced(monitor, sim, deal_id, timeout=30)
    assert integrity(Path(monitor.where.target_url.removeprefix("sqlite:///"))) == "ok"


# -- §8 row 12 / promise 25: port taken, second instance ---------------------------------------------------
def run_cli(config_path: Path, env: dict | None = None, timeout: float = 20) -> tuple[int | None, str]:
    full_env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", **(env or {})}
    full_env.pop("DEAL_MONITOR_WEBHOOK_URL", None)
    full_env.pop("DEAL_MONITOR_APPLICATION_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "deal_monitor", "--headless", "--config",
                             str(config_path)], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, out.decode("utf-8", "replace")


def test_row12_port_taken_fails_fast_with_a_clear_message(tmp_path, sim):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        app = HeadlessApp(tmp_path / "app", sim)
        app.config_path.write_text(app.config_path.read_text().replace(
            f"port = {app.port}", f"port = {port}"))
        started = time.monotonic()
        code, out = run_cli(app.config_path)
        took = time.monotonic() - started
    assert code == 3, out
    assert took < 30  # hang detector: start-up and refusal take ~2 s; it must not retry forever
    assert f"cannot listen on 127.0.0.1:{port}" in out
    assert "Traceback" not in out


def test_row12_second_instance_on_the_same_data_dir_is_refused(make_app, sim):
    first = make_app().start()
    second = HeadlessApp(first.workdir, sim)  # same data dir, another free port
    code, out = run_cli(second.config_path, timeout=6)
    assert code not in (None, 0), "a second instance ran on the same inbox"
    assert re.search(r"already running|in use|another instance|locked", out, re.I), out
    assert first.health()["listening"] is True


# -- §8 row 13 / promise 27: keyring unavailable or hanging --------------------------------------------
def test_row13_no_secure_keyring_means_session_only_and_says_so(make_app, sim):
    app = make_app().start()  # the harness runs with keyring.backends.fail.Keyring
    deal_id = add(sim, "keyring-less")
    synced_app(app, sim, deal_id)
    assert app.stop() == 0
    console = app.console().lower()
    assert "keyring" in console and ("session" in console or "not stored" in console), console


SLEEPY_BACKEND = textwrap.dedent('''
    import time
    from keyring.backend import KeyringBackend

    class Sleepy(KeyringBackend):
        """An unlock prompt nobody answers (secretstorage #33)."""
        priority = 1

        def get_password(self, service, username):
            time.sleep(3600)

        def set_password(self, service, username, password):
            time.sleep(3600)

        def delete_password(self, service, username):
            time.sleep(3600)
''')


def start_with_hanging_keyring(tmp_path, sim, limit: float = 0.3) -> tuple[subprocess.Popen, HeadlessApp]:
    """The real CLI with an allow-listed backend that never answers; its 5 s time limit is
    scaled down to ``limit`` (the product default is asserted in test_secrets)."""
    (tmp_path / "sleepy_keyring.py").write_text(SLEEPY_BACKEND)
    app = HeadlessApp(tmp_path / "app", sim, portal__webhook_url="", portal__application_token="")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
           "PYTHON_KEYRING_BACKEND": "sleepy_keyring.Sleepy"}
    env.pop("DEAL_MONITOR_WEBHOOK_URL", None)
    env.pop("DEAL_MONITOR_APPLICATION_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.app_driver", "--config", str(app.config_path),
         "--allow-backend", "sleepy_keyring.Sleepy", "--keyring-timeout", str(limit)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _answers(app.port), timeout=30)
    return proc, app


def stop_process(proc: subprocess.Popen, timeout: float) -> int | None:
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        return None


def test_row13_hanging_keyring_does_not_slow_the_listener(tmp_path, sim):
    proc, app = start_with_hanging_keyring(tmp_path, sim, limit=5.0)  # the product's limit
    try:
        started = time.monotonic()
        reply = post(app.events_url, envelope(sim, 1), timeout=30)
        took_event = time.monotonic() - started
        started = time.monotonic()
        requests.get(f"http://127.0.0.1:{app.port}/healthz", timeout=30)
        took_health = time.monotonic() - started
        assert reply.status_code == 401  # no token known: refused
        # hang detector: each answer takes ~10 ms; 2.5 s is far over 10x that and half the
        # 5 s keyring limit a listener that waited for the keyring would show
        assert took_event < 2.5 and took_health < 2.5, (  # hang guard
            f"event {took_event:.2f} s, healthz {took_health:.2f} s: the listener waits for the keyring")
    finally:
        stop_process(proc, 2)


def test_row13_hanging_keyring_does_not_block_shutdown(tmp_path, sim):
    proc, _ = start_with_hanging_keyring(tmp_path, sim)
    code = stop_process(proc, 8)
    assert code == 0, "SIGTERM did not stop the app while a keyring call hung"


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/livez", timeout=10).ok
    except requests.ConnectionError:
        return False


# -- §8 row 15 (part): a permanently failing offline item is reported to the portal ----------------------------
def test_row15_permanent_failure_in_an_offline_batch_is_marked_as_error(tmp_path, running, sim):
    monitor, _ = app_monitor(
        sim, tmp_path, running, portal={"offline_events": True}, listener={"enabled": False},
        sync={**QUICK, "offline_poll_seconds": 0.2, "max_attempts": 1})
    monitor.authorize(sim.issue_auth_code())
    monitor.bind_handlers(offline=True)
    monitor.scheduler.stop()  # only the offline queue brings deals in
    good = add(sim, "offline ok")
    poison = add(sim, "offline unreadable")
    real_read = sim.portal.read_for_rest

    def read(deal_id: int):
        if deal_id == poison:
            raise RestError(400, "", "Access denied")
        return real_read(deal_id)

    sim.portal.read_for_rest = read
    wait_for(lambda: good in live_ids(*monitor_target(monitor)), timeout=20)
    wait_for(lambda: monitor.state.get_value("offline.process_id") is None, timeout=20)
    rows = sim.offline.list_rows()
    assert [r["ERROR"] for r in rows] == ["1"], rows  # parked at the portal, not left reserved
    assert all(r["PROCESS_ID"] == "" for r in rows)


# -- §8 row 18 / promise 4: tunnel down; reconciliation brings what was missed --------------------------------
def test_row18_tunnel_down_missed_deals_arrive_with_the_next_reconciliation(tmp_path, running, sim):
    monitor = running(settings_for(sim, tmp_path, sync={**QUICK, "reconcile_minutes": 0.05}))
    tunnel = TcpProxy(monitor.listener.port)
    try:
        sim.add_outgoing_webhook(f"http://127.0.0.1:{tunnel.port}/bitrix24/events")
        wait_for(lambda: monitor.scheduler.runs >= 1)
        seen = add(sim, "through the tunnel")
        synced(monitor, sim, seen)
        tunnel.down()
        missed = [add(sim, f"missed {n}", STAGE_ID="WON") for n in range(20)]
        sim.portal.update_deal(seen, {"TITLE": "changed while the tunnel was down"})
        assert sim.wait_deliveries(20)
        assert not any(d.ok for d in sim.deliveries if d.deal_id in missed)  # lost at the portal
        tunnel.up()
        for deal_id in [*missed, seen]:
            synced(monitor, sim, deal_id, timeout=15)  # one reconciliation cycle (3 s) + work
    finally:
        tunnel.close()


# -- §8 row 20: inbox file corrupt at start -------------------------------------------------------------
@pytest.mark.parametrize("where", ["header", "pages"])
def test_row20_corrupt_state_db_is_moved_aside_and_rebuilt(tmp_path, running, sim, where):
    deals = [add(sim, f"c{n}") for n in range(120)]
    settings = settings_for(sim, tmp_path, sync=QUICK)
    monitor = running(settings)
    wait_for(lambda: set(deals) <= live_ids(*monitor_target(monitor)), timeout=20)
    monitor.stop()
    state = tmp_path / "data" / "state.db"
    with contextlib.closing(sqlite3.connect(state)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = state.stat().st_size
    with open(state, "r+b") as f:
        if where == "header":
            f.write(b"\x00" * 100)
        else:
            for offset in range(4096 * 2, size - 4096, 4096 * 3):
                f.seek(offset + 100)
                f.write(b"\xff" * 400)
    sim.portal.update_deal(deals[0], {"TITLE": "changed while stopped"})
    again = running(settings)  # must not raise: no crash loop
    assert list(state.parent.glob("state.db.corrupt-*")), "the broken file was not kept aside"
    assert "corrupt" in again.status().last_error
    assert integrity(state) == "ok"
    synced(again, sim, deals[0], timeout=20)  # full reconciliation on the fresh inbox


# -- §8 row 21: an unexpected exception in the worker ----------------------------------------------------
def test_row21_worker_survives_an_unexpected_exception(tmp_path, running, sim, monkeypatch):
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    real_write = monitor.target.write
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected bug in the upsert path")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(monitor.target, "write", flaky)
    deal_id = add(sim, "worker crash")
    notify(monitor, sim, deal_id)
    synced(monitor, sim, deal_id, timeout=15)
    assert monitor.worker.crashes == 1 and monitor.worker.alive
    assert monitor.status().failed_count == 0


# -- §8 row 22: read-after-event lag -------------------------------------------------------------------
def test_row22_read_lag_is_retried_not_dead_lettered(tmp_path, running, sim):
    monitor = running(settings_for(sim, tmp_path, sync=QUICK))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    sim.faults.hide_new_deals_reads = 2
    deal_id = add(sim, "lagging")
    notify(monitor, sim, deal_id, event_name="ONCRMDEALADD")
    synced(monitor, sim, deal_id, timeout=15)
    # the state DB records the outcome right after the target's commit: wait for it too
    wait_for(lambda: monitor.state.deal(deal_id) is not None)
    assert monitor.status().failed_count == 0
    assert monitor.state.deal(deal_id).state.value == "synced"


# -- §8 row 7/8 for MariaDB: bounded waits exist there (innodb_lock_wait_timeout) -----------------------
def test_mariadb_lock_wait_is_bounded_by_the_server(tmp_path):
    _server_or_skip(MYSQL_URL)
    import pymysql

    url = make_url(MYSQL_URL)
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, database=url.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@innodb_lock_wait_timeout")
            assert cur.fetchone()[0] <= 60
    finally:
        conn.close()
