"""Writing deals into a table the warehouse already has, through a column mapping.

The target table is read by reflection and every mapped column is checked before anything is
written. Rows are found by deal ID: through the table's own key column when it has one, else
through the app's link table ``<table>_link(bitrix_id, target_key)`` — never by a text prefix
(the seed's ``LIKE 'Сделка №1%'`` let deal 1 overwrite deals 10..19). ``deal_link`` also
keeps each deal's ``DATE_MODIFY``, so older data never overwrites newer even in tables that
have no such column.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from ..errors import TargetError
from ..mapping import Lookups, TableMapping, render_row
from ..mapping.check import ColumnShape, check_mapping, errors_text, value_problems
from ..model import Deal
from .engine import to_db_time, utcnow
from .products import ProductWriter
from .shape import shapes_of
from .target import (
    KeyedWriter,
    Preview,
    WriteResult,
    classify_db_error,
    diff_rows,
    sync_products,
)

log = logging.getLogger(__name__)

def link_table(target: str, metadata: MetaData) -> Table:
    """``<target>_link`` — for the seed's table ``deal`` that is ``deal_link``."""
    return Table(
        f"{target}_link",
        metadata,
        Column("bitrix_id", BigInteger, primary_key=True, autoincrement=False),
        Column("target_key", String(64), nullable=False),
        Column("date_modify", DateTime),
        Column("deleted", Boolean, nullable=False, default=False),
        Column("synced_at", DateTime, nullable=False),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


class MappedWriter(KeyedWriter):
    """Same interface as TargetWriter, for the seed-compatible and custom mappings."""

    def __init__(
        self,
        engine: Engine,
        mapping: TableMapping,
        lookups: Lookups | None = None,
        products: ProductWriter | None = None,
    ) -> None:
        super().__init__(engine)
        self.mapping = mapping
        self.lookups = lookups
        self.products = products
        self.link = link_table(mapping.table, MetaData())
        self.registry = self.link
        self.table: Table | None = None
        self._key: Column | None = None
        self.shapes: list[ColumnShape] = []

    @property
    def table_name(self) -> str:
        return self.mapping.table

    def prepare(self, create: bool = True) -> None:
        """Reflect the target table and refuse a mapping that cannot be written.

        ``create=False`` (the dry run) creates nothing: a missing link table reads as empty.
        """
        try:
            insp = inspect(self.engine)
            if not insp.has_table(self.mapping.table):
                raise TargetError(
                    f"target table {self.mapping.table} does not exist",
                    transient=False,
                    hint="Create the table, or pick the default preset, which creates its own.",
                )
            table = Table(self.mapping.table, MetaData(), autoload_with=self.engine)
            if create:
                self.link.metadata.create_all(self.engine)
            self.registry_exists = create or insp.has_table(self.link.name)
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None
        self.shapes = shapes_of(table)
        problems = check_mapping(self.mapping, self.shapes)
        for problem in problems:
            if not problem.error:
                log.warning("mapping into %s: %s", table.name, problem.text)
        refused = errors_text(problems)
        if refused:
            raise TargetError(
                f"target table {table.name}: {refused}",
                transient=False,
                hint="Fix the mapping: map only columns the table has, with a fitting conversion.",
            )
        columns = {c.name: c for c in table.columns}
        if self.mapping.key_column:
            self._key = columns[self.mapping.key_column]
        else:
            self._key = next(iter(table.primary_key.columns))
        self.table = table
        if self.products is not None:
            self.products.prepare(create)
        self.prepared = True

    # -- writes ----------------------------------------------------------------------------
    def render(self, deal: Deal) -> dict[str, Any]:
        return render_row(self.mapping.columns, deal.fields, self.lookups)

    def write(
        self, deals: Sequence[Deal], products: Mapping[int, Sequence[Mapping]] | None = None
    ) -> WriteResult:
        assert self.table is not None, "prepare() first"
        written, stale, created = set(), set(), set()
        now = utcnow()
        rendered = {deal.id: self.render(deal) for deal in deals}  # lookups before the transaction
        try:
            with self.writer.begin() as conn:
                for deal in deals:
                    outcome = self._write_one(conn, deal, rendered[deal.id], now)
                    if outcome == "stale":
                        stale.add(deal.id)
                        continue
                    written.add(deal.id)
                    if outcome == "created":
                        created.add(deal.id)
                sync_products(self.products, conn, written, products)
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None
        return WriteResult(frozenset(written), frozenset(stale), frozenset(created))

    def _link_of(self, conn, deal_id: int):
        query = select(self.link).where(self.link.c.bitrix_id == deal_id)
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        return conn.execute(query).first()

    def _write_one(self, conn, deal: Deal, values: dict[str, Any], now) -> str:
        table, key = self.table, self._key
        version = to_db_time(deal.date_modify)
        link = self._link_of(conn, deal.id)
        if link is not None and link.date_modify is not None and version < link.date_modify:
            return "stale"
        outcome = "updated"
        if self.mapping.key_column:
            target_key: Any = deal.id
            result = conn.execute(update(table).where(key == deal.id).values(**values))
            if not result.rowcount:
                conn.execute(table.insert().values(**{key.name: deal.id}, **values))
                outcome = "created"
        else:
            target_key = None
            if link is not None:
                target_key = link.target_key
                result = conn.execute(
                    update(table).where(key == self._key_value(target_key)).values(**values)
                )
                if not result.rowcount:
                    target_key = None  # someone deleted the row: write it again
            if target_key is None:
                inserted = conn.execute(table.insert().values(**values))
                target_key = inserted.inserted_primary_key[0]
                outcome = "created"
        link_values = {
            "target_key": str(target_key),
            "date_modify": version,
            "deleted": False,
            "synced_at": now,
        }
        if link is None:
            conn.execute(self.link.insert().values(bitrix_id=deal.id, **link_values))
        else:
            conn.execute(
                update(self.link).where(self.link.c.bitrix_id == deal.id).values(**link_values)
            )
        return outcome

    def _key_value(self, text: str) -> Any:
        python_type = None
        with contextlib.suppress(NotImplementedError):
            python_type = self._key.type.python_type
        return int(text) if python_type is int else text

    def preview(self, deal: Deal, products: Sequence[Mapping] | None = None) -> Preview:
        assert self.table is not None, "prepare() first"
        row = self.render(deal)
        try:
            with self.engine.connect() as conn:
                link = None
                if self.registry_exists:
                    link = conn.execute(
                        select(self.link).where(self.link.c.bitrix_id == deal.id)
                    ).first()
                current = None
                if self.mapping.key_column:
                    found = conn.execute(select(self.table).where(self._key == deal.id)).first()
                    current = dict(found._mapping) if found else None
                elif link is not None:
                    found = conn.execute(
                        select(self.table).where(self._key == self._key_value(link.target_key))
                    ).first()
                    current = dict(found._mapping) if found else None
                current_products = (
                    self.products.current(conn, deal.id) if self.products is not None else []
                )
        except SQLAlchemyError as exc:
            raise classify_db_error(exc) from None
        version = to_db_time(deal.date_modify)
        stale = bool(link is not None and link.date_modify and version < link.date_modify)
        return Preview(
            deal.id, self.table.name, row, current, diff_rows(current, row), stale,
            tuple(self.products.render(deal.id, products or []) if self.products else ()),
            tuple(current_products),
            tuple(value_problems(row, self.shapes)),
        )
