"""Reconciliation and the deletion check hold one listed page at a time, not the whole portal.

A scripted client lists deals in ID order, ``PAGE`` a page, as the real client does (keyset
paging); the state DB is a real SQLite file whose rows are put in with plain inserts. What the
state DB is asked is counted by wrapping the reconciler's two read helpers: no read returns
more than about a page, and the whole-table reads are never used. Expected queues are worked
out from the scripted data here, with the hash computed the way the state DB documents it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import weakref
from datetime import datetime

import pytest
from sqlalchemy import insert, text

from deal_monitor.model import NullSink
from deal_monitor.paths import sqlite_url
from deal_monitor.store.engine import make_engine
from deal_monitor.store.state import StateStore, deal_state
from deal_monitor.sync.reconciler import Reconciler

PAGE = 50
MODIFIED = "2026-03-14T09:00:00+03:00"
MODIFIED_UTC = datetime(2026, 3, 14, 6, 0, 0)
OLDER_UTC = datetime(2026, 3, 14, 5, 0, 0)


def raw(deal_id: int) -> dict:
    return {"ID": str(deal_id), "TITLE": f"Сделка {deal_id}", "STAGE_ID": "EXECUTING",
            "CATEGORY_ID": "0", "OPPORTUNITY": "10.00", "CURRENCY_ID": "RUB",
            "DATE_MODIFY": MODIFIED}


def sha1_of(fields: dict) -> str:
    text_ = json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(text_.encode("utf-8")).hexdigest()


class Deal(dict):
    """A listed deal that can be watched with a weak reference."""


class Portal:
    """Lists ``ids`` ascending, ``PAGE`` deals a page; counts the pages handed out and, before
    each, how many deals it handed out earlier are still alive."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = sorted(ids)
        self.last_time = {"date_start": "2026-03-14T10:00:00+03:00"}
        self.pages = 0
        self.handed_out: list[weakref.ref[Deal]] = []
        self.alive_before: list[int] = []

    def iter_deal_pages(self, filter=None, select=(), after_id=0, expected=None):
        ids = [i for i in self.ids if i > after_id]
        for start in range(0, len(ids), PAGE):
            gc.collect()
            self.alive_before.append(sum(1 for ref in self.handed_out if ref() is not None))
            self.pages += 1
            chunk = ids[start : start + PAGE]
            if select == ("ID",):
                yield [self._watch(Deal(ID=str(i))) for i in chunk]
            else:
                yield [self._watch(Deal(raw(i))) for i in chunk]

    def _watch(self, deal: Deal) -> Deal:
        self.handed_out.append(weakref.ref(deal))
        return deal


@pytest.fixture
def state(tmp_path, monkeypatch):
    store = StateStore(make_engine(sqlite_url(tmp_path / "state.db")))
    store.create()

    def whole_table(*args, **kwargs):
        raise AssertionError("a whole-table read during a paged listing")

    monkeypatch.setattr(StateStore, "versions", whole_table)
    monkeypatch.setattr(StateStore, "target_ids", whole_table)
    yield store
    store.engine.dispose()


def put_state(store: StateStore, rows: list[dict]) -> None:
    base = {"title": "", "stage_id": "EXECUTING", "category_id": 0, "amount": "10.00",
            "currency_id": "RUB", "synced_at": MODIFIED_UTC, "error": "", "fields": "{}"}
    with store.engine.begin() as conn:
        conn.execute(insert(deal_state), [{**base, **row} for row in rows])


def spy(monkeypatch, store: StateStore, name: str) -> list[tuple[int, int]]:
    """Wrap a reader of the state store; records (IDs asked, rows returned) per call."""
    calls: list[tuple[int, int]] = []
    real = getattr(store, name)

    def wrapped(*args):
        found = real(*args)
        asked = len(args[0]) if isinstance(args[0], list) else -1
        calls.append((asked, len(found)))
        return found

    monkeypatch.setattr(store, name, wrapped)
    return calls


def queued(store: StateStore, event: str) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT deal_id FROM inbox WHERE event = :e ORDER BY deal_id"),
                            {"e": event}).all()
    return [r[0] for r in rows]


def test_reconciliation_asks_the_state_about_one_page_at_a_time(state, monkeypatch):
    portal = Portal(list(range(1, 301)))  # six pages
    seen = [i for i in range(1, 201) if i != 5]
    put_state(state, [
        {"deal_id": i, "date_modify": MODIFIED_UTC, "state": "synced", "in_target": True,
         "fields_hash": sha1_of(raw(i))} for i in seen
    ] + [{"deal_id": 5, "date_modify": OLDER_UTC, "state": "synced", "in_target": True,
          "fields_hash": "0" * 40}])
    calls = spy(monkeypatch, state, "versions_of")

    result = Reconciler(portal, state, NullSink()).run()  # type: ignore[arg-type]

    expected = [5] + list(range(201, 301))  # an older version, then the deals never seen
    assert queued(state, "RECONCILE") == expected
    assert (result.listed, result.queued) == (300, len(expected))
    assert len(calls) == portal.pages == 6
    assert max(asked for asked, _ in calls) <= PAGE
    assert max(found for _, found in calls) <= PAGE
    # a page is let go before the next is listed (deals queued live on in the inbox, as rows)
    assert portal.alive_before == [0] * 6


def test_the_deletion_check_walks_both_sides_range_by_range(state, monkeypatch):
    gone = {3, 120, 260}  # deleted on the portal between its pages
    above = list(range(301, 311))  # deleted above the portal's last ID
    portal = Portal([i for i in range(1, 301) if i not in gone | {7}])
    rows = [{"deal_id": i, "date_modify": MODIFIED_UTC, "state": "synced", "in_target": True,
             "fields_hash": ""} for i in range(1, 311) if i not in (7, 50)]
    rows.append({"deal_id": 7, "date_modify": MODIFIED_UTC, "state": "deleted",  # known gone
                 "in_target": True, "fields_hash": ""})
    rows.append({"deal_id": 50, "date_modify": MODIFIED_UTC, "state": "skipped",  # not held
                 "in_target": False, "fields_hash": ""})
    put_state(state, rows)
    calls = spy(monkeypatch, state, "target_ids_between")

    stored = Reconciler(portal, state, NullSink()).find_deleted()  # type: ignore[arg-type]

    expected = sorted(gone) + above
    assert queued(state, "CHECK_DELETED") == expected
    assert stored == len(expected)
    assert len(calls) == portal.pages + 1  # one range per page, then the IDs above the last
    # each range holds at most a page of listed IDs plus the deals missing from it
    assert max(found for _, found in calls[:-1]) <= PAGE + len(gone)
    assert calls[-1][1] == len(above)
    assert portal.alive_before == [0] * portal.pages


def test_a_second_deletion_check_queues_nothing_new(state):
    portal = Portal([1, 2, 4])
    put_state(state, [{"deal_id": i, "date_modify": MODIFIED_UTC, "state": "synced",
                       "in_target": True, "fields_hash": ""} for i in (1, 2, 3, 4)])
    checker = Reconciler(portal, state, NullSink())  # type: ignore[arg-type]
    assert checker.find_deleted() == 1
    assert checker.find_deleted() == 0  # the queued read is not queued twice
    assert queued(state, "CHECK_DELETED") == [3]
