"""The full resync's direct path (sync/resync.py): pages straight to the target, in bulk.

A scripted portal client hands out pages; the state DB is a real SQLite file (and, for the
snapshot guard, a fresh PostgreSQL database), the target each real engine (``target_url``).
The worker is real but its thread is not started: tests run its passes by hand.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

from deal_monitor.bitrix.stages import StageFilter
from deal_monitor.errors import TargetError
from deal_monitor.model import DealState, EventStatus, NullSink, Progress, Source
from deal_monitor.paths import sqlite_url
from deal_monitor.store.engine import make_engine, utcnow
from deal_monitor.store.products import ProductWriter
from deal_monitor.store.state import NewEvent, OutcomeWrite, StateStore, fields_hash
from deal_monitor.store.target import TargetWriter
from deal_monitor.sync.reconciler import WATERMARK_KEY
from deal_monitor.sync.resync import FullResync
from deal_monitor.sync.worker import SyncWorker, WorkerOptions, view_of
from tests.conftest import PG_URL, _server_or_skip
from tests.oracle import as_decimal, target_table

CURSOR = "resync.cursor"
PORTAL_START = "2026-03-14T10:00:00+03:00"


def raw(deal_id: int, modified: str = "2026-03-14T09:00:00+03:00", **fields) -> dict:
    base = {
        "ID": str(deal_id),
        "TITLE": f"Сделка {deal_id}",
        "STAGE_ID": "EXECUTING",
        "CATEGORY_ID": "0",
        "OPPORTUNITY": f"{deal_id}.50",
        "CURRENCY_ID": "RUB",
        "CLOSEDATE": "2026-04-01T00:00:00+03:00",
        "COMMENTS": "",
        "DATE_MODIFY": modified,
    }
    base.update(fields)
    return base


class Portal:
    """A scripted portal client: ``deals`` listed in ID order, ``page_size`` a page."""

    def __init__(self, deals: list[dict], page_size: int = 50) -> None:
        self.deals = {int(d["ID"]): d for d in deals}
        self.page_size = page_size
        self.last_time = {"date_start": PORTAL_START}
        self.products: dict[int, list[dict]] = {}
        self.after_ids: list[int] = []
        self.on_page = None  # called with the page number while its request is "in flight"
        self.fetched: list[int] = []

    def iter_deal_pages(self, filter=None, select=(), after_id=0, expected=None):
        self.after_ids.append(after_id)
        ids = sorted(i for i in self.deals if i > after_id)
        for n, start in enumerate(range(0, len(ids), self.page_size)):
            if self.on_page is not None:
                self.on_page(n)
            yield [dict(self.deals[i]) for i in ids[start : start + self.page_size]]

    def get_product_rows(self, ids):
        return {i: list(self.products.get(i, [])) for i in ids}

    def get_deals(self, ids, with_products=False):
        self.fetched.extend(ids)
        found = {i: dict(self.deals[i]) for i in ids if i in self.deals}
        if with_products:
            for i in found:
                found[i]["__products__"] = list(self.products.get(i, []))
        return found, {}


class Sink(NullSink):
    def __init__(self) -> None:
        self.synced = []
        self.progress: list[Progress] = []
        self.received = []
        self.on_progress = None

    def deal_synced(self, outcome) -> None:
        self.synced.append(outcome)

    def event_received(self, record) -> None:
        self.received.append(record)

    def progress_changed(self, progress: Progress) -> None:
        self.progress.append(progress)
        if self.on_progress is not None:
            self.on_progress(progress)


@pytest.fixture
def state(tmp_path):
    store = StateStore(make_engine(sqlite_url(tmp_path / "state.db"), synchronous="FULL"))
    store.create()
    yield store
    store.engine.dispose()


@pytest.fixture
def target(target_url, table_name):
    writer = TargetWriter(make_engine(target_url, synchronous="NORMAL"), table_name)
    writer.prepare()
    yield writer
    writer.engine.dispose()


class Setup:
    def __init__(self, state, target, portal, skip=("NEW",)) -> None:
        self.state, self.target, self.portal = state, target, portal
        self.sink = Sink()
        self.filter = StageFilter(list(skip))
        self.worker = SyncWorker(state, target, portal, lambda: self.filter, self.sink,
                                 WorkerOptions(debounce=0.0, max_delay=0.0))

    def resync(self, cancel=None):
        job = FullResync(self.portal, self.state, self.worker, lambda: self.filter, self.sink,
                         cursor_key=CURSOR)
        return job.run(cancel=cancel)

    def target_rows(self) -> dict[int, dict]:
        url = self.target.engine.url.render_as_string(hide_password=False)
        return target_table(url, self.target.table_name)  # plain SQL, not the writer

    def queued(self) -> list:
        return [r for rows in self.state.queued_rows(list(self.portal.deals)).values() for r in rows]


def test_every_deal_is_written_with_its_snapshot_and_timeline(state, target):
    portal = Portal([raw(i) for i in range(1, 131)])
    s = Setup(state, target, portal)
    result = s.resync()
    assert (result.listed, result.written, result.created, result.queued) == (130, 130, 130, 0)
    rows = s.target_rows()
    assert sorted(rows) == list(range(1, 131))
    assert rows[7]["title"] == "Сделка 7" and as_decimal(rows[7]["amount"]) == Decimal("7.50")
    # the deals table: every deal, synced, with the fields hash reconciliation compares
    views = {v.id: v for v in state.deals()}
    assert len(views) == 130 and all(v.state == DealState.SYNCED for v in views.values())
    assert state.versions()[7][1] == fields_hash(portal.deals[7])
    # the timeline: where the reading came from, and what was done with it
    entries = state.history(7)
    assert [e.code for e in entries] == ["events", "created"]
    assert entries[0].params["summary"] == "RESYNC (manual)"
    # nothing went through the inbox; the sink heard of every deal, as written for the first time
    assert state.inbox_depth() == 0 and state.count_by_status() == {}
    assert sorted(o.deal_id for o in s.sink.synced) == list(range(1, 131))
    assert all(o.status == EventStatus.SYNCED and o.reached_production and o.deal for o in s.sink.synced)
    assert [p.done for p in s.sink.progress] == [50, 100, 130]
    assert state.get_value(CURSOR) is None and state.get_value(WATERMARK_KEY) == PORTAL_START


def test_a_second_resync_updates_and_records_what_changed(state, target):
    portal = Portal([raw(i) for i in range(1, 11)])
    s = Setup(state, target, portal)
    s.resync()
    portal.deals[3] = raw(3, "2026-03-14T09:30:00+03:00", TITLE="Шкаф-купе", OPPORTUNITY="950.00")
    result = s.resync()
    assert (result.written, result.created) == (10, 0)
    assert s.target_rows()[3]["title"] == "Шкаф-купе"
    last = state.history(3)[-1]
    assert last.code == "updated"
    assert {(c.field, c.old, c.new) for c in last.changes} == {
        ("TITLE", "Сделка 3", "Шкаф-купе"), ("OPPORTUNITY", "3.50", "950.00")}
    assert state.history(4)[-1].code == "updated" and not state.history(4)[-1].changes
    assert state.deal(3).title == "Шкаф-купе"


def test_newer_data_in_the_target_is_not_overwritten(state, target):
    from deal_monitor.bitrix.deal import parse_deal

    target.write([parse_deal(raw(5, "2026-03-14T12:00:00+03:00", TITLE="newer"))])
    portal = Portal([raw(i) for i in range(1, 11)])  # deal 5 listed at 09:00: older
    s = Setup(state, target, portal)
    result = s.resync()
    assert result.stale == 1 and result.written == 9
    assert s.target_rows()[5]["title"] == "newer"
    assert state.history(5)[-1].code == "stale"
    assert next(o for o in s.sink.synced if o.deal_id == 5).deal is None  # the table keeps its row


def test_deals_in_skipped_stages_are_written_only_if_the_target_has_them(state, target):
    from deal_monitor.bitrix.deal import parse_deal

    target.write([parse_deal(raw(2, "2026-03-13T09:00:00+03:00", STAGE_ID="PREPARATION"))])
    portal = Portal([raw(1, STAGE_ID="NEW"), raw(2, STAGE_ID="C0:NEW"), raw(3, STAGE_ID="NEW"),
                     raw(4)])
    s = Setup(state, target, portal, skip=("NEW",))
    result = s.resync()
    assert result.skipped == 2 and result.written == 2
    rows = s.target_rows()
    assert set(rows) == {2, 4} and rows[2]["stage_id"] == "C0:NEW"  # moved back: still followed
    view = state.deal(1)
    assert view.state == DealState.SKIPPED
    assert dict(state.skipped_deals()) == {1: "NEW", 3: "NEW"}
    assert state.history(1)[-1].code == "skipped_stage" and state.history(1)[-1].params["stage"] == "NEW"
    assert {o.deal_id: o.status for o in s.sink.synced}[3] == EventStatus.SKIPPED
    assert 1 not in state.target_ids() and 2 in state.target_ids()


def test_deals_with_queued_events_are_left_to_the_worker_and_done_once(state, target):
    portal = Portal([raw(i) for i in range(1, 21)])
    s = Setup(state, target, portal)
    # an update event for deal 4 waits in the inbox (its pass has not come yet)
    [pushed] = state.add_events([NewEvent("ONCRMDEALUPDATE", 4, Source.PUSH)])
    result = s.resync()
    assert result.written == 19 and result.queued == 1
    assert 4 not in s.target_rows()  # not written behind the worker's back
    rows = s.queued()
    assert [(r.deal_id, r.event) for r in rows] == [(4, "ONCRMDEALUPDATE"), (4, "RESYNC")]
    assert rows[1].payload["ID"] == "4"  # the listed reading joins the deal's rows
    assert state.history(4) == []
    # the worker's pass reads deal 4 once (a push row has no payload) and finishes both rows
    assert s.worker.run_pass()
    assert portal.fetched == [4]
    assert 4 in s.target_rows() and s.queued() == []
    statuses = {r.id: r.status for r in state.recent_events() if r.deal_id == 4}
    assert statuses[pushed.id] == EventStatus.SYNCED and len(statuses) == 2
    assert all(status == EventStatus.SYNCED for status in statuses.values())
    # a second resync writes it directly again: nothing is queued any more
    assert s.resync().queued == 0


def test_events_that_arrive_while_a_page_is_listed_make_the_worker_read_again(state, target):
    portal = Portal([raw(i) for i in range(1, 101)])
    s = Setup(state, target, portal)

    def meanwhile(page: int) -> None:
        if page == 1:  # the request for deals 51..100 is "in flight"
            state.add_events([NewEvent("ONCRMDEALUPDATE", 60, Source.PUSH)])
            # and a pass synced deal 70 from a reading taken after the listing began
            deal_id = 70
            from deal_monitor.bitrix.deal import parse_deal

            deal = parse_deal(raw(deal_id, TITLE="read by a pass"))
            state.record_outcomes([OutcomeWrite(deal_id, (), EventStatus.SYNCED,
                                                view=view_of(deal, DealState.SYNCED),
                                                fields=dict(deal.fields), in_target=True)])

    portal.on_page = meanwhile
    result = s.resync()
    assert result.written == 98 and result.queued == 2
    queued = {r.deal_id: r for r in s.queued() if r.event == "RESYNC"}
    assert set(queued) == {60, 70}
    assert queued[60].payload is None and queued[70].payload is None  # read again, fresh
    assert state.deal(70).title == "read by a pass"  # the newer snapshot stays
    assert not {60, 70} & set(s.target_rows())


def test_the_snapshot_upsert_keeps_a_snapshot_synced_after_the_listing(state):
    """The guard in the database itself: even without the checks before it."""
    from deal_monitor.bitrix.deal import parse_deal

    listed_at = utcnow()
    deal = parse_deal(raw(9, TITLE="by a pass"))
    state.record_outcomes([OutcomeWrite(9, (), EventStatus.SYNCED,
                                        view=view_of(deal, DealState.SYNCED),
                                        fields=dict(deal.fields), in_target=True)])
    row = {
        "deal_id": 9, "title": "listed before", "stage_id": "EXECUTING", "category_id": 0,
        "amount": "1", "currency_id": "RUB", "close_date": None, "date_modify": utcnow(),
        "synced_at": utcnow(), "state": "synced", "in_target": True, "error": "",
        "fields": "{}", "fields_hash": "", "listed_at": listed_at,
    }
    state.record_resync([row], [], {})
    assert state.deal(9).title == "by a pass"
    state.record_resync([{**row, "listed_at": utcnow()}], [], {})
    assert state.deal(9).title == "listed before"


def test_cancel_stops_after_the_page_in_hand_and_a_rerun_resumes(state, target):
    portal = Portal([raw(i) for i in range(1, 201)])
    s = Setup(state, target, portal)
    cancel = threading.Event()
    s.sink.on_progress = lambda p: p.done >= 50 and cancel.set()
    result = s.resync(cancel)
    assert result.cancelled and result.listed == 50
    assert state.get_value(CURSOR) == "50" and sorted(s.target_rows()) == list(range(1, 51))
    assert state.get_value(f"{CURSOR}.started") == PORTAL_START
    s.sink.on_progress = None
    portal.last_time = {"date_start": "2026-03-14T11:00:00+03:00"}
    result = s.resync()
    assert not result.cancelled and result.listed == 150 and portal.after_ids == [0, 50]
    assert sorted(s.target_rows()) == list(range(1, 201))
    assert state.get_value(CURSOR) is None and state.get_value(f"{CURSOR}.started") is None
    # deals 1..50 were listed by the first run: the watermark is that run's start
    assert state.get_value(WATERMARK_KEY) == PORTAL_START
    assert len(state.deals()) == 200


def test_cancel_does_not_wait_for_a_listing_request_in_flight(state, target):
    portal = Portal([raw(i) for i in range(1, 201)])
    s = Setup(state, target, portal)
    cancel, release, recorded = threading.Event(), threading.Event(), threading.Event()
    s.sink.on_progress = lambda p: recorded.set()

    def stuck(page: int) -> None:
        if page == 1:  # the portal does not answer the second request; Cancel is pressed
            recorded.wait(30)
            cancel.set()
            release.wait(30)

    portal.on_page = stuck
    try:
        result = s.resync(cancel)
    finally:
        release.set()
    assert result.cancelled and result.listed == 50
    assert state.get_value(CURSOR) == "50" and sorted(s.target_rows()) == list(range(1, 51))


def test_paused_processing_sends_the_pages_through_the_inbox(state, target):
    portal = Portal([raw(i) for i in range(1, 61)])
    s = Setup(state, target, portal)
    s.worker.pause()
    result = s.resync()
    assert result.written == 0 and result.queued == 60
    assert s.target_rows() == {} and state.inbox_depth() == 60
    assert all(r.payload is not None for r in s.queued())
    assert len(s.sink.received) == 60
    s.worker.resume()
    assert s.worker.run_pass()
    assert len(s.target_rows()) == 60 and state.inbox_depth() == 0
    assert portal.fetched == []  # the listed readings were used


def test_a_target_that_refuses_hands_the_page_to_the_worker(state, target, monkeypatch):
    portal = Portal([raw(i) for i in range(1, 31)] + [{"ID": "31", "TITLE": "no DATE_MODIFY"}])
    s = Setup(state, target, portal)

    def refuse(deals, products=None):
        raise TargetError("target database: deadlock", transient=True)

    monkeypatch.setattr(target, "write", refuse)
    result = s.resync()
    assert result.written == 0 and result.queued == 31
    monkeypatch.undo()
    assert s.worker.run_pass()
    assert sorted(s.target_rows()) == list(range(1, 31))
    # the unreadable one is read again (the portal still answers it without DATE_MODIFY):
    # a malformed answer may be a glitch, so it is retried with backoff, failed at the end
    (row,) = [r for r in state.recent_events() if r.deal_id == 31]
    assert row.status == EventStatus.QUEUED and row.attempts == 1
    assert "DATE_MODIFY" in row.error
    while row.status == EventStatus.QUEUED and row.attempts < s.worker.options.max_attempts:
        state.release_backoff()
        assert s.worker.run_pass()
        (row,) = [r for r in state.recent_events() if r.deal_id == 31]
    assert row.status == EventStatus.FAILED and row.attempts == s.worker.options.max_attempts
    assert "DATE_MODIFY" in row.error and 31 not in s.target_rows()


def test_product_rows_are_written_with_their_deals(state, target_url, table_name):
    from deal_monitor.mapping import build_mapping

    mapping = build_mapping("default", table_name, products=True,
                            product_table=f"{table_name}_product")
    products = ProductWriter(make_engine(target_url, synchronous="NORMAL"), mapping.product_table,
                             mapping.product_columns)
    writer = TargetWriter(make_engine(target_url, synchronous="NORMAL"), table_name, products)
    writer.prepare()
    try:
        portal = Portal([raw(i) for i in range(1, 6)])
        portal.products[2] = [{"ID": "71", "PRODUCT_ID": "5", "PRODUCT_NAME": "Фасад", "PRICE": "1200.00",
                               "QUANTITY": "2", "MEASURE_NAME": "шт", "DISCOUNT_SUM": "0",
                               "TAX_RATE": "20"}]
        s = Setup(state, writer, portal)
        assert s.resync().written == 5
        with writer.engine.connect() as conn:
            stored = conn.execute(text(f"SELECT row_id, deal_id FROM {table_name}_product")).all()
        assert [(int(a), int(b)) for a, b in stored] == [(71, 2)]
        assert [e.code for e in state.history(2)] == ["events", "created", "products"]
    finally:
        writer.engine.dispose()
        products.engine.dispose()


@pytest.fixture
def pg_state():
    """A state DB on a fresh PostgreSQL database (its tables have fixed names)."""
    _server_or_skip(PG_URL)
    name = f"dm_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    store = StateStore(make_engine(PG_URL.rsplit("/", 1)[0] + "/" + name))
    store.create()
    yield store
    store.engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_a_shared_postgresql_state_db_takes_the_bulk_bookkeeping(pg_state, target):
    portal = Portal([raw(i) for i in range(1, 81)])
    [pushed] = pg_state.add_events([NewEvent("ONCRMDEALUPDATE", 33, Source.PUSH)])
    s = Setup(pg_state, target, portal)
    result = s.resync()
    assert result.written == 79 and result.queued == 1
    assert len(pg_state.deals()) == 79 and [e.code for e in pg_state.history(12)] == ["events", "created"]
    assert pg_state.get_value(CURSOR) is None
    later = s.resync()
    assert later.written == 79 and later.created == 0
    assert pushed.deal_id == 33 and {r.deal_id for r in s.queued()} == {33}
