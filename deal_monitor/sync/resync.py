"""The full resync's direct path: each listed page goes straight to the target, in bulk.

Listing every deal is cheap (2,500 deals a request); sending each listed deal through the
inbox is not: a JSON payload row per deal, then the worker's pass deal by deal. Here a page
is written as a whole instead: one target transaction (the guarded upsert the worker uses, so
older data never replaces newer) and one state transaction (snapshots, two timeline entries
per deal, the resume cursor), while a thread of its own lists the next page.

Every promise of the inbox path still holds:

- passes of the worker are held off from the check of a page to its target commit
  (``SyncWorker.exclusive``), so no pass sits between its read of a deal and its commit
  meanwhile;
- a deal with queued inbox rows is left to the worker (the listed reading joins its rows as
  the newest one); a deal a pass synced after the page was listed, or whose rows came in
  since, is read again by the worker: within one second of DATE_MODIFY the listed reading
  could be the older one. The state upsert checks the same in the database, so a snapshot a
  pass recorded after the listing is never replaced;
- deals in skipped stages are written only if the target already has them;
- product rows (``mapping.products``) are read for a page's deals in batches, as the worker
  reads them for listed deals, and written in the page's transaction; a mapped (seed or
  custom) table takes the page through its own writer, row by row in that transaction;
- what this path cannot do (a deal it cannot parse, a target that refuses or is down,
  processing paused, the target swapped meanwhile) goes to the inbox as before, and the
  worker retries, fails or skips it there;
- the cursor moves with each page's bookkeeping, so a cancelled or crashed resync resumes
  after the last page recorded (a page written but not recorded is written again, which the
  idempotent upsert allows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..bitrix.client import BitrixClient
from ..bitrix.deal import DealFormatError, parse_deal
from ..bitrix.stages import StageFilter
from ..errors import TargetError
from ..model import (
    Deal,
    DealState,
    DealView,
    EventRecord,
    EventSink,
    EventStatus,
    FieldChange,
    Progress,
    Source,
    SyncOutcome,
)
from ..store.engine import to_db_time, utcnow
from ..store.state import NewEvent, StateStore
from .heap import release_freed_memory
from .notes import note
from .reconciler import WATERMARK_KEY
from .worker import SyncWorker, field_changes

log = logging.getLogger(__name__)

JOB = "resync"
EVENT = "RESYNC"
LIST_AHEAD = 1  # listed pages waiting for the writer (a page is up to 2,500 deals)
SHOWN_EVENTS = 200  # inbox rows of a page reported to the sink (all are in the DB)


@dataclass(frozen=True)
class ResyncResult:
    listed: int
    written: int  # inserted or updated in the target
    created: int
    skipped: int  # held back by the stage filter
    stale: int  # the target already had newer data
    queued: int  # handed to the worker through the inbox
    watermark: str | None
    cancelled: bool = False


@dataclass
class _Written:
    """One page after its target commit: what its bookkeeping needs."""

    listed: int  # deals the page listed
    listed_at: datetime  # when its request started (naive UTC)
    values: dict[str, str | None]  # key/values recorded with it (the cursor)
    deals: list[Deal] = field(default_factory=list)  # settled by this path
    raws: dict[int, dict] = field(default_factory=dict)
    known: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    written: frozenset[int] = frozenset()
    stale: frozenset[int] = frozenset()
    created: frozenset[int] = frozenset()
    skipped: frozenset[int] = frozenset()
    products: dict[int, list[dict]] | None = None
    queued: int = 0
    error: str = ""


_END = object()


class _Lister:
    """Lists pages on a thread of its own, ``LIST_AHEAD`` pages ahead of the writer.

    Each item is (page, when its request started, naive UTC): a pass that synced a deal
    after that moment may hold a newer reading than the page.
    """

    def __init__(self, client: BitrixClient, after_id: int, expected: int | None) -> None:
        self.client = client
        self.after_id = after_id
        self.expected = expected
        self.portal_start: str | None = None
        self.exhausted = False  # every page was handed out
        self._items: queue.Queue = queue.Queue(maxsize=LIST_AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resync-list", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            pages = self.client.iter_deal_pages({}, after_id=self.after_id, expected=self.expected)
            while not self._stop.is_set():
                started = utcnow()
                page = next(pages, None)
                if page is None:
                    break
                if self.portal_start is None:
                    self.portal_start = self.client.last_time.get("date_start")
                self._put((page, started))
                del page  # the writer's now: not held while the next one is listed
        except BaseException as exc:  # handed to the writer's thread, which raises it
            self._put(exc)
            return
        self._put(_END)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def pages(self, cancel: threading.Event | None) -> Iterator[tuple[list[dict], datetime]]:
        """The listed pages in order; ends early once ``cancel`` is set while waiting."""
        while True:
            try:
                item = self._items.get(timeout=0.1)
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    return
                continue
            if item is _END:
                self.exhausted = True
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
            item = None  # the page written is not held while the next one is waited for

    def close(self) -> None:
        """Stop listing. A request in flight is not waited out for long: the thread drops
        its page when it returns."""
        self._stop.set()
        self._thread.join(2.0)


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def _canonical(raw: dict) -> str:
    """The raw fields as ``state.fields_hash`` serialises them (stored, and hashed)."""
    return _ENCODER.encode(raw)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _params_json(params: tuple[tuple[str, str], ...]) -> str:
    return json.dumps(dict(params), ensure_ascii=False)


def _changes_json(changes: tuple[FieldChange, ...]) -> str:
    return json.dumps([[c.field, c.old, c.new] for c in changes], ensure_ascii=False)


class FullResync:
    """Reads every deal (resuming from ``cursor_key``) and writes it page by page."""

    def __init__(
        self,
        client: BitrixClient,
        state: StateStore,
        worker: SyncWorker,
        stage_filter: Callable[[], StageFilter],
        sink: EventSink,
        cursor_key: str | None = None,
        on_queued: Callable[[], None] | None = None,
        on_page: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.worker = worker
        self.stage_filter = stage_filter
        self.sink = sink
        self.cursor_key = cursor_key
        self.started_key = f"{cursor_key}.started" if cursor_key else None
        self.on_queued = on_queued or (lambda: None)
        self.on_page = on_page or (lambda error: None)
        events = note("event", "events", summary=f"{EVENT} ({Source.MANUAL.value})")
        self._events_entry = (events.kind, events.code, events.text, _params_json(events.params))
        self._recorded = 0  # deals of the pages recorded so far (the progress figure)
        self._totals: dict[str, int] = {}

    # -- the job ---------------------------------------------------------------------------
    def run(self, cancel: threading.Event | None = None, expected: int | None = None) -> ResyncResult:
        """List and write every deal; stops after the page in hand when ``cancel`` is set."""
        after_id = 0
        started: str | None = None
        if self.cursor_key:
            after_id = int(self.state.get_value(self.cursor_key) or 0)
            if after_id:
                started = self.state.get_value(self.started_key)
        self._recorded = 0
        self._totals = dict.fromkeys(("written", "created", "skipped", "stale", "queued"), 0)
        listed = 0
        lister = _Lister(self.client, after_id, expected)
        try:
            for page, listed_at in lister.pages(cancel):
                if cancel is not None and cancel.is_set():
                    break
                values: dict[str, str | None] = {}
                if self.cursor_key and page:
                    values[self.cursor_key] = str(page[-1]["ID"])
                    if not after_id and not listed and lister.portal_start:
                        # kept for a resumed listing: its watermark is the first run's start
                        values[self.started_key] = lister.portal_start
                self._record(self._page(page, listed_at, values))
                listed += len(page)
                del page  # done with: the next one is listed and written without it
                release_freed_memory()
                if cancel is not None and cancel.is_set():
                    break
        finally:
            lister.close()
        if not lister.exhausted:  # cancelled: the cursor keeps the last page recorded
            return self._result(listed, None, cancelled=True)
        watermark = started or lister.portal_start
        values = {}
        if self.cursor_key:
            values = {self.cursor_key: None, self.started_key: None}
        if watermark:  # a full listing covers everything up to its start as well
            values[WATERMARK_KEY] = watermark
        if values:
            self.state.record_resync([], [], values)
        t = self._totals
        log.info(
            "resync: %d listed, %d written (%d new), %d skipped, %d stale, %d left to the worker",
            listed, t["written"], t["created"], t["skipped"], t["stale"], t["queued"],
        )
        return self._result(listed, watermark)

    def _result(self, listed: int, watermark: str | None, cancelled: bool = False) -> ResyncResult:
        t = self._totals
        return ResyncResult(listed, t["written"], t["created"], t["skipped"], t["stale"],
                            t["queued"], watermark, cancelled)

    # -- one page: the target --------------------------------------------------------------
    def _page(self, page: list[dict], listed_at: datetime, values: dict[str, str | None]) -> _Written:
        """Write one listed page to the target (or hand it to the worker)."""
        out = _Written(len(page), listed_at, values)
        deals: dict[int, Deal] = {}
        unreadable: list[dict] = []
        for raw in page:
            try:
                deal = parse_deal(raw)
            except DealFormatError:
                unreadable.append(raw)  # the worker marks it failed, with the reason
                continue
            deals[deal.id] = deal
            out.raws[deal.id] = raw
        if not deals:
            out.queued = self._queue(unreadable, ())
            return out
        stage_filter = self.stage_filter()
        in_skipped_stage = {i for i, d in deals.items() if stage_filter.skips(d.stage_id)}
        target = self.worker.target
        products = None
        if getattr(target, "products", None) is not None and not self.worker.paused:
            # product rows are read before passes are held off: requests may have to wait
            held = set(target.versions(list(in_skipped_stage))) if in_skipped_stage else set()
            wanted = [i for i in deals if i not in in_skipped_stage or i in held]
            products = self.client.get_product_rows(wanted) if wanted else {}
        with self.worker.exclusive() as current:
            if self.worker.paused or current is not target:
                # processing is held (nothing is written meanwhile) or the target changed
                out.queued = self._queue(page, ())
                return out
            try:
                if not current.prepared:
                    current.prepare()
                held = set(current.versions(list(in_skipped_stage))) if in_skipped_stage else set()
            except TargetError as exc:
                out.error = str(exc)
                out.queued = self._queue(page, ())
                return out
            known, queued = self.state.resync_known(min(deals), max(deals))
            # read again by the worker: a deal a pass synced after this page was listed, or
            # one whose queued rows came in since (a reconciliation's reading may be newer)
            reread = {i for i, k in known.items() if i in deals and k[2] is not None
                      and k[2] >= listed_at}
            reread.update(i for i, at in queued.items() if i in deals and at >= listed_at)
            # queued rows all older than the listing: this reading joins them as the newest
            waiting = [i for i in queued if i in deals and i not in reread]
            mine = [d for i, d in deals.items() if i not in queued and i not in reread]
            to_write = [d for d in mine if d.id not in in_skipped_stage or d.id in held]
            skipped = frozenset(d.id for d in mine if d.id in in_skipped_stage and d.id not in held)
            if to_write:
                try:
                    result = current.write(to_write, products)
                    out.written, out.stale, out.created = result.written, result.stale, result.created
                except TargetError as exc:
                    # the worker writes them one by one, retries or marks the bad one failed
                    out.error = str(exc)
                    log.warning("resync: page handed to the worker: %s", exc)
                    waiting += [d.id for d in to_write]
                    mine = [d for d in mine if d.id in skipped]
            out.queued = self._queue([out.raws[i] for i in waiting] + unreadable, sorted(reread))
        out.deals, out.known, out.skipped, out.products = mine, known, skipped, products
        return out

    def _queue(self, raws: list[dict], reread) -> int:
        """Inbox rows for the worker: listed readings (as the inbox path queues them) and,
        for ``reread``, a plain request to read the deal again. Returns how many were stored."""
        events = []
        for raw in raws:
            try:
                deal_id = int(raw["ID"])
            except (KeyError, TypeError, ValueError):
                continue
            events.append(NewEvent(
                event=EVENT, deal_id=deal_id, source=Source.MANUAL, payload=raw,
                dedup_key=f"resync|{deal_id}|{_digest(_canonical(raw))}",
            ))
        events += [
            NewEvent(event=EVENT, deal_id=i, source=Source.MANUAL, dedup_key=f"resync|{i}|read")
            for i in reread
        ]
        stored: list[EventRecord] = self.state.add_events(events) if events else []
        for record in stored[-SHOWN_EVENTS:]:
            self.sink.event_received(record)
        if stored:
            self.on_queued()
        return len(stored)

    # -- one page: the state DB ------------------------------------------------------------
    def _record(self, page: _Written) -> None:
        """Record a written page: snapshots, timeline, cursor; then tell the sink.

        Passes are not held off for this: the snapshot upsert itself keeps a snapshot that a
        pass recorded after the page was listed.
        """
        views, history, outcomes = self._bookkeeping(page)
        self.state.record_resync(views, history, page.values)
        self._recorded += page.listed
        t = self._totals
        t["written"] += len(page.written)
        t["created"] += len(page.created)
        t["skipped"] += len(page.skipped)
        t["stale"] += len(page.stale)
        t["queued"] += page.queued
        if page.error or outcomes:
            self.on_page(page.error)
        deal_synced = self.sink.deal_synced
        for outcome in outcomes:
            deal_synced(outcome)
        self.sink.progress_changed(Progress(job=JOB, done=self._recorded, total=None))

    def _bookkeeping(
        self, page: _Written
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[SyncOutcome]]:
        """Snapshot rows, timeline rows and sink reports of the deals this page settled."""
        deals, raws, known = page.deals, page.raws, page.known
        skipped, stale, created = page.skipped, page.stale, page.created
        products, written = page.products, page.written
        now = utcnow()
        synced_at = now.replace(tzinfo=UTC)
        texts = {d.id: _canonical(raws[d.id]) for d in deals}
        hashes = {i: _digest(text) for i, text in texts.items()}
        # field-level changes need the old snapshot: read only where the fields differ
        changed = [d.id for d in deals if d.id in known and known[d.id][1] != hashes[d.id]]
        old = self.state.snapshots(changed) if changed else {}
        kind, code, text, params = self._events_entry
        events_row = {"deal_id": 0, "at": now, "kind": kind, "text": text, "changes": "[]",
                      "code": code, "params": params}
        entries: dict[tuple[str, str], dict[str, Any]] = {}  # decision rows without changes
        versions: dict[datetime, datetime | None] = {}
        views: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        outcomes: list[SyncOutcome] = []
        synced, skipped_state = DealState.SYNCED, DealState.SKIPPED
        for deal in deals:
            deal_id = deal.id
            row = events_row.copy()
            row["deal_id"] = deal_id
            history.append(row)
            changes: tuple[FieldChange, ...] = ()
            if deal_id in skipped:
                state = skipped_state
                key = ("skipped_stage", deal.stage_id)
            elif deal_id in stale:
                state = synced
                key = ("stale", "")
            else:
                state = synced
                key = ("created" if deal_id in created else "updated", "")
                if deal_id in old:
                    changes = field_changes(old[deal_id][0], raws[deal_id])
            if changes:
                entry = note("write", key[0], changes)
                history.append({
                    "deal_id": deal_id, "at": now, "kind": entry.kind, "text": entry.text,
                    "changes": _changes_json(changes), "code": entry.code, "params": "{}",
                })
            else:
                if key not in entries:
                    entries[key] = self._entry_row(key, now)
                row = entries[key].copy()
                row["deal_id"] = deal_id
                history.append(row)
            if products is not None and deal_id in written and deal_id in products:
                count = note("write", "products", count=len(products[deal_id]))
                history.append({"deal_id": deal_id, "at": now, "kind": count.kind,
                                "text": count.text, "changes": "[]", "code": count.code,
                                "params": _params_json(count.params)})
            modified = deal.date_modify
            if modified not in versions:
                versions[modified] = to_db_time(modified)
            views.append({
                "deal_id": deal_id,
                "title": deal.title,
                "stage_id": deal.stage_id,
                "category_id": deal.category_id,
                "amount": str(deal.amount),
                "currency_id": deal.currency_id,
                "close_date": deal.close_date,
                "date_modify": versions[modified],
                "synced_at": now,
                "state": state.value,
                "in_target": deal_id not in skipped,
                "error": "",
                "fields": texts[deal_id],
                "fields_hash": hashes[deal_id],
                "listed_at": page.listed_at,
            })
            view = None
            if deal_id not in stale:  # the table keeps showing the newer data it has
                view = DealView(
                    deal_id, deal.title, deal.stage_id, deal.category_id, deal.amount,
                    deal.currency_id, deal.close_date, modified, synced_at, state,
                )
            outcomes.append(SyncOutcome(
                deal_id,
                EventStatus.SKIPPED if state is skipped_state else EventStatus.SYNCED,
                view, changes=changes, reached_production=deal_id in created,
            ))
        return views, history, outcomes

    @staticmethod
    def _entry_row(key: tuple[str, str], now: datetime) -> dict[str, Any]:
        """The timeline row of a decision that carries no field changes."""
        code, stage = key
        if code == "skipped_stage":
            entry = note("decision", code, stage=stage)
        else:
            entry = note("decision" if code == "stale" else "write", code)
        return {"deal_id": 0, "at": now, "kind": entry.kind, "text": entry.text, "changes": "[]",
                "code": entry.code,
                "params": _params_json(entry.params) if entry.params else "{}"}


__all__ = ["FullResync", "ResyncResult"]
