"""Reading a target table's columns (SQLAlchemy reflection) into ColumnShape rows. Read-only."""

from __future__ import annotations

import contextlib

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    inspect,
)
from sqlalchemy.exc import SQLAlchemyError

from ..mapping.check import ColumnShape
from .target import classify_db_error


def _kind(column: Column) -> str:
    kind = column.type
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, Integer):
        return "int"
    if isinstance(kind, Float):
        return "float"
    if isinstance(kind, Numeric):
        # SQLite reflects DECIMAL(10,0) and NUMERIC alike; scale 0 still holds whole numbers
        return "int" if getattr(kind, "scale", None) == 0 else "decimal"
    if isinstance(kind, DateTime):
        return "datetime"
    if isinstance(kind, Date):
        return "date"
    if isinstance(kind, String):
        return "text"
    return "other"


def shape_of(column: Column, single_primary: bool) -> ColumnShape:
    """A reflected column as the mapping check sees it."""
    type_name = str(column.type)
    with contextlib.suppress(Exception):
        type_name = column.type.compile()
    integer_key = single_primary and column.primary_key and isinstance(column.type, Integer)
    generated = column.identity is not None or (integer_key and column.autoincrement in (True, "auto"))
    length = getattr(column.type, "length", None) if isinstance(column.type, String) else None
    return ColumnShape(
        name=column.name,
        type_name=type_name,
        kind=_kind(column),
        nullable=bool(column.nullable) and not column.primary_key,
        has_default=column.server_default is not None,
        primary_key=bool(column.primary_key),
        generated=generated,
        length=length,
    )


def shapes_of(table: Table) -> list[ColumnShape]:
    single = len(table.primary_key.columns) == 1
    return [shape_of(c, single) for c in table.columns]


def read_columns(engine: Engine, table: str) -> list[ColumnShape] | None:
    """The table's columns in order, or None when the table does not exist."""
    try:
        if not inspect(engine).has_table(table):
            return None
        return shapes_of(Table(table, MetaData(), autoload_with=engine))
    except SQLAlchemyError as exc:
        raise classify_db_error(exc) from None
