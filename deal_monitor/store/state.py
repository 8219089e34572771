"""The local state DB: the durable inbox, rejected requests, deal snapshots and timelines.

Every source of work (push, offline, reconcile, manual) writes rows into ``inbox``; only the
sync worker takes them out. A row stays ``queued`` until its effect is committed in the
target, so a crash at any point leaves it to be done again (the target upsert is idempotent).
Each public method here is one unit of work with its own transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from ..model import (
    DealState,
    DealView,
    EventRecord,
    EventStatus,
    FieldChange,
    HistoryEntry,
    Source,
)
from .engine import WRITE, from_db_time, to_db_time, utcnow

log = logging.getLogger(__name__)

metadata = MetaData()

inbox = Table(
    "inbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", DateTime, nullable=False),
    Column("source", String(16), nullable=False),
    Column("event", String(64), nullable=False),
    Column("deal_id", BigInteger),
    Column("handler_id", String(24), nullable=False, default=""),
    Column("ts", BigInteger),
    Column("dedup_key", String(64)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("remote_addr", String(64), nullable=False, default=""),
    Column("payload", Text),  # a deal already read by reconcile/resync (JSON), saves a fetch
    Column("offline_process_id", String(64)),
    Column("offline_message_id", String(64)),
    Column("done_at", DateTime),
    # a shared PostgreSQL inbox: which instance holds the row, and until when
    Column("lease_owner", String(40)),
    Column("lease_until", DateTime),
    Index("ix_inbox_status_due", "status", "next_attempt_at"),
    Index("ix_inbox_deal", "deal_id", "status"),
    Index(
        "ux_inbox_pending_dedup",
        "dedup_key",
        unique=True,
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
)

rejection = Table(
    "rejection",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("remote_addr", String(64), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("reason", String(200), nullable=False),
)

deal_state = Table(
    "deal_state",
    metadata,
    Column("deal_id", BigInteger, primary_key=True, autoincrement=False),
    Column("title", Text, nullable=False, default=""),
    Column("stage_id", String(64), nullable=False, default=""),
    Column("category_id", Integer, nullable=False, default=0),
    Column("amount", String(40), nullable=False, default="0"),
    Column("currency_id", String(8), nullable=False, default=""),
    Column("close_date", Date),
    Column("date_modify", DateTime),
    Column("synced_at", DateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("in_target", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=False, default=""),
    Column("fields", Text, nullable=False, default="{}"),
    Column("fields_hash", String(40), nullable=False, default=""),
)

deal_history = Table(
    "deal_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deal_id", BigInteger, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("changes", Text, nullable=False, default="[]"),
    Column("code", String(32), nullable=False, default=""),
    Column("params", Text, nullable=False, default="{}"),
    Index("ix_history_deal", "deal_id", "id"),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

REJECTIONS_KEPT = 2000
LEASE_SECONDS = 30
CLOCK_SLACK_MINUTES = 10  # timestamps further ahead than this mean the clock stepped back
MAX_BACKOFF_MINUTES = 15  # the longest retry delay the worker sets (portal blocks included)
IN_CHUNK = 500  # IDs per IN list (SQLite builds before 3.32 allow 999 variables)


def _unleased(now: datetime):
    """Rows no live instance holds (always true on SQLite, where no lease is ever set)."""
    return or_(inbox.c.lease_until.is_(None), inbox.c.lease_until < now)


def _dialect_insert(conn):
    """The dialect's INSERT with ON CONFLICT (the state DB is SQLite or PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def fields_hash(fields: dict) -> str:
    """A fingerprint of a deal's raw fields.

    DATE_MODIFY has one-second resolution, so two changes within a second look alike by
    version; the fingerprint tells them apart.
    """
    canonical = json.dumps(fields, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(canonical.encode("utf-8")).hexdigest()


_RESYNC_STATEMENTS: dict[str, tuple[Any, Any]] = {}


def _resync_statements(dialect: str) -> tuple[Any, Any]:
    """The full resync's two bulk statements, built once per dialect: the snapshot upsert that
    never replaces a newer DATE_MODIFY nor a snapshot synced after the page was listed, and
    the timeline insert."""
    if dialect not in _RESYNC_STATEMENTS:
        from sqlalchemy.dialects import postgresql, sqlite

        stmt = (postgresql if dialect == "postgresql" else sqlite).insert(deal_state)
        columns = [c.name for c in deal_state.columns if c.name != "deal_id"]
        upsert = stmt.on_conflict_do_update(
            index_elements=[deal_state.c.deal_id],
            set_={name: stmt.excluded[name] for name in columns},
            where=and_(
                deal_state.c.synced_at < bindparam("listed_at", type_=DateTime()),
                or_(
                    deal_state.c.date_modify.is_(None),
                    stmt.excluded.date_modify >= deal_state.c.date_modify,
                ),
            ),
        )
        _RESYNC_STATEMENTS[dialect] = (upsert, insert(deal_history))
    return _RESYNC_STATEMENTS[dialect]


@dataclass(frozen=True)
class InboxRow:
    """A queued inbox row as the worker sees it."""

    id: int
    deal_id: int
    event: str
    source: Source
    attempts: int
    received_at: datetime
    payload: dict | None
    offline_process_id: str | None
    offline_message_id: str | None


@dataclass(frozen=True)
class OutcomeWrite:
    """Everything one deal's pass leaves in the state DB.

    ``retry_delay`` set: the rows stay queued and come back after that many seconds.
    """

    deal_id: int
    row_ids: tuple[int, ...]
    status: EventStatus
    view: DealView | None = None
    fields: dict | None = None
    in_target: bool | None = None
    history: tuple[Any, ...] = ()  # sync.notes.Note: kind, code, params, text, changes
    error: str = ""
    retry_delay: float | None = None


@dataclass(frozen=True)
class NewEvent:
    """What a source hands to the inbox."""

    event: str
    deal_id: int | None
    source: Source
    handler_id: str = ""
    ts: int | None = None
    dedup_key: str | None = None
    remote_addr: str = ""
    payload: dict | None = None
    status: EventStatus = EventStatus.QUEUED
    offline_process_id: str | None = None
    offline_message_id: str | None = None


_RECORD_COLUMNS = (
    inbox.c.id, inbox.c.received_at, inbox.c.event, inbox.c.deal_id, inbox.c.source,
    inbox.c.status, inbox.c.attempts, inbox.c.error, inbox.c.remote_addr,
)


def _record(row: Any) -> EventRecord:
    return EventRecord(
        id=row.id,
        received_at=from_db_time(row.received_at),
        event=row.event,
        deal_id=row.deal_id,
        source=Source(row.source),
        status=EventStatus(row.status),
        attempts=row.attempts,
        error=row.error or "",
        remote_addr=row.remote_addr or "",
    )


def _refusal_record(row_id: int, at: datetime, http_status: int, reason: str,
                    remote_addr: str) -> EventRecord:
    """A refused request as the events table shows it (negative IDs: not inbox rows)."""
    return EventRecord(
        id=-row_id, received_at=from_db_time(at), event=f"HTTP {http_status}", deal_id=None,
        source=Source.PUSH, status=EventStatus.REJECTED, error=reason, remote_addr=remote_addr,
    )


# what a deals-table row needs: not the raw fields (JSON) nor their hash
_VIEW_COLUMNS = ("deal_id", "title", "stage_id", "category_id", "amount", "currency_id",
                 "close_date", "date_modify", "synced_at", "state", "error")


def _view(row: Any, shared: dict | None = None) -> DealView:
    """A deal's table row. ``shared`` (one dict per load) makes equal stage IDs, currencies and
    dates one object each: 100,000 rows hold a few hundred distinct values, not 500,000."""
    one = shared.setdefault if shared is not None else (lambda value, _same: value)
    date_modify, synced_at = from_db_time(row.date_modify), from_db_time(row.synced_at)
    return DealView(
        id=row.deal_id,
        title=row.title,
        stage_id=one(row.stage_id, row.stage_id),
        category_id=row.category_id,
        amount=Decimal(row.amount),  # never shared: equal Decimals may print differently
        currency_id=one(row.currency_id, row.currency_id),
        close_date=one(row.close_date, row.close_date),
        date_modify=one(date_modify, date_modify),
        synced_at=one(synced_at, synced_at),
        state=DealState(row.state),
        error=row.error or "",
    )


class StateStore:
    """All reads and writes of the state DB."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.owner = f"{socket.gethostname()[:24]}:{os.getpid()}"
        self._sqlite = engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock()
        # the highest inbox row id a pass of this process has taken: rows above it are
        # certainly not in a pass (their deal will be read again), the ones below may be
        self.taken_up_to = 0
        self.on_coalesced: Callable[[int], None] = lambda deal_id: None

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction; on SQLite, writers of this process queue on a lock first.

        SQLite's busy handler sleeps in growing steps (up to 100 ms) while another connection
        holds the write lock, so a waiting listener thread misses the moment it frees; a
        process lock hands it over at once and keeps the acknowledgement latency flat.
        """
        if not self._sqlite:
            with self.writer.begin() as conn:
                yield conn
            return
        with self._write_lock, self.writer.begin() as conn:
            yield conn

    def create(self) -> None:
        """Create or upgrade the schema (Alembic steps in store/migrations; see its README)."""
        from .migrations import upgrade

        upgrade(self.engine)

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` on SQLite; other databases check themselves."""
        if self.engine.dialect.name != "sqlite":
            return True
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

    # -- intake --------------------------------------------------------------------------
    def add_events(self, events: Sequence[NewEvent], coalesce_at: int = 0) -> list[EventRecord]:
        """Commit events to the inbox; returns the rows stored (duplicates are left out).

        A duplicate is an event whose ``dedup_key`` matches a queued row that no pass has
        taken yet (or an earlier one in the same call): the same delivery posted again before
        we got to it, whose deal is certainly read after this moment. A key that matches only
        rows a pass holds is no duplicate: that pass may have read the deal already, and
        Bitrix24's ``ts`` has whole seconds, so a second change within the same second sends
        the same key. Such an event is stored without its key (the unique index on queued
        keys would refuse it), and its deal is read again after the pass.

        With ``coalesce_at``, a deal event is not stored when that many events of the deal
        already wait that no pass has taken yet: they guarantee a read of the deal after this
        moment, so one more row adds nothing — and a flood of valid events cannot grow the
        inbox faster than passes drain it.
        """
        now = utcnow()
        with self._write() as conn:
            keys = [e.dedup_key for e in events if e.dedup_key]
            untaken = self._untaken_keys(conn, keys)
            present = self._queued_keys(conn, keys) if keys else set()
            waiting = (
                self._untaken_counts(conn, {e.deal_id for e in events if e.deal_id})
                if coalesce_at else {}
            )
            fresh: list[NewEvent] = []
            for ev in events:
                if ev.dedup_key:
                    if ev.dedup_key in untaken:
                        continue
                    if ev.dedup_key in present:
                        ev = replace(ev, dedup_key=None)  # a pass holds its twin: read again
                    else:
                        untaken.add(ev.dedup_key)
                        present.add(ev.dedup_key)
                if coalesce_at and ev.deal_id and ev.status == EventStatus.QUEUED:
                    if waiting.get(ev.deal_id, 0) >= coalesce_at:
                        self.on_coalesced(ev.deal_id)
                        continue
                    waiting[ev.deal_id] = waiting.get(ev.deal_id, 0) + 1
                fresh.append(ev)
            if not fresh:
                return []
            rows = [self._inbox_values(ev, now) for ev in fresh]
            try:
                with conn.begin_nested():
                    result = conn.execute(
                        insert(inbox).returning(inbox.c.id, sort_by_parameter_order=True), rows
                    )
                    ids = [r[0] for r in result]
            except IntegrityError:
                # a queued twin this transaction could not see (another instance on a shared
                # PostgreSQL inbox inserted or is claiming it): which one is unknown, so each
                # loser is kept without its key — stored twice is harmless, dropped is not
                ids = []
                for index, values in enumerate(rows):
                    try:
                        with conn.begin_nested():
                            ids.append(conn.execute(insert(inbox).values(**values)).inserted_primary_key[0])
                    except IntegrityError:
                        values["dedup_key"] = None
                        fresh[index] = replace(fresh[index], dedup_key=None)
                        ids.append(conn.execute(insert(inbox).values(**values)).inserted_primary_key[0])
        received = from_db_time(now)
        return [
            EventRecord(
                id=row_id, received_at=received, event=ev.event, deal_id=ev.deal_id,
                source=ev.source, status=ev.status, remote_addr=ev.remote_addr,
            )
            for row_id, ev in zip(ids, fresh, strict=True)
        ]

    def _untaken_counts(self, conn, deal_ids: set[int]) -> dict[int, int]:
        """Queued rows per deal that no pass holds.

        Rows above this process's watermark are in no pass of it (see ``queued_rows``).
        PostgreSQL (maybe shared by instances): leased rows are out, and rows another
        instance is claiming right now are skipped (``SKIP LOCKED``); the rows counted stay
        locked until this insert commits, so no other instance can take them meanwhile.
        """
        if not deal_ids:
            return {}
        query = select(inbox.c.id, inbox.c.deal_id).where(
            and_(inbox.c.deal_id.in_(list(deal_ids)), self._untaken()))
        if not self._sqlite:
            query = query.with_for_update(skip_locked=True)
        counts: dict[int, int] = {}
        for _row_id, deal_id in conn.execute(query):
            counts[deal_id] = counts.get(deal_id, 0) + 1
        return counts

    def oldest_queued_at(self) -> datetime | None:
        """When the oldest event still waiting arrived (aware UTC), or None."""
        with self.engine.connect() as conn:
            oldest = conn.execute(
                select(func.min(inbox.c.received_at)).where(inbox.c.status == "queued")
            ).scalar()
        return from_db_time(oldest) if oldest is not None else None

    def _untaken(self):
        """Queued rows no pass holds: above this process's watermark, never claimed.

        A row claimed by an instance keeps its ``lease_owner`` until its pass records it,
        even past the lease's end (that pass may still be reading): only rows nobody ever
        claimed — or whose claim was released with a retry — certainly wait for a pass
        whose read comes after now.
        """
        return and_(inbox.c.status == "queued", inbox.c.id > self.taken_up_to,
                    inbox.c.lease_owner.is_(None))

    def _untaken_keys(self, conn, keys: Sequence[str]) -> set[str]:
        """The keys among ``keys`` of rows no pass holds (see ``_untaken``).

        On PostgreSQL the rows found stay locked until this insert commits (another
        instance's claim waits for it, and then reads after this event arrived); rows being
        claimed right now are skipped, so their twins are stored.
        """
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            query = select(inbox.c.dedup_key).where(
                and_(inbox.c.dedup_key.in_(list(keys[start : start + 500])), self._untaken()))
            if not self._sqlite:
                query = query.with_for_update(skip_locked=True)
            found.update(r[0] for r in conn.execute(query))
        return found

    @staticmethod
    def _queued_keys(conn, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            found.update(
                r[0]
                for r in conn.execute(
                    select(inbox.c.dedup_key).where(
                        and_(inbox.c.dedup_key.in_(chunk), inbox.c.status == "queued")
                    )
                )
            )
        return found

    @staticmethod
    def _inbox_values(ev: NewEvent, now: datetime) -> dict[str, Any]:
        return {
            "received_at": now,
            "source": ev.source.value,
            "event": ev.event,
            "deal_id": ev.deal_id,
            "handler_id": ev.handler_id,
            "ts": ev.ts,
            "dedup_key": ev.dedup_key,
            "status": ev.status.value,
            "attempts": 0,
            "next_attempt_at": now,
            "error": "",
            "remote_addr": ev.remote_addr,
            "payload": json.dumps(ev.payload, ensure_ascii=False) if ev.payload else None,
            "offline_process_id": ev.offline_process_id,
            "offline_message_id": ev.offline_message_id,
            "done_at": now if ev.status != EventStatus.QUEUED else None,
        }

    def add_rejections(self, refusals: Sequence[Any]) -> list[EventRecord]:
        """Record refused requests in one transaction (``Refusal``-shaped: at, remote_addr,
        http_status, reason); the table keeps only the newest ``REJECTIONS_KEPT`` rows."""
        if not refusals:
            return []
        rows = [
            {"at": to_db_time(datetime.fromtimestamp(r.at, UTC)), "remote_addr": r.remote_addr[:64],
             "http_status": r.http_status, "reason": r.reason[:200]}
            for r in refusals
        ]
        with self._write() as conn:
            ids = [row[0] for row in conn.execute(
                insert(rejection).returning(rejection.c.id, sort_by_parameter_order=True), rows)]
            newest = ids[-1]
            if newest // 100 != (newest - len(ids)) // 100:  # crossed a hundred: trim now
                conn.execute(delete(rejection).where(rejection.c.id <= newest - REJECTIONS_KEPT))
        return [
            _refusal_record(row_id, values["at"], r.http_status, r.reason, r.remote_addr)
            for row_id, values, r in zip(ids, rows, refusals, strict=True)
        ]

    # -- the worker's side ------------------------------------------------------------------
    def due_deals(
        self, debounce: float, max_delay: float, limit: int = 500, now: datetime | None = None
    ) -> list[int]:
        """Deal IDs whose queued rows are due now.

        A deal is due when its newest event is ``debounce`` seconds old (the burst of
        updates one save causes has settled), or its oldest is ``max_delay`` old (so a deal
        that never stops changing still syncs), and no retry backoff holds it back.
        """
        now = now or utcnow()
        settled = now - timedelta(seconds=debounce)
        overdue = now - timedelta(seconds=max_delay)
        ahead = now + timedelta(minutes=CLOCK_SLACK_MINUTES)
        skewed = now + timedelta(minutes=MAX_BACKOFF_MINUTES + CLOCK_SLACK_MINUTES)
        query = (
            select(inbox.c.deal_id)
            .where(
                and_(
                    inbox.c.status == "queued",
                    inbox.c.deal_id.is_not(None),
                    _unleased(now),
                )
            )
            .group_by(inbox.c.deal_id)
            .having(
                and_(
                    # a time far ahead means the local clock stepped back: due, not stuck
                    (func.min(inbox.c.next_attempt_at) <= now)
                    | (func.min(inbox.c.next_attempt_at) > skewed),
                    (func.max(inbox.c.received_at) <= settled)
                    | (func.min(inbox.c.received_at) <= overdue)
                    | (func.max(inbox.c.attempts) > 0)
                    | (func.max(inbox.c.received_at) > ahead),
                )
            )
            .order_by(func.min(inbox.c.received_at))
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def queued_deal_ids(self, limit: int) -> list[int]:
        """Deals of the queued events, oldest event first (the dry run's "next N events")."""
        query = (
            select(inbox.c.deal_id)
            .where(and_(inbox.c.status == "queued", inbox.c.deal_id.is_not(None)))
            .group_by(inbox.c.deal_id)
            .order_by(func.min(inbox.c.received_at), inbox.c.deal_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def ready_deal_count(self, now: datetime | None = None) -> int:
        """Deals with queued rows not held back by a retry backoff (due or still settling)."""
        now = now or utcnow()
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count(func.distinct(inbox.c.deal_id))).where(
                    and_(
                        inbox.c.status == "queued",
                        inbox.c.deal_id.is_not(None),
                        inbox.c.next_attempt_at <= now,
                    )
                )
            ).scalar_one()

    def queued_rows(self, deal_ids: Iterable[int]) -> dict[int, list[InboxRow]]:
        """Take the queued rows of these deals for this pass.

        On a PostgreSQL inbox shared by several instances the rows are claimed: locked with
        ``FOR UPDATE SKIP LOCKED`` (another instance's claim in progress is skipped, never
        waited for) and leased for ``LEASE_SECONDS``; a crashed instance's lease runs out and
        the rows come back. A SQLite inbox has one writer, so no lease is needed.
        """
        ids = list(deal_ids)
        result: dict[int, list[InboxRow]] = {i: [] for i in ids}
        if not ids:
            return result
        shared = self.engine.dialect.name == "postgresql"
        now = utcnow()
        # a lease is taken only on a shared PostgreSQL inbox; on SQLite this is a plain read
        with self._write() if shared else self.engine.connect() as conn:
            # The watermark moves before the read, and the read takes no row above it: a row
            # intake counts as untaken (above the old watermark) is either left for a later
            # pass or read by a pass whose fetch comes after the watermark moved, i.e. after
            # intake looked — after the change that intake's event announced.
            watermark = conn.execute(select(func.max(inbox.c.id))).scalar() or 0
            self.taken_up_to = max(self.taken_up_to, watermark)
            for start in range(0, len(ids), 500):
                query = (
                    select(inbox)
                    .where(
                        and_(
                            inbox.c.status == "queued",
                            inbox.c.deal_id.in_(ids[start : start + 500]),
                            inbox.c.id <= watermark,
                            _unleased(now),
                        )
                    )
                    .order_by(inbox.c.id)
                )
                if shared:
                    query = query.with_for_update(skip_locked=True)
                rows = conn.execute(query).all()
                if shared and rows:
                    conn.execute(
                        update(inbox)
                        .where(inbox.c.id.in_([r.id for r in rows]))
                        .values(
                            lease_owner=self.owner,
                            lease_until=now + timedelta(seconds=LEASE_SECONDS),
                        )
                    )
                for row in rows:
                    result[row.deal_id].append(
                        InboxRow(
                            id=row.id,
                            deal_id=row.deal_id,
                            event=row.event,
                            source=Source(row.source),
                            attempts=row.attempts,
                            received_at=row.received_at,
                            payload=json.loads(row.payload) if row.payload else None,
                            offline_process_id=row.offline_process_id,
                            offline_message_id=row.offline_message_id,
                        )
                    )
        return result

    def _finish(self, conn, row_ids: Sequence[int], status: EventStatus, error: str) -> list[EventRecord]:
        return self._update_rows(
            conn, row_ids, status=status.value, done_at=utcnow(), payload=None, error=error[:1000]
        )

    @staticmethod
    def _update_rows(conn, row_ids: Sequence[int], **values: Any) -> list[EventRecord]:
        """Count an attempt on rows, release their lease, set ``values``; return them."""
        records: list[EventRecord] = []
        for start in range(0, len(row_ids), 500):
            chunk = list(row_ids[start : start + 500])
            result = conn.execute(
                update(inbox)
                .where(inbox.c.id.in_(chunk))
                .values(attempts=inbox.c.attempts + 1, lease_owner=None, lease_until=None, **values)
                .returning(*_RECORD_COLUMNS)
            )
            records.extend(_record(r) for r in result)
        return records

    def retry_rows(self, row_ids: Sequence[int], error: str, delay_s: float) -> list[EventRecord]:
        """A transient failure: keep the rows queued, count the attempt, back off."""
        if not row_ids:
            return []
        with self._write() as conn:
            return self._retry(conn, row_ids, error, delay_s)

    def _retry(self, conn, row_ids: Sequence[int], error: str, delay_s: float) -> list[EventRecord]:
        due = utcnow() + timedelta(seconds=delay_s)
        return self._update_rows(conn, row_ids, error=error[:1000], next_attempt_at=due)

    def release_backoff(self) -> int:
        """Queued rows waiting out a retry delay become due now (the cause was fixed)."""
        now = utcnow()
        with self._write() as conn:
            result = conn.execute(
                update(inbox)
                .where(and_(inbox.c.status == "queued", inbox.c.next_attempt_at > now))
                .values(next_attempt_at=now)
            )
            return result.rowcount or 0

    def requeue_failed(self) -> int:
        """'Retry failed': every failed row goes back to the queue with a fresh count."""
        now = utcnow()
        with self._write() as conn:
            result = conn.execute(
                update(inbox)
                .where(inbox.c.status == EventStatus.FAILED.value)
                .values(status="queued", attempts=0, next_attempt_at=now, done_at=None)
            )
            return result.rowcount or 0

    def record_outcomes(self, outcomes: Sequence[OutcomeWrite]) -> list[EventRecord]:
        """After the target commit: snapshots, timeline entries and inbox rows, one transaction."""
        now = utcnow()
        records: list[EventRecord] = []
        history_rows = [
            {
                "deal_id": out.deal_id,
                "at": now,
                "kind": entry.kind,
                "text": entry.text,
                "code": entry.code,
                "params": json.dumps(dict(entry.params), ensure_ascii=False),
                "changes": json.dumps(
                    [[c.field, c.old, c.new] for c in entry.changes], ensure_ascii=False
                ),
            }
            for out in outcomes
            for entry in out.history
        ]
        views = self._view_rows([out for out in outcomes if out.view is not None])
        with self._write() as conn:
            self._save_views(conn, views)
            if history_rows:
                conn.execute(insert(deal_history), history_rows)
            finished: dict[tuple[EventStatus, str], list[int]] = {}
            retried: dict[tuple[str, float], list[int]] = {}
            for out in outcomes:
                if out.retry_delay is None:
                    finished.setdefault((out.status, out.error), []).extend(out.row_ids)
                else:
                    retried.setdefault((out.error, out.retry_delay), []).extend(out.row_ids)
            for (status, error), row_ids in finished.items():
                records.extend(self._finish(conn, row_ids, status, error))
            for (error, delay), row_ids in retried.items():
                records.extend(self._retry(conn, row_ids, error, delay))
        return records

    @staticmethod
    def _view_rows(outcomes: Sequence[OutcomeWrite]) -> dict[tuple[bool, bool], list[dict]]:
        """Snapshot rows, grouped by which of ``fields``/``in_target`` they carry.

        Built before the transaction opens: JSON and hashing must not hold the write lock.
        """
        groups: dict[tuple[bool, bool], list[dict]] = {}
        for out in outcomes:
            view = out.view
            assert view is not None
            row = {
                "deal_id": out.deal_id,
                "title": view.title,
                "stage_id": view.stage_id,
                "category_id": view.category_id,
                "amount": str(view.amount),
                "currency_id": view.currency_id,
                "close_date": view.close_date,
                "date_modify": to_db_time(view.date_modify),
                "synced_at": to_db_time(view.synced_at),
                "state": view.state.value,
                "error": view.error,
                "fields": "{}",
                "fields_hash": "",
                "in_target": bool(out.in_target),
            }
            if out.fields is not None:
                row["fields"] = json.dumps(out.fields, ensure_ascii=False, default=str)
                row["fields_hash"] = fields_hash(out.fields)
            groups.setdefault((out.fields is not None, out.in_target is not None), []).append(row)
        return groups

    @staticmethod
    def _save_views(conn, groups: dict[tuple[bool, bool], list[dict]]) -> None:
        """Upsert deal snapshots in bulk; a None ``fields``/``in_target`` keeps the stored one."""
        for (has_fields, has_in_target), rows in groups.items():
            keep = set()
            if not has_fields:
                keep |= {"fields", "fields_hash"}
            if not has_in_target:
                keep.add("in_target")
            stmt = _dialect_insert(conn)(deal_state)
            columns = [c for c in rows[0] if c != "deal_id" and c not in keep]
            stmt = stmt.on_conflict_do_update(
                index_elements=[deal_state.c.deal_id],
                set_={c: stmt.excluded[c] for c in columns},
            )
            conn.execute(stmt, rows)

    def snapshots(self, deal_ids: Sequence[int]) -> dict[int, tuple[dict, bool]]:
        """(last raw fields, whether the target has it) for several deals at once."""
        found: dict[int, tuple[dict, bool]] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(deal_ids), 500):
                chunk = list(deal_ids[start : start + 500])
                for r in conn.execute(
                    select(deal_state.c.deal_id, deal_state.c.fields, deal_state.c.in_target).where(
                        deal_state.c.deal_id.in_(chunk)
                    )
                ):
                    found[r.deal_id] = (json.loads(r.fields or "{}"), bool(r.in_target))
        return found

    # -- the full resync's direct path (sync/resync.py) ----------------------------------------
    def resync_known(
        self, first_id: int, last_id: int
    ) -> tuple[dict[int, tuple[datetime | None, str, datetime | None, bool]], dict[int, datetime]]:
        """What this DB holds for the deals of one listed page (IDs ``first_id..last_id``).

        By deal: (DATE_MODIFY as naive UTC, hash of the raw fields, last sync, whether the
        target has it); and, for deals with queued inbox rows, when the newest of them came
        in. A listed page is an ID range, so these are two range reads rather than IN lists.
        """
        with self.engine.connect() as conn:
            known = {
                r[0]: (r[1], r[2], r[3], bool(r[4]))
                for r in conn.execute(
                    select(
                        deal_state.c.deal_id, deal_state.c.date_modify, deal_state.c.fields_hash,
                        deal_state.c.synced_at, deal_state.c.in_target,
                    ).where(deal_state.c.deal_id.between(first_id, last_id))
                )
            }
            queued = {
                r[0]: r[1]
                for r in conn.execute(
                    select(inbox.c.deal_id, func.max(inbox.c.received_at))
                    .where(
                        and_(
                            inbox.c.deal_id.between(first_id, last_id),
                            inbox.c.status == "queued",
                        )
                    )
                    .group_by(inbox.c.deal_id)
                )
            }
        return known, queued

    def record_resync(
        self,
        views: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
        values: dict[str, str | None] | None = None,
    ) -> None:
        """One page of the full resync, after its target commit, in one transaction.

        ``views``: complete ``deal_state`` rows plus ``listed_at``, when the page's request
        started; a stored snapshot is kept when it was synced after that (a pass read the deal
        meanwhile) or holds a newer DATE_MODIFY. ``history``: complete ``deal_history`` rows.
        ``values``: key/values to set with them (the resume cursor), so the cursor moves only
        with the bookkeeping of the page it covers. Rows go to the driver's executemany
        (``target.execute_many``): a page is thousands of rows.
        """
        from .target import execute_many

        upsert, add_history = _resync_statements(self.engine.dialect.name)
        with self._write() as conn:
            if views:
                execute_many(conn, upsert, views)
            if history:
                execute_many(conn, add_history, history)
            for key, value in (values or {}).items():
                conn.execute(delete(kv).where(kv.c.key == key))
                if value is not None:
                    conn.execute(insert(kv).values(key=key, value=value))

    def offline_rows(self, process_id: str) -> list[tuple[str, str]]:
        """(message id, status) of the inbox rows that came from one offline reservation."""
        with self.engine.connect() as conn:
            return [
                (r[0] or "", r[1])
                for r in conn.execute(
                    select(inbox.c.offline_message_id, inbox.c.status).where(
                        inbox.c.offline_process_id == process_id
                    )
                )
            ]

    # -- reads for the GUI, CLI and /healthz ----------------------------------------------------
    def inbox_depth(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.status == "queued")
            ).scalar_one()

    def failed_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(inbox).where(inbox.c.status == "failed")
            ).scalar_one()

    def recent_events(self, limit: int = 2000) -> list[EventRecord]:
        """Inbox rows and rejected requests, newest first."""
        with self.engine.connect() as conn:
            rows = [_record(r) for r in conn.execute(select(inbox).order_by(inbox.c.id.desc()).limit(limit))]
            for r in conn.execute(select(rejection).order_by(rejection.c.id.desc()).limit(limit)):
                rows.append(_refusal_record(r.id, r.at, r.http_status, r.reason, r.remote_addr))
        rows.sort(key=lambda r: r.received_at, reverse=True)
        return rows[:limit]

    def deals(self) -> list[DealView]:
        columns = [deal_state.c[name] for name in _VIEW_COLUMNS]
        shared: dict = {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(*columns).order_by(deal_state.c.deal_id))
            return [_view(r, shared) for r in rows]

    def deal(self, deal_id: int) -> DealView | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(deal_state).where(deal_state.c.deal_id == deal_id)).first()
        return _view(row) if row else None

    def versions(self) -> dict[int, tuple[datetime | None, str]]:
        """(DATE_MODIFY as naive UTC, hash of the raw fields) of every deal seen, by ID."""
        with self.engine.connect() as conn:
            return {
                r[0]: (r[1], r[2])
                for r in conn.execute(
                    select(deal_state.c.deal_id, deal_state.c.date_modify, deal_state.c.fields_hash)
                )
            }

    def versions_of(self, deal_ids: Sequence[int]) -> dict[int, tuple[datetime | None, str]]:
        """:meth:`versions` of these deals only (one listed page: memory stays per page)."""
        found: dict[int, tuple[datetime | None, str]] = {}
        columns = (deal_state.c.deal_id, deal_state.c.date_modify, deal_state.c.fields_hash)
        with self.engine.connect() as conn:
            for start in range(0, len(deal_ids), IN_CHUNK):
                chunk = list(deal_ids[start : start + IN_CHUNK])
                for r in conn.execute(select(*columns).where(deal_state.c.deal_id.in_(chunk))):
                    found[r[0]] = (r[1], r[2])
        return found

    def skipped_deals(self) -> list[tuple[int, str]]:
        """(deal ID, stage) of deals held back by the stage filter."""
        with self.engine.connect() as conn:
            return [
                (r[0], r[1])
                for r in conn.execute(
                    select(deal_state.c.deal_id, deal_state.c.stage_id).where(
                        deal_state.c.state == DealState.SKIPPED.value
                    )
                )
            ]

    def target_ids(self) -> set[int]:
        """Deals the target holds (not marked deleted), as far as this state DB knows."""
        with self.engine.connect() as conn:
            return {
                r[0]
                for r in conn.execute(
                    select(deal_state.c.deal_id).where(
                        and_(deal_state.c.in_target.is_(True), deal_state.c.state != "deleted")
                    )
                )
            }

    def target_ids_between(self, after_id: int, last_id: int | None) -> list[int]:
        """:meth:`target_ids` with ``after_id < ID <= last_id`` (no upper bound for None),
        ascending: the deletion check walks the portal's listing and these range by range."""
        held = and_(deal_state.c.in_target.is_(True), deal_state.c.state != "deleted",
                    deal_state.c.deal_id > after_id)
        if last_id is not None:
            held = and_(held, deal_state.c.deal_id <= last_id)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                select(deal_state.c.deal_id).where(held).order_by(deal_state.c.deal_id))]

    def history(self, deal_id: int, limit: int = 500) -> list[HistoryEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deal_history)
                .where(deal_history.c.deal_id == deal_id)
                .order_by(deal_history.c.id.desc())
                .limit(limit)
            ).all()
        entries = []
        for r in reversed(rows):
            changes = tuple(FieldChange(*c) for c in json.loads(r.changes or "[]"))
            entries.append(
                HistoryEntry(
                    r.deal_id, from_db_time(r.at), r.kind, r.text, changes,
                    code=r.code or "", params=json.loads(r.params or "{}"),
                )
            )
        return entries

    def last_event_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.max(inbox.c.received_at)).where(inbox.c.source == Source.PUSH.value)
            ).scalar()
        return from_db_time(value)

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                status: count
                for status, count in conn.execute(
                    select(inbox.c.status, func.count()).group_by(inbox.c.status)
                )
            }

    # -- key/value ------------------------------------------------------------------------
    def get_value(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar()

    def set_value(self, key: str, value: str | None) -> None:
        with self._write() as conn:
            conn.execute(delete(kv).where(kv.c.key == key))
            if value is not None:
                conn.execute(insert(kv).values(key=key, value=value))

    def prune(self, keep_days: int = 30) -> int:
        """Drop finished inbox rows older than ``keep_days`` (queued rows are never dropped)."""
        cutoff = utcnow() - timedelta(days=keep_days)
        with self._write() as conn:
            result = conn.execute(
                delete(inbox).where(and_(inbox.c.status != "queued", inbox.c.done_at < cutoff))
            )
            return result.rowcount or 0

    def prune_before(self, cutoff: datetime, chunk: int = 5000) -> dict[str, int]:
        """Drop what is older than ``cutoff`` (naive UTC): finished inbox rows, deal timeline
        entries and rejected requests. Queued rows are never dropped. Deletes go in chunks,
        each its own short transaction, so the listener's inserts get in between."""
        targets = (
            ("inbox", inbox, and_(inbox.c.status != "queued", inbox.c.done_at < cutoff)),
            ("deal_history", deal_history, deal_history.c.at < cutoff),
            ("rejection", rejection, rejection.c.at < cutoff),
        )
        removed = dict.fromkeys((name for name, _, _ in targets), 0)
        for name, table, condition in targets:
            while True:
                with self._write() as conn:
                    ids = conn.execute(select(table.c.id).where(condition).limit(chunk)).scalars().all()
                    if ids:
                        conn.execute(delete(table).where(table.c.id.in_(ids)))
                removed[name] += len(ids)
                if len(ids) < chunk:
                    break
        return removed
