"""Writing deals into the target database, keyed by deal ID and guarded by DATE_MODIFY.

One row per deal; a write never replaces a row with older data: SQLite and PostgreSQL use
``ON CONFLICT ... DO UPDATE ... WHERE excluded.date_modify >= date_modify``, MySQL/MariaDB
(no WHERE there) assign every column through ``IF(newer, new, old)`` with ``date_modify``
assigned last. Amounts are exact decimals (text on SQLite, whose NUMERIC would turn them into
floats); dates are the portal's calendar day; ``date_modify`` is stored as naive UTC.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
    SQLAlchemyError,
)

from ..errors import TargetError
from ..mapping.check import MappingProblem
from ..model import Deal
from .engine import WRITE, to_db_time, utcnow
from .products import ProductWriter
from .types import ExactDecimal

log = logging.getLogger(__name__)


def deal_table(name: str, metadata: MetaData) -> Table:
    """The default target table."""
    return Table(
        name,
        metadata,
        Column("bitrix_id", BigInteger, primary_key=True, autoincrement=False),
        Column("title", Text, nullable=False),
        Column("stage_id", String(64), nullable=False),
        Column("category_id", Integer, nullable=False),
        Column("amount", ExactDecimal(18, 2), nullable=False),
        Column("currency_id", String(8), nullable=False),
        Column("close_date", Date),
        Column("comments", Text, nullable=False),
        Column("date_modify", DateTime, nullable=False),
        Column("deleted", Boolean, nullable=False, default=False),
        Column("synced_at", DateTime, nullable=False),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


def row_for(deal: Deal, synced_at: datetime) -> dict[str, Any]:
    return {
        "bitrix_id": deal.id,
        "title": deal.title,
        "stage_id": deal.stage_id,
        "category_id": deal.category_id,
        "amount": deal.amount,
        "currency_id": deal.currency_id,
        "close_date": deal.close_date,
        "comments": deal.comments,
        "date_modify": to_db_time(deal.date_modify),
        "deleted": False,
        "synced_at": synced_at,
    }


@dataclass(frozen=True)
class Preview:
    """What a write would do to one deal, without writing (the dry run)."""

    deal_id: int
    table: str
    row: dict[str, Any]
    current: dict[str, Any] | None
    changes: tuple[tuple[str, Any, Any], ...]
    stale: bool
    products: tuple[dict[str, Any], ...] = ()
    current_products: tuple[dict[str, Any], ...] = ()
    problems: tuple[MappingProblem, ...] = ()  # what the table would refuse in this row


def diff_rows(current: dict[str, Any] | None, row: dict[str, Any]) -> tuple[tuple[str, Any, Any], ...]:
    """Columns whose value would change (all of them for a new row)."""
    changes = []
    for column, new in row.items():
        old = None if current is None else current.get(column)
        if current is None or _normal(old) != _normal(new):
            changes.append((column, old, new))
    return tuple(changes)


def _normal(value: Any) -> str | None:
    """Compare as the database would: numbers by value (1 == 1.00), the rest as text."""
    if value is None:
        return None
    if isinstance(value, bool):
        value = int(value)
    text = str(value)
    try:
        return format(Decimal(text).normalize(), "f")
    except InvalidOperation:
        return text


@dataclass(frozen=True)
class WriteResult:
    written: frozenset[int]  # rows inserted or updated
    stale: frozenset[int]  # the target already held newer data
    created: frozenset[int]  # rows that did not exist before


def sync_products(
    products: ProductWriter | None,
    conn,
    written: set[int],
    rows: Mapping[int, Sequence[Mapping]] | None,
) -> None:
    """Write product rows of the deals just written (a stale deal keeps its rows)."""
    if products is None or rows is None:
        return
    for deal_id in sorted(written):
        if deal_id in rows:
            products.sync(conn, deal_id, rows[deal_id])


class _ManyPlan:
    """One statement compiled for one dialect and one set of row keys: the SQL text, the
    order its parameters take and each one's bind processor."""

    def __init__(self, statement, dialect, keys: tuple[str, ...]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.statement = statement
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        missing = [n for n in names if n not in keys]
        if missing:  # a column default SQLAlchemy would fill row by row: not for this path
            raise ValueError(f"rows lack values for {', '.join(missing)}")
        escaped = compiled.escaped_bind_names or {}
        self.params = [
            (name, escaped.get(name, name),
             compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> list:
        """The driver's parameter sets, built column by column (a comprehension per column
        is cheaper than one per row, and a column's repeated values are processed once)."""
        columns = []
        for name, _, process in self.params:
            values = [row[name] for row in rows]
            columns.append(values if process is None else _processed(process, values))
        if self.positional:
            return list(zip(*columns, strict=True))
        keys = [escaped for _, escaped, _ in self.params]
        return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


def _processed(process, values: list) -> list:
    """``process`` applied to a column's values.

    Dates and naive datetimes repeat within a batch (synced_at, often DATE_MODIFY) and equal
    ones format alike, so each distinct one is processed once. Anything else (an aware
    datetime, a Decimal whose text depends on more than its value) goes through one by one.
    """
    first = next((v for v in values if v is not None), None)
    if isinstance(first, date):
        distinct = set(values)
        if all(v is None or type(v) is date or (type(v) is datetime and v.tzinfo is None)
               for v in distinct):
            done = {v: process(v) for v in distinct}
            return [done[v] for v in values]
    return [process(v) for v in values]


_plans: dict[tuple[int, str, tuple[str, ...]], _ManyPlan] = {}
_plans_lock = threading.Lock()


def execute_many(conn, statement, rows: Sequence[Mapping[str, Any]]) -> None:
    """``conn.execute(statement, rows)`` without SQLAlchemy's per-row work.

    Core's executemany builds and processes a parameter set per row in Python, which costs
    more than the database's own insert of it (some 15 µs a row of 11 columns). Here the
    statement is compiled once per dialect and row shape, each row becomes a plain tuple (or
    dict) with the columns' own bind processors applied (SQLite's datetime text, exact
    decimals), and the driver's ``executemany`` runs it. Every row must carry every column
    the statement binds (no Python-side defaults).
    """
    if not rows:
        return
    keys = tuple(rows[0])
    cache_key = (id(statement), conn.dialect.name, keys)
    plan = _plans.get(cache_key)
    if plan is None or plan.statement is not statement:
        plan = _ManyPlan(statement, conn.dialect, keys)
        with _plans_lock:
            if len(_plans) > 256:
                _plans.clear()
            _plans[cache_key] = plan
    conn.exec_driver_sql(plan.sql, plan.rows(rows))


_SCHEMA_WORDS = ("no such column", "unknown column", "has no column", "no such table",
                 "doesn't exist", "does not exist", "undefined column", "undefinedcolumn")


def classify_db_error(exc: SQLAlchemyError) -> TargetError:
    """Connection trouble and locks are worth a retry; bad data and schema drift are not.

    SQLAlchemy maps each driver's errors onto the DB-API classes (psycopg raises subclasses
    such as StringDataRightTruncation, which are DataError), so the check is by class; a
    dropped column still comes back as OperationalError from SQLite and MariaDB, so that one
    is recognised by its words.
    """
    text = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc).splitlines()[0]
    permanent = isinstance(exc, IntegrityError | DataError | ProgrammingError | NotSupportedError)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        permanent = False
    elif any(word in text.lower() for word in _SCHEMA_WORDS):
        permanent = True
    return TargetError(f"target database: {text[:300]}", transient=not permanent)


class KeyedWriter:
    """What every target writer shares: a registry table of written deals.

    The registry has ``bitrix_id``, ``date_modify``, ``deleted`` and ``synced_at``: the deal
    table itself for the default preset, the ``<table>_link`` table for mapped ones.
    """

    registry: Table

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writer = engine.execution_options(**WRITE)
        self.prepared = False  # the worker prepares again until it works (target down at start)
        self.registry_exists = True  # False only in a dry run against tables not created yet

    def _versions(self, conn, ids: Sequence[int]) -> dict[int, datetime]:
        reg = self.registry
        found: dict[int, datetime] = {}
        wanted = set(ids)
        if len(wanted) > 50 and max(wanted) - min(wanted) < 4 * len(wanted):
            # a dense run of IDs (a listed page): one range read, not IN lists of 500 bound
            # values each, which cost more to build than to run
            rows = conn.execute(
                select(reg.c.bitrix_id, reg.c.date_modify).where(
                    reg.c.bitrix_id.between(min(wanted), max(wanted))
                )
            )
            return {r[0]: r[1] for r in rows if r[0] in wanted}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = conn.execute(
                select(reg.c.bitrix_id, reg.c.date_modify).where(reg.c.bitrix_id.in_(chunk))
            )
            found.update({r[0]: r[1] for r in rows})
        return found

    def versions(self, ids: Sequence[int]) -> dict[int, datetime]:
        """DATE_MODIFY (naive UTC) of the deals the target holds, by ID."""
        if not self.registry_exists:
            return {}
        try:
            with self.engine.connect() as conn:
                return self._versions(conn, ids)
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None

    def mark_deleted(self, ids: Sequence[int]) -> set[int]:
        """Flag deals the portal no longer has; rows are never dropped."""
        if not ids:
            return set()
        reg = self.registry
        try:
            with self.writer.begin() as conn:
                present = set(self._versions(conn, ids))
                if present:
                    conn.execute(
                        update(reg)
                        .where(reg.c.bitrix_id.in_(list(present)))
                        .values(deleted=True, synced_at=utcnow())
                    )
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None
        return present

    def all_ids(self) -> set[int]:
        """IDs of deals written and not marked deleted (for deletion catch-up)."""
        reg = self.registry
        try:
            with self.engine.connect() as conn:
                return {
                    r[0] for r in conn.execute(select(reg.c.bitrix_id).where(reg.c.deleted.is_(False)))
                }
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None

    def check(self) -> None:
        """Connect and run a trivial query (the settings' Test button)."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None


class TargetWriter(KeyedWriter):
    """Upserts deals into the default table (one row per deal, keyed by ``bitrix_id``)."""

    def __init__(self, engine: Engine, table: str = "deal", products: ProductWriter | None = None) -> None:
        super().__init__(engine)
        self.metadata = MetaData()
        self.table = deal_table(table, self.metadata)
        self.registry = self.table
        self.products = products
        self._upsert_stmt = None

    @property
    def table_name(self) -> str:
        return self.table.name

    def prepare(self, create: bool = True) -> None:
        """Create the table if missing; refuse a table that lacks a column we write.

        ``create=False`` (the dry run) creates nothing: a missing table reads as empty.
        """
        if self.products is not None:
            self.products.prepare(create)
        try:
            insp = inspect(self.engine)
            if not insp.has_table(self.table.name):
                if create:
                    self.metadata.create_all(self.engine)
                self.registry_exists = create
                self.prepared = True
                return
            present = {c["name"].lower() for c in insp.get_columns(self.table.name)}
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None
        missing = [c.name for c in self.table.columns if c.name.lower() not in present]
        if missing:
            raise TargetError(
                f"target table {self.table.name} lacks columns: {', '.join(missing)}",
                transient=False,
                hint="Point the app at another table, or add the columns.",
            )
        self.prepared = True

    def write(
        self, deals: Sequence[Deal], products: Mapping[int, Sequence[Mapping]] | None = None
    ) -> WriteResult:
        """Upsert ``deals`` (and their product rows) in one transaction; older never replaces newer."""
        if not deals:
            return WriteResult(frozenset(), frozenset(), frozenset())
        now = utcnow()
        rows = [row_for(d, now) for d in deals]
        written, stale = set(), set()
        try:
            with self.writer.begin() as conn:
                before = self._versions(conn, [d.id for d in deals])
                for row in rows:
                    old = before.get(row["bitrix_id"])
                    if old is None or row["date_modify"] >= old:
                        written.add(row["bitrix_id"])
                    else:
                        stale.add(row["bitrix_id"])
                execute_many(conn, self._upsert(), rows)
                sync_products(self.products, conn, written, products)
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None
        created = {i for i in written if i not in before}
        return WriteResult(frozenset(written), frozenset(stale), frozenset(created))

    def preview(self, deal: Deal, products: Sequence[Mapping] | None = None) -> Preview:
        row = row_for(deal, utcnow())
        try:
            with self.engine.connect() as conn:
                found = None
                if self.registry_exists:
                    found = conn.execute(
                        select(self.table).where(self.table.c.bitrix_id == deal.id)
                    ).first()
                current = dict(found._mapping) if found else None
                current_products = (
                    self.products.current(conn, deal.id) if self.products is not None else []
                )
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None
        shown = {k: v for k, v in row.items() if k != "synced_at"}
        stale = bool(current and current.get("date_modify") and row["date_modify"] < current["date_modify"])
        return Preview(
            deal.id, self.table.name, shown, current, diff_rows(current, shown), stale,
            tuple(self.products.render(deal.id, products or []) if self.products else ()),
            tuple(current_products),
        )

    def _upsert(self):
        """The dialect's guarded upsert, built once (``execute_many`` keeps it compiled)."""
        if self._upsert_stmt is None:
            self._upsert_stmt = self._build_upsert()
        return self._upsert_stmt

    def _build_upsert(self):
        t = self.table
        dialect = self.engine.dialect.name
        columns = [c.name for c in t.columns if c.name != "bitrix_id"]
        if dialect in ("sqlite", "postgresql"):
            module = sqlite if dialect == "sqlite" else postgresql
            stmt = module.insert(t)
            newer = or_(t.c.date_modify.is_(None), stmt.excluded.date_modify >= t.c.date_modify)
            return stmt.on_conflict_do_update(
                index_elements=[t.c.bitrix_id],
                set_={name: stmt.excluded[name] for name in columns},
                where=newer,
            )
        if dialect in ("mysql", "mariadb"):
            stmt = mysql.insert(t)
            newer = or_(t.c.date_modify.is_(None), stmt.inserted.date_modify >= t.c.date_modify)
            ordered = [name for name in columns if name != "date_modify"] + ["date_modify"]
            return stmt.on_duplicate_key_update(
                [(name, case((newer, stmt.inserted[name]), else_=t.c[name])) for name in ordered]
            )
        raise TargetError(f"unsupported target database: {dialect}", transient=False)
