"""Upgrading: a state DB made by an earlier release's code is migrated and its queue synced.

The fixtures in tests/fixtures/state_db/ were made by running that code (see the README there):
six deals synced, four update events queued while the portal hung, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import ROOT, HeadlessApp, wait_for

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "state_db"
IDENTITY = json.loads((FIXTURES / "identity.json").read_text(encoding="utf-8"))


def plain_rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def fixture_sim():
    """A portal with the fixture's identity and the same deals, as they stood at the kill."""
    sim = PortalSimulator(member_id=IDENTITY["member_id"],
                          application_token=IDENTITY["application_token"]).start()
    for n in range(1, 7):
        sim.portal.add_deal({"TITLE": f"Fixture deal {n}", "STAGE_ID": "PREPARATION",
                             "OPPORTUNITY": str(1000 * n)})
    for n in range(3, 7):
        sim.portal.update_deal(n, {"TITLE": f"Fixture deal {n}, changed"})
    yield sim
    sim.stop()


@pytest.mark.parametrize("commit", ["d458347", "6e9e627"])
def test_state_db_of_an_earlier_release_is_migrated_and_its_queue_synced(tmp_path, fixture_sim,
                                                                         commit):
    sim = fixture_sim
    app = HeadlessApp(tmp_path / "app", sim)
    data = tmp_path / "app" / "data"
    data.mkdir(parents=True)
    for source in (FIXTURES / commit).iterdir():
        shutil.copyfile(source, data / source.name)
    # what the killed process left queued, read with plain SQL from a copy (WAL included)
    probe = tmp_path / "probe"
    probe.mkdir()
    for name in ("state.db", "state.db-wal"):
        shutil.copyfile(data / name, probe / name)
    queued = {row[0]: row[1] for row in plain_rows(
        probe / "state.db", "SELECT id, deal_id FROM inbox WHERE status = 'queued'")}
    assert sorted(queued.values()) == [3, 4, 5, 6]

    app.start()
    sim.add_outgoing_webhook(app.events_url)

    def target_matches(ids) -> bool:
        rows = app.target_rows()
        return all(i in rows and rows[i]["title"] == sim.portal.get_deal(i)["TITLE"]
                   for i in ids)

    wait_for(lambda: target_matches(queued.values()), timeout=30)
    # the rows are marked done just after the target write, in their own transaction
    wait_for(lambda: all(row["status"] == "synced" for row in app.inbox() if row["id"] in queued),
             timeout=30)

    # new events after the upgrade: a changed old deal and a new one
    sim.portal.update_deal(1, {"TITLE": "Changed after the upgrade"})
    new_id = sim.portal.add_deal({"TITLE": "Made after the upgrade", "STAGE_ID": "PREPARATION"})
    wait_for(lambda: target_matches([1, new_id]), timeout=30)

    assert app.stop() == 0
    console = app.console()
    assert "Traceback" not in console
    assert "no such column" not in console
    columns = {row[1] for row in plain_rows(data / "state.db", "PRAGMA table_info(inbox)")}
    assert {"lease_owner", "lease_until"} <= columns
    history = {row[1] for row in plain_rows(data / "state.db", "PRAGMA table_info(deal_history)")}
    assert {"code", "params"} <= history
    assert len(plain_rows(data / "state.db", "SELECT version_num FROM alembic_version")) == 1


def test_a_state_db_from_a_newer_release_stops_the_start_with_one_line(tmp_path, sim):
    app = HeadlessApp(tmp_path / "app", sim)
    data = tmp_path / "app" / "data"
    app.start()
    assert app.stop() == 0
    conn = sqlite3.connect(data / "state.db")
    conn.execute("UPDATE alembic_version SET version_num = '9001_later'")
    conn.commit()
    conn.close()
    before = (data / "state.db").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "deal_monitor", "--headless", "--config", str(app.config_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring"))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: the state database") and "9001_later" in errors[0]
    assert "Traceback" not in result.stderr
    assert (data / "state.db").read_bytes() == before
