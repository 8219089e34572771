"""Scaling out: several instances share one PostgreSQL inbox, split the work, never work a row
twice, and take over the rows a killed instance had leased once its lease has run out."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from deal_monitor import config
from deal_monitor.model import EventStatus, NullSink, SyncOutcome
from deal_monitor.service import Monitor
from deal_monitor.simulator import PortalSimulator
from tests.conftest import PG_URL, _server_or_skip
from tests.e2e.harness import ROOT, HeadlessApp, wait_for
from tests.oracle import live_ids, monitor_target


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database for this test (the state tables have fixed names)."""
    _server_or_skip(PG_URL)
    name = f"dm_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


class Synced(NullSink):
    """Which deals one instance wrote, and when (UTC)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deals: list[tuple[int, datetime]] = []

    def deal_synced(self, outcome: SyncOutcome) -> None:
        if outcome.status == EventStatus.SYNCED:
            with self.lock:
                self.deals.append((outcome.deal_id, datetime.now(UTC).replace(tzinfo=None)))

    def ids(self) -> list[int]:
        with self.lock:
            return [deal_id for deal_id, _ in self.deals]


def instance(sim, tmp_path, state_url: str, n: int, sink: Synced | None = None) -> Monitor:
    settings = config.from_mapping(
        {
            "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
            "listener": {"enabled": False},
            "sync": {"debounce_seconds": 0.05, "reconcile_minutes": 0, "deletion_check_minutes": 0},
            "target": {"url": state_url},
            "storage": {"data_dir": str(tmp_path / f"node{n}"), "state_url": state_url},
        },
        env={},
    )
    monitor = Monitor(settings, sink=sink)
    monitor.start()
    return monitor


def idle(node: Monitor) -> None:
    """Only the rows a test queues are the work: start-up reconciliation finished (a stop in the
    middle would leave the rest of it to the next instance that starts), no scheduled runs,
    start-up work done, paused."""
    wait_for(lambda: node.scheduler.runs >= 1, timeout=60)
    node.scheduler.stop()
    wait_for(lambda: node.status().inbox_depth == 0, timeout=30)
    node.pause()


def inbox(state_url: str, where: str) -> list[dict]:
    """Inbox rows (plain SQL) matching ``where``."""
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT id, deal_id, status, attempts, lease_until FROM inbox "
                                     f"WHERE {where} ORDER BY id"))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def test_two_instances_split_the_work_and_never_work_a_row_twice(tmp_path, pg_database):
    # 0.2 s per portal request: a pass of 500 deals (10 batch reads) takes ~2 s, so the second
    # instance is certainly awake while the first still holds its first pass
    with PortalSimulator(rate_limit=False, latency=0.2) as sim:
        ids = sim.portal.bulk_add(1200, STAGE_ID="EXECUTING")
        sinks = [Synced(), Synced()]
        nodes = [instance(sim, tmp_path, pg_database, n, sinks[n]) for n in range(2)]
        try:
            for node in nodes:
                idle(node)
            for sink in sinks:
                sink.deals.clear()
            sim.reset_stats()
            nodes[0].resync(ids)
            nodes[0].resume()
            # the first instance has leased its first pass; the second now starts
            wait_for(lambda: inbox(pg_database, "status = 'queued' AND lease_until IS NOT NULL"),
                     timeout=30, interval=0.02)
            nodes[1].resume()
            wait_for(lambda: nodes[0].status().inbox_depth == 0, timeout=120)  # ~6 s; hang detector
            assert live_ids(*monitor_target(nodes[0])) == set(ids)
            done = [sink.ids() for sink in sinks]
            # split: both instances wrote deals, no deal was written by both or twice by one
            assert done[0] and done[1], (len(done[0]), len(done[1]))
            assert Counter(done[0] + done[1]) == Counter(ids)
            # and every deal was read from the portal exactly once across both instances
            assert sim.stats.calls_by_method["crm.deal.get"] == 1200
            assert inbox(pg_database, "event = 'RESYNC' AND (status <> 'synced' OR attempts <> 1)") == []
        finally:
            for node in nodes:
                node.stop()


LEASE = 8.0  # seconds; the product's 30 s lease shortened in the killed process only


def start_victim(sim, tmp_path, state_url: str) -> tuple[subprocess.Popen, HeadlessApp]:
    """An instance in its own process that leases a pass, reads the portal and dies (like
    ``kill -9``) before it writes or records anything."""
    app = HeadlessApp(tmp_path / "victim", sim, storage__state_url=state_url, target__url=state_url,
                      sync__debounce_seconds=0.05, sync__reconcile_minutes=0,
                      sync__deletion_check_minutes=0, listener__enabled=False)
    secrets = tmp_path / "victim" / "keyring.json"
    secrets.write_text("{}", encoding="utf-8")
    env = {**os.environ, "DEAL_MONITOR_CRASH_AT": "after_fetch",
           "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    env.pop("DEAL_MONITOR_WEBHOOK_URL", None)
    env.pop("DEAL_MONITOR_APPLICATION_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.app_driver", "--config", str(app.config_path),
         "--secrets", str(secrets), "--lease-seconds", str(LEASE)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, app


def test_a_killed_instances_leased_rows_are_taken_over_after_the_lease(tmp_path, pg_database):
    with PortalSimulator(rate_limit=False) as sim:
        ids = sim.portal.bulk_add(600, STAGE_ID="EXECUTING")
        sink = Synced()
        survivor = instance(sim, tmp_path, pg_database, 0, sink)
        proc = None
        try:
            idle(survivor)
            sink.deals.clear()
            survivor.resync(ids)  # queued while the survivor is paused
            sim.reset_stats()
            proc, _ = start_victim(sim, tmp_path, pg_database)
            assert proc.wait(60) == 137  # died at the crash point, right after its portal read
            leased = inbox(pg_database, "status = 'queued' AND lease_until IS NOT NULL")
            assert leased, "the killed instance held no lease"
            held = {r["deal_id"] for r in leased}
            expires = max(r["lease_until"] for r in leased)
            now = datetime.now(UTC).replace(tzinfo=None)
            assert expires <= now + timedelta(seconds=LEASE + 1), "the shortened lease was not used"
            read_by_victim = sim.stats.calls_by_method["crm.deal.get"]
            assert read_by_victim == len(held)

            # the only work: the manual rows (the victim's start-up reconciliation found nothing new)
            assert inbox(pg_database, "status = 'queued' AND event <> 'RESYNC'") == []
            survivor.resume()
            # the rows nobody holds are worked at once; the leased ones wait for the lease
            wait_for(lambda: set(sink.ids()) >= set(ids) - held, timeout=60)
            while datetime.now(UTC).replace(tzinfo=None) < expires - timedelta(seconds=1):
                still = inbox(pg_database, "status = 'queued' AND lease_until IS NOT NULL")
                assert {r["deal_id"] for r in still} == held and all(r["attempts"] == 0 for r in still)
                time.sleep(0.2)
            # then taken over: every deal written exactly once, the held ones after the lease
            wait_for(lambda: len(sink.ids()) >= len(ids), timeout=60)  # ~1 s; hang detector
            survivor_done = dict(sink.deals)
            assert Counter(sink.ids()) == Counter(ids)
            assert all(survivor_done[d] >= expires for d in held)
            assert live_ids(*monitor_target(survivor)) == set(ids)
            assert inbox(pg_database, "event = 'RESYNC' AND (status <> 'synced' OR attempts <> 1)") == []
            # the portal saw each held deal twice (the dead read, the takeover), the rest once
            assert sim.stats.calls_by_method["crm.deal.get"] == len(ids) + len(held)
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
            survivor.stop()
