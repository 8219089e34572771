"""Frozen dataclasses that cross threads, and the EventSink the core reports through.

Nothing mutable leaves the worker or listener threads: the GUI bridge and the headless log
sink receive only these values. All datetimes are timezone-aware; ``received_at`` and
``synced_at`` are UTC, ``date_modify`` keeps the portal's offset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Source(StrEnum):
    """Where a unit of work came from."""

    PUSH = "push"
    OFFLINE = "offline"
    RECONCILE = "reconcile"
    MANUAL = "manual"


class EventStatus(StrEnum):
    """The life of an inbox row. QUEUED rows with an error are waiting for a retry."""

    QUEUED = "queued"
    SYNCED = "synced"
    SKIPPED = "skipped"  # stage is filtered out and the deal was never written
    DELETED = "deleted"  # portal confirmed the deal is gone; target row marked deleted
    FAILED = "failed"  # permanent failure, kept; "retry failed" re-queues it
    IGNORED = "ignored"  # accepted event we do not act on (unknown event name)
    REJECTED = "rejected"  # request refused before storing (bad token, malformed, ...)


class DealState(StrEnum):
    """What the target holds for a deal, as the deals table shows it."""

    SYNCED = "synced"
    SKIPPED = "skipped"
    DELETED = "deleted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of the events table (an inbox row, or a rejected request)."""

    id: int
    received_at: datetime
    event: str
    deal_id: int | None
    source: Source
    status: EventStatus
    attempts: int = 0
    error: str = ""
    remote_addr: str = ""


@dataclass(frozen=True, slots=True)
class Deal:
    """A deal as read from the portal, normalised. ``fields`` keeps every raw field."""

    id: int
    title: str
    stage_id: str
    category_id: int
    amount: Decimal
    currency_id: str
    close_date: date | None
    comments: str
    date_modify: datetime
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class DealView:
    """A row of the deals table: the last synced state of a deal."""

    id: int
    title: str
    stage_id: str
    category_id: int
    amount: Decimal
    currency_id: str
    close_date: date | None
    date_modify: datetime | None
    synced_at: datetime
    state: DealState
    error: str = ""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs between two syncs of a deal."""

    field: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A step in a deal's timeline: event, fetch, decision, write or error."""

    deal_id: int
    at: datetime
    kind: str
    text: str  # English, for logs and the CLI
    changes: tuple[FieldChange, ...] = ()
    code: str = ""  # what happened, for translation (deal_monitor.sync.notes.TEMPLATES)
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What the worker did with one deal in one pass."""

    deal_id: int
    status: EventStatus
    deal: DealView | None = None
    error: str = ""
    event_ids: tuple[int, ...] = ()
    changes: tuple[FieldChange, ...] = ()
    reached_production: bool = False  # first time written to the target


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything the status bar, tray and /healthz show."""

    listening: bool = False
    listen_url: str = ""
    listen_error: str = ""
    paused: bool = False
    inbox_depth: int = 0
    failed_count: int = 0
    last_event_at: datetime | None = None
    last_sync_at: datetime | None = None
    last_error: str = ""
    rate_budget: float = 0.0  # requests that may be sent now without waiting
    rate_burst: int = 0
    auth_state: str = "ok"  # ok | reauthorize | no_credentials
    events_silent: bool = False
    silence_hint: str = ""
    warnings: tuple[str, ...] = ()  # anomaly warnings (see anomalies.py): auth_failures, ...
    connection_mode: str = ""  # pull | push | app | app_offline | none (see connection.py)
    token_storage: str = ""  # app mode: where the tokens are ("tokens stored in <file>", ...)
    auth_reason: str = ""  # why auth_state is "reauthorize" (no secrets)
    last_poll_at: datetime | None = None  # pull mode: the last change poll that answered
    offline_note: str = ""  # offline events: e.g. the plan refused clear=0 (clear=1 fallback)


@dataclass(frozen=True, slots=True)
class Progress:
    """Progress of a long job (full resync)."""

    job: str
    done: int
    total: int | None
    eta_seconds: float | None = None
    finished: bool = False
    cancelled: bool = False
    error: str = ""


class EventSink(Protocol):
    """How the core reports to the GUI (signals) or to the headless log."""

    def event_received(self, record: EventRecord) -> None: ...
    def event_updated(self, record: EventRecord) -> None: ...
    def deal_synced(self, outcome: SyncOutcome) -> None: ...
    def sync_failed(self, outcome: SyncOutcome) -> None: ...
    def status_changed(self, status: StatusSnapshot) -> None: ...
    def progress_changed(self, progress: Progress) -> None: ...


class NullSink:
    """A sink that ignores everything; subclass it to handle only some reports."""

    def event_received(self, record: EventRecord) -> None:
        pass

    def event_updated(self, record: EventRecord) -> None:
        pass

    def deal_synced(self, outcome: SyncOutcome) -> None:
        pass

    def sync_failed(self, outcome: SyncOutcome) -> None:
        pass

    def status_changed(self, status: StatusSnapshot) -> None:
        pass

    def progress_changed(self, progress: Progress) -> None:
        pass


class FanoutSink(NullSink):
    """Sends every report to several sinks; one failing sink does not stop the others."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks: list[EventSink] = list(sinks)

    def add(self, sink: EventSink) -> None:
        self.sinks.append(sink)

    def _each(self, name: str, value: object) -> None:
        for sink in list(self.sinks):
            try:
                getattr(sink, name)(value)
            except Exception:  # a broken observer must not break the worker
                log.exception("sink %s failed in %s", type(sink).__name__, name)

    def event_received(self, record: EventRecord) -> None:
        self._each("event_received", record)

    def event_updated(self, record: EventRecord) -> None:
        self._each("event_updated", record)

    def deal_synced(self, outcome: SyncOutcome) -> None:
        self._each("deal_synced", outcome)

    def sync_failed(self, outcome: SyncOutcome) -> None:
        self._each("sync_failed", outcome)

    def status_changed(self, status: StatusSnapshot) -> None:
        self._each("status_changed", status)

    def progress_changed(self, progress: Progress) -> None:
        self._each("progress_changed", progress)


class LogSink(NullSink):
    """The headless sink: one log line per outcome."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("deal_monitor.sync")

    def deal_synced(self, outcome: SyncOutcome) -> None:
        self.log.debug("deal %s: %s", outcome.deal_id, outcome.status.value)

    def sync_failed(self, outcome: SyncOutcome) -> None:
        self.log.warning("deal %s failed: %s", outcome.deal_id, outcome.error)

    def progress_changed(self, progress: Progress) -> None:
        if progress.finished:
            self.log.info("%s finished: %s deals", progress.job, progress.done)
