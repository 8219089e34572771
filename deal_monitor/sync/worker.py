"""The sync worker: the one thread that takes work out of the inbox.

A pass: find deals whose queued events have settled (debounce), read them from the portal
(``crm.deal.get`` for one, ``batch`` for several; rows that carry a deal already read by
reconciliation need no read), decide (stage filter, deleted, unchanged), upsert into the
target, then record snapshots and mark the inbox rows — in that order, so a crash anywhere
only repeats work. Transient failures keep rows queued with a backoff; permanent ones mark
them failed, kept and retryable.

The batch reads of a pass overlap (a few requests in flight: ``BitrixClient.get_deals``);
the pass decides and writes only once all of them are in, and a failed or cancelled read
leaves the whole pass queued. Passes do not overlap one another: writing and recording a
pass of 500 takes ~0.1 s against many seconds of reading it, so writing pass N while
reading pass N+1 would gain little and give up the one-pass-at-a-time order.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError

from .. import faultpoints, metrics
from ..bitrix.client import BATCH_LIMIT, PRODUCTS_KEY, BitrixClient, bad_answer
from ..bitrix.deal import DealFormatError, parse_deal
from ..bitrix.stages import StageFilter
from ..bitrix.throttle import Cancelled
from ..errors import BitrixError, TargetError
from ..health import HealthBoard
from ..model import (
    Deal,
    DealState,
    DealView,
    EventRecord,
    EventSink,
    EventStatus,
    FieldChange,
    Source,
    SyncOutcome,
)
from ..store.state import InboxRow, OutcomeWrite, StateStore
from ..store.target import TargetWriter
from ..supervisor import SupervisedThread
from .notes import Note, note

log = logging.getLogger(__name__)
# jitter from a generator of our own: the global one belongs to whoever seeds it (tests)
_JITTER = random.Random()

# raw fields whose change alone is not news in the timeline
_NOISE = frozenset({"DATE_MODIFY", "MODIFY_BY_ID", "LAST_ACTIVITY_TIME", "LAST_ACTIVITY_BY"})
READ_LAG_RETRIES = 2
DUE_LIMIT = 5000  # due deals looked up at once (one GROUP BY over the queue)
PASS_SIZE = 500  # deals per pass: read, write and record as one unit
# passes that could wait for a fuller batch start at least this far apart: reads then take at
# most half of the portal's drain (2 requests/s), and a lone change waits for nothing
READ_SPACING = 1.0


@dataclass(frozen=True)
class WorkerOptions:
    debounce: float = 0.5
    max_delay: float = 5.0
    max_attempts: int = 8
    backoff_cap: float = 300.0
    idle_poll: float = 1.0


def backoff(attempts: int, cap: float) -> float:
    """Exponential backoff with jitter: about 2, 4, 8 ... seconds, at most ``cap``."""
    return min(cap, 2.0 ** max(1, attempts + 1)) * _JITTER.uniform(0.75, 1.25)


def field_changes(old: dict, new: dict) -> tuple[FieldChange, ...]:
    """Fields that differ between two raw snapshots of a deal."""
    changes = []
    # only keys both readings have: crm.deal.get and crm.deal.list differ in which fields they
    # return, and a field missing from one reading is not a change
    for key in sorted(set(old) & set(new)):
        if key in _NOISE:
            continue
        before, after = old.get(key), new.get(key)
        if before != after:
            changes.append(
                FieldChange(key, None if before is None else str(before), None if after is None else str(after))
            )
    return tuple(changes)


def view_of(deal: Deal, state: DealState, error: str = "") -> DealView:
    return DealView(
        id=deal.id,
        title=deal.title,
        stage_id=deal.stage_id,
        category_id=deal.category_id,
        amount=deal.amount,
        currency_id=deal.currency_id,
        close_date=deal.close_date,
        date_modify=deal.date_modify,
        synced_at=datetime.now(UTC),
        state=state,
        error=error,
    )


def _readable(payload: dict | None, deal_id: int) -> bool:
    """A listed reading the pass can use as it is (else the deal is read again)."""
    if payload is None:
        return False
    try:
        return parse_deal(payload).id == deal_id
    except DealFormatError:
        return False


def _events_text(rows: Sequence[InboxRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        label = f"{row.event} ({row.source.value})"
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{label} ×{n}" if n > 1 else label for label, n in counts.items())


class SyncWorker:
    """Owns the sync thread; ``wake()`` after adding work, ``stop()`` to end it."""

    def __init__(
        self,
        state: StateStore,
        target: TargetWriter,
        client: BitrixClient,
        stage_filter: Callable[[], StageFilter],
        sink: EventSink,
        options: WorkerOptions,
        on_pass: Callable[[str], None] | None = None,
        on_anomaly: Callable[[str, str], None] | None = None,
        board: HealthBoard | None = None,
    ) -> None:
        self.state = state
        self.target = target
        self.client = client
        self.stage_filter = stage_filter
        self.sink = sink
        self.options = options
        self.on_pass = on_pass or (lambda error: None)
        self.on_anomaly = on_anomaly or (lambda kind, detail: None)
        self.board = board or HealthBoard()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: SupervisedThread | None = None
        self._target_used = False  # the pass read or wrote the target (so it is up)
        self._pass_lock = threading.Lock()  # a pass and a target swap never overlap
        self.passes = 0
        self.crashes = 0
        self._last_pass_at = float("-inf")  # monotonic start of the last pass that read

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = SupervisedThread("sync-worker", self._run, self._stop, self.board)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.client.cancel.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.alive

    @contextmanager
    def exclusive(self) -> Iterator[TargetWriter]:
        """Keep passes out while the caller writes (the full resync's direct path).

        No pass is between its read of a deal and its commit while this is held, so the
        caller's checks of the inbox and the snapshots hold until its own commit. Yields the
        target that passes write to.
        """
        with self._pass_lock:
            yield self.target

    def replace_target(self, target: TargetWriter) -> TargetWriter:
        """Write to ``target`` from the next pass on; returns the old one."""
        with self._pass_lock:
            old, self.target = self.target, target
        return old

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._pass_lock:
                    worked = False if self._paused.is_set() else self.run_pass()
            except Cancelled:
                break
            except Exception as exc:  # keep the thread alive; rows stay queued
                self.crashes += 1
                log.exception("sync pass failed")
                error = f"sync pass: internal error: {type(exc).__name__}: {exc}"
                self.board.failed("worker", error)
                if isinstance(exc, DBAPIError):  # the state DB (the target's are TargetError)
                    self.board.failed("state", f"state database: {str(exc.orig or exc)[:200]}")
                self.on_pass(error)
                worked = False
                self._stop.wait(2.0)
            if not worked:
                poll = max(0.05, min(self.options.debounce / 2, 0.25))
                timeout = poll if self.state.inbox_depth() else self.options.idle_poll
                self._wake.wait(timeout)
                self._wake.clear()

    # -- one pass --------------------------------------------------------------------------
    def run_pass(self) -> bool:
        """Process every due deal once; returns False when nothing was due."""
        ids = self.state.due_deals(self.options.debounce, self.options.max_delay, limit=DUE_LIMIT)
        if not ids:
            return False
        ids = self._gather(ids)
        error = ""
        self._target_used = False
        for start in range(0, len(ids), PASS_SIZE):
            if self._stop.is_set() or self._paused.is_set():
                break
            self.passes += 1
            rows = {k: r for k, r in self.state.queued_rows(ids[start : start + PASS_SIZE]).items() if r}
            try:
                if not self.target.prepared:  # it was down at start: create/check it now
                    self.target.prepare()
                    self._target_used = True
                self._commit(*self._process(rows))
            except (BitrixError, TargetError) as exc:
                # nothing of this pass was recorded: all of it waits and is done again
                self._retry_all(rows, exc)
                error = str(exc)
                if isinstance(exc, TargetError):
                    self.board.failed("target", f"target database: {exc}")
                break
        if error:
            self.board.failed("worker", error)
        else:
            self.board.recovered("worker")
            self.board.recovered("state")
            if self._target_used:
                self.board.recovered("target")
        self.on_pass(error)
        return True

    def _gather(self, ids: list[int]) -> list[int]:
        """While events are still arriving, wait a moment for a fuller batch: one request
        reads 50 deals.

        When more deals are queued than are due, events are still arriving and settling;
        waiting lets them join this pass instead of costing a request each. The wait lasts
        until ``READ_SPACING`` after the previous pass began (at most half of ``max_delay``),
        so a steady trickle is read about once a second, and a change after a quiet spell,
        or a lone event, goes at once.
        """
        now = time.monotonic()
        deadline = min(now + self.options.max_delay / 2, self._last_pass_at + READ_SPACING)
        step = max(0.05, min(self.options.debounce / 2, 0.25))
        while len(ids) < BATCH_LIMIT and time.monotonic() < deadline and not self._stop.is_set():
            if self.state.ready_deal_count() <= len(ids):
                break
            self._stop.wait(min(step, max(0.0, deadline - time.monotonic())))
            ids = self.state.due_deals(self.options.debounce, self.options.max_delay, limit=DUE_LIMIT)
        self._last_pass_at = time.monotonic()
        return ids

    def _process(self, rows: dict[int, list[InboxRow]]) -> tuple[list[OutcomeWrite], set[int]]:
        raw: dict[int, dict] = {}
        to_fetch = []
        for deal_id, deal_rows in rows.items():
            payload = deal_rows[-1].payload  # newest reading
            if all(r.payload is not None for r in deal_rows) and _readable(payload, deal_id):
                raw[deal_id] = payload
            else:  # no reading yet, or one we cannot use: read the deal now
                to_fetch.append(deal_id)
        fetch_errors: dict[int, BitrixError] = {}
        with_products = getattr(self.target, "products", None) is not None
        payload_ids = list(raw)
        if to_fetch:
            found, fetch_errors = self.client.get_deals(to_fetch, with_products=with_products)
            raw.update(found)
            faultpoints.reach("after_fetch")
        products: dict[int, list[dict]] | None = None
        if with_products:
            products = {i: raw[i].pop(PRODUCTS_KEY) for i in list(raw) if PRODUCTS_KEY in raw[i]}
            if payload_ids:
                products.update(self.client.get_product_rows(payload_ids))
        outcomes: list[OutcomeWrite] = []
        deals: dict[int, Deal] = {}
        for deal_id, data in raw.items():
            if deal_id in to_fetch and any(
                r.event == "ONCRMDEALDELETE" and r.source == Source.PUSH for r in rows[deal_id]
            ):
                # the portal still has it: the delete was forged (or replayed); nothing is
                # deleted, since only a "Not found" read is proof
                self.on_anomaly("forged_delete", f"deal {deal_id} announced deleted, still there")
            try:
                deal = parse_deal(data)
                if deal.id != deal_id:
                    raise DealFormatError(f"asked for deal {deal_id}, read deal {deal.id}")
                deals[deal_id] = deal
            except DealFormatError as exc:
                # a malformed answer may be a glitch: counted and retried, failed at the end
                fetch_errors[deal_id] = bad_answer(str(exc))
        for deal_id, error in fetch_errors.items():
            outcomes.append(self._fetch_failed(deal_id, rows[deal_id], error))
        written, created = self._write(deals, rows, products)
        outcomes.extend(written)
        return outcomes, created

    def _retry_all(self, rows: dict[int, list[InboxRow]], exc: Exception) -> None:
        """The portal or target failed as a whole: everything waits and tries again."""
        row_ids = [r.id for deal_rows in rows.values() for r in deal_rows]
        attempts = max((r.attempts for deal_rows in rows.values() for r in deal_rows), default=0)
        delay = backoff(attempts, self.options.backoff_cap)
        if isinstance(exc, BitrixError) and exc.is_auth:
            delay = max(delay, 60.0)
        if isinstance(exc, BitrixError) and exc.code == "OVERLOAD_LIMIT":
            delay = max(delay, self.client.overload_pause)
        log.warning("will retry %d deal(s) in %.0f s: %s", len(rows), delay, exc)
        for record in self.state.retry_rows(row_ids, str(exc), delay):
            self.sink.event_updated(record)

    def _failed(self, deal_id: int, rows: list[InboxRow], error: str) -> OutcomeWrite:
        return OutcomeWrite(
            deal_id=deal_id,
            row_ids=tuple(r.id for r in rows),
            status=EventStatus.FAILED,
            history=(note("error", "failed", error=error),),
            error=error,
        )

    def _fetch_failed(self, deal_id: int, rows: list[InboxRow], error: BitrixError) -> OutcomeWrite:
        row_ids = tuple(r.id for r in rows)
        attempts = max(r.attempts for r in rows)
        if error.not_found:
            announced_delete = any(r.event == "ONCRMDEALDELETE" for r in rows)
            in_target = self.state.snapshots([deal_id]).get(deal_id, ({}, False))[1]
            if not announced_delete and not in_target and attempts < READ_LAG_RETRIES:
                # a new deal may not be readable yet right after its ADD event
                return OutcomeWrite(
                    deal_id, row_ids, EventStatus.QUEUED,
                    history=(note("fetch", "read_lag"),),
                    error="Not found (read lag?)", retry_delay=1.0 + attempts,
                )
            return self._deleted(deal_id, rows)
        # a malformed answer for one deal is retried with backoff, but not for ever
        malformed = error.code == "ERROR_UNEXPECTED_ANSWER"
        if (error.transient and not malformed) or error.is_auth or (
            attempts + 1 < self.options.max_attempts
        ):
            delay = backoff(attempts, self.options.backoff_cap)
            return OutcomeWrite(
                deal_id, row_ids, EventStatus.QUEUED,
                history=(note("error", "read_failed", error=error),),
                error=str(error), retry_delay=delay,
            )
        return self._failed(deal_id, rows, f"read failed: {error}")

    def _deleted(self, deal_id: int, rows: list[InboxRow]) -> OutcomeWrite:
        """The portal says the deal is gone: flag its target row (if any), keep the row."""
        marked = self.target.mark_deleted([deal_id])
        old = self.state.deal(deal_id)
        view = None
        if old is not None:
            view = DealView(
                id=deal_id, title=old.title, stage_id=old.stage_id, category_id=old.category_id,
                amount=old.amount, currency_id=old.currency_id, close_date=old.close_date,
                date_modify=old.date_modify, synced_at=datetime.now(UTC), state=DealState.DELETED,
            )
        code = "deleted_marked" if marked else "deleted_never"
        return OutcomeWrite(
            deal_id, tuple(r.id for r in rows), EventStatus.DELETED, view=view,
            in_target=bool(marked) or None,
            history=(note("event", "events", summary=_events_text(rows)), note("decision", code)),
        )

    def _write(
        self,
        deals: dict[int, Deal],
        rows: dict[int, list[InboxRow]],
        products: dict[int, list[dict]] | None = None,
    ) -> tuple[list[OutcomeWrite], set[int]]:
        if not deals:
            return [], set()
        stage_filter = self.stage_filter()
        existing = self.target.versions(list(deals))
        self._target_used = True
        to_write = [d for d in deals.values() if d.id in existing or not stage_filter.skips(d.stage_id)]
        skipped = set(deals) - {d.id for d in to_write}
        written: set[int] = set()
        stale: set[int] = set()
        created: set[int] = set()
        failed: dict[int, str] = {}
        if to_write:
            try:
                result = self.target.write(to_write, products)
                written, stale, created = set(result.written), set(result.stale), set(result.created)
            except TargetError as exc:
                if exc.transient:
                    raise
                else:
                    # one bad row must not hold the others back: write them one by one
                    for deal in to_write:
                        try:
                            one = self.target.write([deal], products)
                        except TargetError as single:
                            failed[deal.id] = str(single)
                            continue
                        written |= one.written
                        stale |= one.stale
                        created |= one.created
        outcomes = []
        snapshots = self.state.snapshots(list(deals))
        for deal in deals.values():
            deal_rows = rows[deal.id]
            old_fields = snapshots.get(deal.id, ({}, False))[0]
            fields = dict(deal.fields)
            changes = field_changes(old_fields, fields) if old_fields else ()
            history: list[Note] = [
                note("event", "events", summary=_events_text(deal_rows)),
                note("fetch", "fetched", stage=deal.stage_id, modified=deal.date_modify.isoformat()),
            ]
            if deal.id in failed:
                outcomes.append(self._failed(deal.id, deal_rows, failed[deal.id]))
                continue
            if deal.id in skipped:
                history.append(note("decision", "skipped_stage", stage=deal.stage_id))
                outcomes.append(
                    OutcomeWrite(
                        deal.id, tuple(r.id for r in deal_rows), EventStatus.SKIPPED,
                        view=view_of(deal, DealState.SKIPPED), fields=fields, in_target=False,
                        history=tuple(history),
                    )
                )
                continue
            if deal.id in stale:
                history.append(note("decision", "stale"))
            else:
                verb = "created" if deal.id in created else "updated"
                history.append(note("write", verb, changes))
                if products is not None and deal.id in products:
                    history.append(note("write", "products", count=len(products[deal.id])))
            outcomes.append(
                OutcomeWrite(
                    deal.id, tuple(r.id for r in deal_rows), EventStatus.SYNCED,
                    view=view_of(deal, DealState.SYNCED), fields=fields, in_target=True,
                    history=tuple(history),
                )
            )
        return outcomes, created

    def _commit(self, outcomes: list[OutcomeWrite], created: set[int]) -> None:
        if not outcomes:
            return
        faultpoints.reach("after_target_commit")
        records = self.state.record_outcomes(outcomes)
        metrics.deals_committed(outcomes)
        counts: dict[str, int] = {}
        for out in outcomes:
            key = "retrying" if out.retry_delay is not None else out.status.value
            counts[key] = counts.get(key, 0) + 1
        log.info("pass: %s", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        by_id: dict[int, EventRecord] = {r.id: r for r in records}
        for out in outcomes:
            for row_id in out.row_ids:
                if row_id in by_id:
                    self.sink.event_updated(by_id[row_id])
            changes: tuple[FieldChange, ...] = ()
            for entry in out.history:
                changes = changes or entry.changes
            outcome = SyncOutcome(
                deal_id=out.deal_id,
                status=out.status,
                deal=out.view,
                error=out.error,
                event_ids=out.row_ids,
                changes=changes,
                reached_production=out.deal_id in created,
            )
            if out.status == EventStatus.FAILED:
                self.sink.sync_failed(outcome)
            elif out.retry_delay is None:
                self.sink.deal_synced(outcome)


__all__ = ["SyncWorker", "WorkerOptions", "backoff", "field_changes"]
