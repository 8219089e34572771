"""Explicit type conversions from the REST API's strings to column values."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ..bitrix.deal import money, parse_datetime, portal_date
from ..store.engine import to_db_time

_BB_TAG = re.compile(r"\[/?[a-zA-Z*]+(?:=[^\]]*)?\]")


def to_text(value: Any) -> str | None:
    return None if value is None else str(value)


def to_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return int(Decimal(str(value)))


def to_decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else money(value)


def to_date(value: Any) -> date | None:
    """The portal's calendar day of a date or datetime field (no shift to UTC)."""
    return portal_date(value)


def to_datetime(value: Any) -> datetime | None:
    """A datetime field as naive UTC, like every timestamp in our tables."""
    parsed = parse_datetime(value)
    return to_db_time(parsed) if parsed else None


def to_bool(value: Any) -> bool | None:
    """Bitrix24's ``Y``/``N`` chars (and 1/0, true/false) to a boolean."""
    if value is None or value == "":
        return None
    return str(value).strip().upper() in ("Y", "1", "TRUE", "YES")


def plain_text(value: Any) -> str | None:
    """BB-code comments (``[B]...[/B]``, ``[URL=...]``) to plain text."""
    if value is None:
        return None
    text = _BB_TAG.sub("", str(value))
    return text.replace("&nbsp;", " ").strip()


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": to_text,
    "int": to_int,
    "decimal": to_decimal,
    "date": to_date,
    "datetime": to_datetime,
    "bool": to_bool,
    "plain": plain_text,
}
