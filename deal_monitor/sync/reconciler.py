"""Reconciliation: the portal is the truth, events are only hints.

Bitrix24 never redelivers an event the listener missed, so every so often (and at start) the
reconciler lists the deals changed since a watermark (``>DATE_MODIFY``, with an overlap) and
puts those the state DB has not seen at that version into the inbox, carrying the deal as read
so the worker need not read it again. The watermark is the portal's own clock (the ``time``
block of the first list response), never the local one. With an empty state this is the
initial sync.

Memory stays bounded by a listed page, whatever the portal holds: the state DB is asked about
each page's deals only (not every deal it knows, up front), and the deletion check walks the
portal's ID listing and the state's IDs side by side, range by range, instead of holding both
ID sets whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..bitrix.client import BitrixClient
from ..bitrix.deal import parse_datetime
from ..model import EventSink, Progress, Source
from ..store.engine import to_db_time
from ..store.state import NewEvent, StateStore, fields_hash
from .heap import release_freed_memory

log = logging.getLogger(__name__)

WATERMARK_KEY = "reconcile.watermark"
# job -> (inbox event name, source); anything else is a manual resync
JOBS = {"reconcile": ("RECONCILE", Source.RECONCILE), "poll": ("POLL", Source.RECONCILE)}
BIG_PAGE = 500  # listed deals after which the freed memory is handed back to the OS


@dataclass(frozen=True)
class ReconcileResult:
    listed: int
    queued: int
    unannounced: int  # changes no pushed event told us about (all queued ones)
    watermark: str | None


class Reconciler:
    def __init__(
        self,
        client: BitrixClient,
        state: StateStore,
        sink: EventSink,
        overlap_minutes: float = 10.0,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.sink = sink
        self.overlap = timedelta(minutes=overlap_minutes)
        self.on_queued = on_queued or (lambda: None)
        self._lock = threading.Lock()

    def run(
        self,
        full: bool = False,
        cancel: threading.Event | None = None,
        job: str = "reconcile",
        after_id: int = 0,
        cursor_key: str | None = None,
        expected: int | None = None,
    ) -> ReconcileResult:
        """List changed deals (all deals when ``full``) and queue the ones not yet synced.

        ``cursor_key`` names a state key where the last listed ID is kept, so an
        interrupted full listing resumes where it stopped.
        """
        with self._lock:
            return self._run(full, cancel, job, after_id, cursor_key, expected)

    def run_since(self, since: datetime, job: str = "poll") -> ReconcileResult:
        """List the deals changed after ``since`` (portal time) and queue the ones not yet
        synced at that version; the reconciliation's own watermark is left alone."""
        with self._lock:
            return self._list(since, False, None, job, 0, None, None)

    def _run(self, full, cancel, job, after_id, cursor_key, expected) -> ReconcileResult:
        watermark = None if full else self.state.get_value(WATERMARK_KEY)
        since = parse_datetime(watermark) if watermark else None
        if since is not None:
            since -= self.overlap
        result = self._list(since, full, cancel, job, after_id, cursor_key, expected)
        if result.watermark:  # a full listing covers everything up to its start as well
            self.state.set_value(WATERMARK_KEY, result.watermark)
        return result

    def _list(self, since, full, cancel, job, after_id, cursor_key, expected) -> ReconcileResult:
        deal_filter = {">DATE_MODIFY": since.isoformat()} if since is not None else {}
        if cursor_key:
            after_id = max(after_id, int(self.state.get_value(cursor_key) or 0))
        event, source = JOBS.get(job, ("RESYNC", Source.MANUAL))
        # a poll and a reconciliation listing the same version queue it once
        key = "reconcile" if job == "poll" else job
        listed = queued = unannounced = 0
        portal_start: str | None = None
        for page in self.client.iter_deal_pages(deal_filter, after_id=after_id, expected=expected):
            if portal_start is None:
                portal_start = self.client.last_time.get("date_start")
            listed += len(page)
            big = len(page) >= BIG_PAGE
            stored = self.state.add_events(self._listed_events(page, full, event, source, key))
            queued += len(stored)
            unannounced += len(stored)
            if cursor_key and page:
                self.state.set_value(cursor_key, str(page[-1]["ID"]))
            # the next page is fetched (a long wait, on a busy portal) with none of this one held
            del page
            for record in stored[-200:]:  # the table shows the newest; all are in the DB
                self.sink.event_received(record)
            if stored:
                self.on_queued()
            del stored
            if big:
                release_freed_memory()
            if job != "poll":
                self.sink.progress_changed(Progress(job=job, done=listed, total=None))
            if cancel is not None and cancel.is_set():
                return ReconcileResult(listed, queued, unannounced, None)
        if cursor_key:
            self.state.set_value(cursor_key, None)
        if portal_start is None and not listed:
            # nothing changed: the (single, empty) reply still carries the portal's clock
            portal_start = self.client.last_time.get("date_start")
        log_at = logging.DEBUG if job == "poll" and not queued else logging.INFO
        log.log(log_at, "%s: %d listed, %d queued, %d not announced", job, listed, queued,
                unannounced)
        return ReconcileResult(listed, queued, unannounced, portal_start)

    def find_deleted(self, cancel: threading.Event | None = None) -> int:
        """Deletion catch-up: deals the target holds that the portal no longer lists.

        Only IDs are listed (fast paging); each missing deal is queued for a read, and the
        worker marks it deleted only if the portal answers "Not found" — a deal created after
        the listing just costs one extra read. Returns how many reads were queued; a cancelled
        check keeps those it queued for the ID ranges it finished.
        """
        with self._lock:
            # both listings ascend by ID: each portal page settles the state's IDs up to its
            # last one, so neither side is ever held whole
            queued = flagged = 0
            done_to = 0  # state IDs up to here are settled
            for page in self.client.iter_deal_pages({}, select=("ID",)):
                listed = {int(row["ID"]) for row in page if str(row.get("ID", "")).isdigit()}
                del page  # only its IDs are needed
                if listed:
                    last = max(listed)
                    missing = [i for i in self.state.target_ids_between(done_to, last)
                               if i not in listed]
                    flagged += len(missing)
                    queued += self._check_deleted(missing)
                    done_to = last
                if cancel is not None and cancel.is_set():
                    return queued
            # above the portal's last ID: every one the target holds is gone from the portal
            missing = self.state.target_ids_between(done_to, None)
            flagged += len(missing)
            queued += self._check_deleted(missing)
            if flagged:
                log.info("deletion check: %d deal(s) to confirm", flagged)
            return queued

    def _check_deleted(self, missing: list[int]) -> int:
        """Queue a read of each deal the portal did not list; returns how many were stored."""
        if not missing:
            return 0
        stored = self.state.add_events(
            [
                NewEvent(event="CHECK_DELETED", deal_id=deal_id, source=Source.RECONCILE,
                         dedup_key=f"gone|{deal_id}")
                for deal_id in missing
            ]
        )
        for record in stored:
            self.sink.event_received(record)
        if stored:
            self.on_queued()
        return len(stored)

    def _listed_events(
        self, page: list[dict], full: bool, event: str, source: Source, key: str
    ) -> list[NewEvent]:
        """Inbox rows for the listed deals the state DB has not seen at that version."""
        # what the state DB holds for this page's deals only, read as the page comes in
        known = None if full else self._known_versions(_page_ids(page))
        events = []
        for raw in page:
            try:
                deal_id = int(raw["ID"])
            except (KeyError, TypeError, ValueError):
                continue
            if known is not None and self._already_seen(known.get(deal_id), raw):
                continue
            events.append(
                NewEvent(
                    event=event,
                    deal_id=deal_id,
                    source=source,
                    # DATE_MODIFY has one-second resolution: two versions of one second
                    # differ only in their fields, so the key carries their hash
                    dedup_key=f"{key}|{deal_id}|{fields_hash(raw)}",
                    payload=raw,
                )
            )
        return events

    def _known_versions(self, deal_ids: list[int]) -> dict[int, tuple[datetime | None, str]]:
        return self.state.versions_of(deal_ids) if deal_ids else {}

    @staticmethod
    def _already_seen(known: tuple[datetime | None, str] | None, raw: dict) -> bool:
        """True when the state DB holds this deal at this version with these very fields."""
        if known is None:
            return False
        seen_version, seen_hash = known
        modified = parse_datetime(raw.get("DATE_MODIFY"))
        version = to_db_time(modified) if modified else None
        if seen_version is None or version is None or seen_version < version:
            return False
        return seen_version > version or seen_hash == fields_hash(raw)


def _page_ids(page: list[dict]) -> list[int]:
    ids = []
    for raw in page:
        try:
            ids.append(int(raw["ID"]))
        except (KeyError, TypeError, ValueError):
            continue
    return ids
