"""The deal's product rows in a child table, written in the deal's own transaction.

Production needs to know what was sold. Rows are keyed by the Bitrix24 product-row ID;
rows removed in Bitrix24 are removed from the table, so the table always mirrors the deal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from ..errors import TargetError
from ..mapping import ColumnSource, render_row
from ..mapping.check import check_product_mapping, errors_text
from .types import ExactDecimal

_DEFAULT_TYPES = {
    "product_id": Integer,
    "name": Text,
    "price": lambda: ExactDecimal(18, 2),
    "quantity": lambda: ExactDecimal(18, 4),
    "measure": Text,
    "discount": lambda: ExactDecimal(18, 2),
    "tax": lambda: ExactDecimal(9, 2),
}


def _default_table(name: str, columns: Mapping[str, ColumnSource], deal_column: str = "deal_id",
                   row_column: str = "row_id") -> Table:
    extra = []
    for column in columns:
        kind = _DEFAULT_TYPES.get(column, Text)
        extra.append(Column(column, kind() if callable(kind) else kind))
    return Table(
        name,
        MetaData(),
        Column(row_column, BigInteger, primary_key=True, autoincrement=False),
        Column(deal_column, BigInteger, nullable=False),
        *extra,
        Index(f"ix_{name}_deal", deal_column),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


class ProductWriter:
    """Keeps ``table`` equal to each written deal's product rows."""

    def __init__(self, engine: Engine, name: str, columns: Mapping[str, ColumnSource],
                 deal_column: str = "deal_id", row_column: str = "row_id") -> None:
        self.engine = engine
        self.name = name
        self.columns = columns
        self.deal_column = deal_column  # holds the deal's ID
        self.row_column = row_column  # holds the product row's ID: the key
        self.table: Table | None = None
        self.exists = True

    def prepare(self, create: bool = True) -> None:
        """Create the table with the default columns if missing; else check the columns.

        ``create=False`` (the dry run) creates nothing: a missing table reads as empty.
        """
        try:
            insp = inspect(self.engine)
            if not insp.has_table(self.name):
                table = _default_table(self.name, self.columns, self.deal_column, self.row_column)
                if create:
                    table.metadata.create_all(self.engine)
                self.exists = create
                self.table = table
                return
            self.table = Table(self.name, MetaData(), autoload_with=self.engine)
        except SQLAlchemyError as exc:
            from .target import classify_db_error

            raise classify_db_error(exc) from None
        from .shape import shapes_of

        present = {c.name for c in self.table.columns}
        keys = (self.deal_column, self.row_column)
        missing = [c for c in (*keys, *self.columns) if c not in present]
        if missing:
            raise TargetError(
                f"product table {self.name} lacks columns: {', '.join(missing)}",
                transient=False,
                hint="Add the columns, or change mapping.product_columns.",
            )
        refused = errors_text(check_product_mapping(self.columns, shapes_of(self.table), keys))
        if refused:
            raise TargetError(
                f"product table {self.name}: {refused}",
                transient=False,
                hint="Fix the mapping: map only columns the table has, with a fitting conversion.",
            )

    def render(self, deal_id: int, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [
            {self.row_column: int(row["ID"]), self.deal_column: deal_id,
             **render_row(self.columns, row)}
            for row in rows
            if str(row.get("ID", "")).isdigit()
        ]

    def current(self, conn, deal_id: int) -> list[dict[str, Any]]:
        assert self.table is not None
        if not self.exists:
            return []
        t = self.table
        rows = conn.execute(
            select(t).where(t.c[self.deal_column] == deal_id).order_by(t.c[self.row_column])
        )
        return [dict(r._mapping) for r in rows]

    def sync(self, conn, deal_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Make the table hold exactly ``rows`` for ``deal_id`` (inside the caller's transaction)."""
        assert self.table is not None
        t = self.table
        wanted = self.render(deal_id, rows)
        deal_key, row_key = t.c[self.deal_column], t.c[self.row_column]
        keep = [r[self.row_column] for r in wanted]
        stale = delete(t).where(deal_key == deal_id)
        if keep:
            stale = stale.where(row_key.not_in(keep))
        conn.execute(stale)
        for row in wanted:
            values = {k: v for k, v in row.items() if k != self.row_column}
            result = conn.execute(update(t).where(row_key == row[self.row_column]).values(**values))
            if not result.rowcount:
                conn.execute(t.insert().values(**row))
