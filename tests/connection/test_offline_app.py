"""Offline events for the OAuth app, in process against the simulator: binding from the core,
event.offline.error for a deal that fails for good, and the clear=1 fallback where the plan
refuses clear=0 (said once)."""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal

from sqlalchemy import create_engine, text

from deal_monitor.config import from_mapping
from deal_monitor.credentials import MemoryStore
from deal_monitor.sync.offline import CLEAR1_NOTE
from tests.e2e.harness import wait_for

CLIENT_ID, SECRET = "local.offline01.app", "offline-secret"


def _monitor(running, sim, tmp_path, **sync):
    sim.register_app(CLIENT_ID, SECRET)
    issued = sim.issue_tokens(CLIENT_ID)
    tokens = MemoryStore({"oauth_tokens": json.dumps({
        "access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
        "expires": time.time() + 3600, "member_id": sim.member_id})})
    settings = from_mapping({
        "portal": {"client_id": CLIENT_ID, "portal_url": sim.url, "oauth_server": sim.url, "allow_private_http": True,
                   "client_secret": SECRET, "offline_events": True},
        "listener": {"enabled": False},
        "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0, "offline_poll_seconds": 0.3,
                 **sync},
        "storage": {"data_dir": str(tmp_path / "data")},
    }, env={})
    return running(settings, secrets=MemoryStore(), tokens=tokens)


def _target(tmp_path) -> dict[int, tuple]:
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'target.db'}")
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT name FROM sqlite_master WHERE name='deal'")).first():
                return {}
            return {r.bitrix_id: (r.title, Decimal(str(r.amount)))
                    for r in conn.execute(text("SELECT bitrix_id, title, amount FROM deal"))}
    finally:
        engine.dispose()


def _landed(tmp_path, sim, ids) -> bool:
    rows = _target(tmp_path)
    return all(rows.get(i) == (sim.portal.get_deal(i)["TITLE"],
                               Decimal(sim.portal.get_deal(i)["OPPORTUNITY"])) for i in ids)


def test_bind_from_the_core_and_mark_a_deal_that_fails_for_good(running, sim, tmp_path):
    monitor = _monitor(running, sim, tmp_path, max_attempts=1)
    lines = monitor.bind_handlers(offline=True)
    assert lines == [f"{name}: bound (offline)" for name in
                     ("ONCRMDEALADD", "ONCRMDEALDELETE", "ONCRMDEALUPDATE")]
    assert monitor.bind_handlers(offline=True)[0] == "ONCRMDEALADD: offline already bound"
    broken = sim.portal.add_deal({"TITLE": "broken", "STAGE_ID": "PREPARATION"})
    wait_for(lambda: len(sim.offline) == 0, timeout=20)  # the ADD was cleared after its write
    sim.faults.fail_next(1, status=400, body={"error": "", "error_description": "Access denied"},
                         method="crm.deal.get")
    sim.portal.update_deal(broken, {"TITLE": "cannot be read"})
    # 20 s: >= 10x the poll interval and a pass; only detects a hang
    errors = wait_for(lambda: [r for r in sim.offline.list_rows() if r["ERROR"] == "1"],
                      timeout=20)
    assert [r["EVENT_DATA"]["FIELDS"]["ID"] for r in errors] in ([broken], [str(broken)])
    assert errors[0]["EVENT_NAME"] == "ONCRMDEALUPDATE" and errors[0]["PROCESS_ID"] == ""
    good = sim.portal.add_deal({"TITLE": "good", "STAGE_ID": "PREPARATION",
                                "OPPORTUNITY": "5.00"})
    wait_for(lambda: _landed(tmp_path, sim, [good]), timeout=20)
    wait_for(lambda: [r["ERROR"] for r in sim.offline.list_rows()] == ["1"], timeout=20)
    assert monitor.status().offline_note == ""


def test_where_clear0_is_refused_rows_are_taken_with_clear1_and_stored_first(
        running, sim, tmp_path, caplog):
    sim.offline.extended = False
    caplog.set_level(logging.WARNING, logger="deal_monitor.sync.offline")
    monitor = _monitor(running, sim, tmp_path)
    monitor.bind_handlers(offline=True)
    ids = [sim.portal.add_deal({"TITLE": f"t{n}", "STAGE_ID": "PREPARATION",
                                "OPPORTUNITY": f"{n}.00"}) for n in range(3)]
    for n, deal_id in enumerate(ids):
        sim.portal.update_deal(deal_id, {"TITLE": f"changed {n}"})
    wait_for(lambda: _landed(tmp_path, sim, ids), timeout=20)
    more = sim.portal.add_deal({"TITLE": "later", "STAGE_ID": "PREPARATION"})
    wait_for(lambda: _landed(tmp_path, sim, [*ids, more]), timeout=20)
    assert len(sim.offline) == 0
    assert monitor.status().offline_note == CLEAR1_NOTE
    said = [r for r in caplog.records if "clear=0 refused" in r.getMessage()]
    assert len(said) == 1
    offline_rows = [r for r in monitor.events() if r.source.value == "offline"]
    assert {r.deal_id for r in offline_rows} >= {*ids, more}
