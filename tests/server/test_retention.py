"""Retention in a long-running instance: days pass on an injected clock, the instance keeps
running, and old finished work leaves the state DB (queued work never does)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from deal_monitor.config import from_mapping
from deal_monitor.store.engine import utcnow
from deal_monitor.sync import retention
from tests.e2e.harness import wait_for


class Clock:
    """Real UTC time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()
        self.lock = threading.Lock()

    def __call__(self):
        with self.lock:
            return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        with self.lock:
            self.offset += delta


def counts(state_path) -> dict[str, int]:
    """Rows in the state DB, read with plain SQL."""
    engine = create_engine(f"sqlite:///{state_path}")
    try:
        with engine.connect() as conn:
            return {
                "done": conn.execute(text("SELECT COUNT(*) FROM inbox WHERE status != 'queued'")).scalar(),
                "queued": conn.execute(text("SELECT COUNT(*) FROM inbox WHERE status = 'queued'")).scalar(),
                "history": conn.execute(text("SELECT COUNT(*) FROM deal_history")).scalar(),
                "rejected": conn.execute(text("SELECT COUNT(*) FROM rejection")).scalar(),
                "deals": conn.execute(text("SELECT COUNT(*) FROM deal_state")).scalar(),
            }
    finally:
        engine.dispose()


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(retention, "CLOCK", fake)
    monkeypatch.setattr(retention, "TICK_S", 0.05)
    return fake


def test_pruning_goes_on_while_the_instance_runs(running, sim, tmp_path, clock):
    import requests

    settings = from_mapping({
        "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
        "listener": {"port": 0},
        "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0, "deletion_check_minutes": 0},
        "storage": {"data_dir": str(tmp_path / "data"), "keep_days": 2},
    }, env={})
    monitor = running(settings)
    # the catch-up at start must not add rows while the test counts them
    wait_for(lambda: monitor.scheduler.runs >= 1, timeout=20)
    monitor.scheduler.stop()
    sim.add_outgoing_webhook(f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events")
    state_db = tmp_path / "data" / "state.db"

    first = [sim.portal.add_deal({"TITLE": f"r{n}", "STAGE_ID": "PREPARATION"}) for n in range(3)]
    requests.post(f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events",
                  data="event=ONCRMDEALUPDATE&auth[application_token]=nope",
                  headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=5)
    wait_for(lambda: (c := counts(state_db))["queued"] == 0 and c["done"] >= 3 and c["deals"] == 3,
             timeout=20)
    monitor.pause()  # a row that waits must survive any pruning
    monitor.resync([first[0]])
    before = counts(state_db)
    assert before["history"] > 0 and before["rejected"] == 1 and before["queued"] == 1

    wait_for(lambda: monitor.retention.runs >= 1, timeout=10)  # the run at start is over
    runs = monitor.retention.runs
    clock.advance(timedelta(days=1))  # within keep_days: nothing goes
    clock.advance(retention.INTERVAL)
    wait_for(lambda: monitor.retention.runs > runs, timeout=10)
    assert counts(state_db) == before

    runs = monitor.retention.runs
    clock.advance(timedelta(days=2))  # now the first batch is older than keep_days
    wait_for(lambda: monitor.retention.runs > runs, timeout=10)  # a whole run, all tables
    assert counts(state_db) == {"done": 0, "queued": 1, "history": 0, "rejected": 0, "deals": 3}

    # the instance goes on working; its new work waits for the next run (an hour later on
    # the injected clock) and, being older than keep_days on that clock, goes then
    monitor.resume()
    second = sim.portal.add_deal({"TITLE": "later", "STAGE_ID": "PREPARATION"})
    wait_for(lambda: (c := counts(state_db))["queued"] == 0 and c["done"] >= 2
             and c["deals"] == 4, timeout=20)
    assert counts(state_db)["history"] > 0
    runs = monitor.retention.runs
    clock.advance(retention.INTERVAL)
    wait_for(lambda: monitor.retention.runs > runs, timeout=10)
    final = counts(state_db)
    assert final["done"] == 0 and final["history"] == 0 and final["queued"] == 0
    assert final["deals"] == 4  # the deals themselves stay (their last state)
    assert monitor.retention.runs >= 4
    assert second in {int(row[0]) for row in _ids(state_db)}


def _ids(state_db):
    engine = create_engine(f"sqlite:///{state_db}")
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT deal_id FROM deal_state")).all()
    finally:
        engine.dispose()
