"""Crash consistency (design §6 promises 1, 3, 4, 23, 24; §8 rows 14, 15): kill -9 and restart.

A Jepsen-style set check around the headless app as a subprocess: the portal simulator
changes deals while its queue server posts hundreds of events; the app is killed at a random
moment or dies at a named crash point (``DEAL_MONITOR_CRASH_AT``); the portal keeps changing
deals while it is down (those deliveries are lost, as with Bitrix24); the app is restarted.
Then: every acknowledged event is in the inbox, every deal is in the target exactly once with
the portal's latest data, nothing appears that was never created, no dead letters, and both
SQLite files pass ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from deal_monitor.paths import sqlite_url
from deal_monitor.simulator import PortalSimulator, formcodec
from tests.e2e.harness import ROOT, HeadlessApp, wait_for
from tests.oracle import converge, duplicate_ids, target_table
from tests.reliability.support import LIVE_STAGES, integrity, sqlite_rows

FAST = {"sync__debounce_seconds": 0.1, "sync__max_delay_seconds": 1.0}


class Workload:
    """Seeded portal activity; remembers every deal it ever created."""

    def __init__(self, sim: PortalSimulator, rnd: random.Random) -> None:
        self.sim = sim
        self.rnd = rnd
        self.created: set[int] = set()
        self.deleted: set[int] = set()
        self.counter = 0
        self.events = 0  # events the portal fired (one per add/update/delete)

    def run(self, creates: int, updates: int, deletes: int = 0) -> None:
        portal = self.sim.portal
        for _ in range(creates):
            self.counter += 1
            deal_id = portal.add_deal({
                "TITLE": f"deal {self.counter}", "STAGE_ID": self.rnd.choice(LIVE_STAGES),
                "OPPORTUNITY": f"{self.rnd.randint(1, 10**7)}.{self.rnd.randint(0, 99):02d}",
            })
            self.created.add(deal_id)
            self.events += 1
        live = sorted(self.created - self.deleted)
        for _ in range(updates):
            self.counter += 1
            portal.update_deal(self.rnd.choice(live), {
                "TITLE": f"update {self.counter}", "STAGE_ID": self.rnd.choice(LIVE_STAGES),
                "COMMENTS": f"c{self.counter}"})
            self.events += 1
        for deal_id in self.rnd.sample(live, min(deletes, len(live))):
            portal.delete_deal(deal_id)
            self.deleted.add(deal_id)
            self.events += 1


def acked_missing_from_inbox(sim: PortalSimulator, app: HeadlessApp) -> list[tuple]:
    """Acknowledged deliveries (2xx) with no inbox row: must be empty (lost_acked = ∅)."""
    stored = {(r["event"], r["deal_id"], r["ts"]) for r in app.inbox() if r["source"] == "push"}
    missing = []
    for delivery in sim.deliveries:
        if not delivery.ok or delivery.url != app.events_url:
            continue
        form = formcodec.decode(delivery.body)  # as the portal sent it, not as the app reads it
        key = (form["event"], int(form["data"]["FIELDS"]["ID"]), int(form["ts"]))
        if key not in stored:
            missing.append(key)
    return missing


def verify(app: HeadlessApp, sim: PortalSimulator, work: Workload) -> None:
    data = app.workdir / "data"
    url = sqlite_url(data / "target.db")
    converge(lambda: target_table(url), sim, work.created, timeout=30)
    wait_for(lambda: app.health()["inbox_depth"] == 0, timeout=30)
    assert acked_missing_from_inbox(sim, app) == []
    assert duplicate_ids(url) == []
    failed = sqlite_rows(data / "state.db", "SELECT deal_id, error FROM inbox WHERE status='failed'")
    assert failed == []
    assert integrity(data / "state.db") == "ok"
    assert integrity(data / "target.db") == "ok"
    assert app.stop() == 0  # and it still shuts down cleanly


def wait_exit(app: HeadlessApp, timeout: float) -> int | None:
    try:
        return app.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


# three seeds in CI; DEAL_MONITOR_CRASH_ITERATIONS=200 for the nightly run
SEEDS = [11, 23, 47] + list(range(1000, 1000 + max(0, int(os.environ.get(
    "DEAL_MONITOR_CRASH_ITERATIONS", "3")) - 3)))


@pytest.mark.parametrize("seed", SEEDS)
def test_kill_9_at_a_random_moment(make_app, sim, seed):
    rnd = random.Random(seed)
    work = Workload(sim, rnd)
    work.run(creates=30, updates=0)  # there before the first start: the first reconcile's job
    app = make_app(**FAST).start()
    # the sender pauses 10 ms before each post, so the ~300 events below take >= 3 s to go out
    # however fast this box is: the kill at <= 0.6 s finds most of them still on their way
    sim.delivery_delay = 0.01
    work.run(creates=150, updates=150)  # ~300 events queue up at the portal's sender
    time.sleep(rnd.uniform(0.05, 0.6))
    in_flight = work.events - len(sim.deliveries)
    app.stop(kill=True)
    sim.delivery_delay = 0.0
    assert in_flight >= 50, in_flight  # killed with events still on their way
    work.run(creates=20, updates=60, deletes=8)  # while it is down: these posts are lost
    assert sim.wait_deliveries(60)
    app.start()
    work.run(creates=10, updates=30, deletes=2)
    assert sim.wait_deliveries(60)
    verify(app, sim, work)


@pytest.mark.parametrize(
    ("point", "nth"),
    [("after_inbox_commit", 60), ("after_fetch", 3), ("after_target_commit", 3)],
)
def test_death_at_a_named_crash_point(make_app, sim, point, nth):
    rnd = random.Random(f"{point}:{nth}")
    work = Workload(sim, rnd)
    app = make_app(**FAST).start(env={"DEAL_MONITOR_CRASH_AT": f"{point}:{nth}"})
    work.run(creates=150, updates=150)
    code = wait_exit(app, 20)
    for _ in range(10):  # keep it busy until it reaches the point (bounded)
        if code is not None:
            break
        work.run(creates=5, updates=20)
        code = wait_exit(app, 2)
    assert code == 137, f"the process never reached {point}:{nth}"
    app.stop()
    work.run(creates=20, updates=40, deletes=5)  # lost while it is dead
    assert sim.wait_deliveries(60)
    app.start()  # no crash point this time
    work.run(creates=10, updates=20)
    assert sim.wait_deliveries(60)
    verify(app, sim, work)


def test_sigterm_during_a_burst_loses_no_acknowledged_event(make_app, sim):
    """Promise 24: stop accepting, finish in-flight requests, exit 0 within 5 s; after the
    restart every 2xx'd event is processed."""
    work = Workload(sim, random.Random(5))
    app = make_app(**FAST).start()
    work.run(creates=150, updates=100)
    time.sleep(0.4)
    started = time.monotonic()
    assert app.stop(timeout=15) == 0
    # the promise: exit within the 5 s drain limit (+1 s to leave the process); a stop with
    # nothing stuck takes ~0.5 s, so the bound is also over 10x the expected time
    assert time.monotonic() - started < 5 + 1
    assert sim.wait_deliveries(60)
    app.start()
    verify(app, sim, work)


# -- app mode: killed between event.offline.get(clear=0) and event.offline.clear -----------------
class DriverApp(HeadlessApp):
    """The core in app mode (OAuth) in a subprocess; secrets in a JSON file (the 'keyring')."""

    def __init__(self, workdir: Path, sim: PortalSimulator, secrets: dict, **overrides) -> None:
        super().__init__(workdir, sim, **overrides)
        self.secrets_path = workdir / "keyring.json"
        self.secrets_path.write_text(json.dumps(secrets), encoding="utf-8")

    def start(self, env: dict | None = None) -> DriverApp:
        full_env = dict(os.environ)
        full_env.pop("DEAL_MONITOR_WEBHOOK_URL", None)
        full_env.pop("DEAL_MONITOR_APPLICATION_TOKEN", None)
        full_env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
        full_env.update(env or {})
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.app_driver", "--config",
             str(self.config_path), "--secrets", str(self.secrets_path)],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        return self


def app_mode_secrets(sim: PortalSimulator, client_id: str, client_secret: str) -> dict:
    sim.register_app(client_id, client_secret)
    tokens = sim.issue_tokens(client_id)
    for event in ("ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"):
        reply = requests.post(f"{sim.url}/rest/event.bind.json", timeout=5, json={
            "auth": tokens["access_token"], "event": event, "event_type": "offline",
            "auth_connector": "deal_monitor"})
        assert reply.ok, reply.text
    return {
        "client_secret": client_secret,
        "oauth_tokens": json.dumps({
            "access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
            "expires": time.time() + 3600, "member_id": sim.member_id}),
    }


def test_killed_between_offline_reserve_and_clear(tmp_path, sim):
    """§8 row 15 / promise 4: the reserved batch is read again with the stored process_id after
    the restart, every item is processed, then cleared; nothing stays reserved."""
    secrets = app_mode_secrets(sim, "local.reliability", "reliability-client-secret")
    work = Workload(sim, random.Random(15))
    work.run(creates=70, updates=20)  # queued in the portal's offline queue
    assert len(sim.offline) >= 70
    app = DriverApp(
        tmp_path / "app", sim, secrets,
        portal__webhook_url="", portal__client_id="local.reliability", portal__portal_url=sim.url,
        portal__oauth_server=sim.url, portal__allow_private_http=True, portal__offline_events=True,
        sync__offline_poll_seconds=0.2, **FAST,
    )
    try:
        app.start(env={"DEAL_MONITOR_CRASH_AT": "after_offline_reserve"})
        assert wait_exit(app, 20) == 137
        app.stop()
        state_db = app.workdir / "data" / "state.db"
        (kept,) = sqlite_rows(state_db, "SELECT value FROM kv WHERE key='offline.process_id'")
        process_id = kept["value"]
        reserved = [r for r in sim.offline.list_rows() if r["PROCESS_ID"] == process_id]
        assert len(reserved) == 50  # the whole batch is hidden from other readers now
        work.run(creates=5, updates=5)
        app.start()
        wait_for(app._healthy, timeout=20)
        wait_for(lambda: len(sim.offline) == 0, timeout=30)  # every row cleared, none left reserved
        url = sqlite_url(app.workdir / "data" / "target.db")
        converge(lambda: target_table(url), sim, work.created, timeout=30)
        rows = sqlite_rows(state_db, "SELECT offline_message_id, status FROM inbox "
                                     f"WHERE offline_process_id='{process_id}'")
        assert {r["offline_message_id"] for r in rows} == {r["MESSAGE_ID"] for r in reserved}
        assert {r["status"] for r in rows} <= {"synced", "skipped", "deleted"}
        wait_for(lambda: not sqlite_rows(
            state_db, "SELECT value FROM kv WHERE key='offline.process_id'"), timeout=15)
        assert integrity(state_db) == "ok"
        assert app.stop() == 0
    finally:
        if app.proc is not None:
            app.stop(kill=True)
