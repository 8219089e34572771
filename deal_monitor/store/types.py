"""Column types shared by the target tables."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Numeric, String, TypeDecorator


class ExactDecimal(TypeDecorator):
    """NUMERIC(p, s) where the database has exact decimals; text on SQLite.

    SQLite's NUMERIC affinity would store money as a float; as text the value keeps every
    digit and ``CAST``/``SUM`` still work on it.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2) -> None:
        super().__init__(precision, scale)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(str(value))
