"""Writing deals into the target database, keyed by deal ID and guarded by DATE_MODIFY.

One row per deal; a write never replaces a row with older data: SQLite and PostgreSQL use
``ON CONFLICT ... DO UPDATE ... WHERE excluded.date_modify >= date_modify``, MySQL/MariaDB
(no WHERE there) assign every column through ``IF(newer, new, old)`` with ``date_modify``
assigned last. Amounts are exact decimals (text on SQLite, whose NUMERIC would turn them into
floats); dates are the portal's calendar day; ``date_modify`` is stored as naive UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
                conn.execute(self._upsert(), rows)
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
