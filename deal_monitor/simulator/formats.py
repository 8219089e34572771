"""Value formats of the Bitrix24 REST wire: datetimes, money, PHP-style JSON and coercions.

Bitrix24 renders datetimes as ``YYYY-MM-DDThh:mm:ss+03:00`` in the portal's offset (PHP
``date('c')``, no fractions), numbers and IDs as strings, money with two decimals, and encodes
JSON like PHP's ``json_encode`` with unescaped Unicode: slashes come out as ``\\/`` and an
array whose keys are exactly ``0..n-1`` becomes a JSON list (an empty array is ``[]``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_RU = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?$")
_CENT = Decimal("0.01")


def parse_offset(text: str) -> timezone:
    """``"+03:00"`` -> a fixed :class:`timezone`."""
    match = _OFFSET.match(text.strip())
    if not match:
        raise ValueError(f"bad UTC offset {text!r}; expected e.g. '+03:00'")
    sign = -1 if match.group(1) == "-" else 1
    delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    return timezone(sign * delta)


def format_datetime(moment: datetime, tz: timezone) -> str:
    """Render like PHP ``date('c')`` in the portal offset: no fractions, ``+03:00`` suffix."""
    local = moment.astimezone(tz).replace(microsecond=0)
    return local.isoformat()


def format_date(day: date, tz: timezone) -> str:
    """A ``date`` field as Bitrix24 returns it: midnight of that day in the portal offset."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).isoformat()


def parse_user_datetime(value: Any, tz: timezone) -> datetime | None:
    """Read a datetime the way the portal accepts it in filters and fields.

    Accepts ISO 8601 with or without an offset (no offset = portal time), ``YYYY-MM-DD``
    (midnight, portal time), the Russian site format ``DD.MM.YYYY[ hh:mm[:ss]]``, and aware
    or naive :class:`datetime` / :class:`date` objects. Returns None when unreadable.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz)
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = _ISO.match(text)
    if match:
        year, month, day, hour, minute, second, offset = match.groups()
        zone = tz
        if offset:
            zone = UTC if offset == "Z" else parse_offset(offset)
        try:
            return datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                int(second or 0), tzinfo=zone,
            )
        except ValueError:
            return None
    match = _RU.match(text)
    if match:
        day, month, year, hour, minute, second = match.groups()
        try:
            return datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                int(second or 0), tzinfo=tz,
            )
        except ValueError:
            return None
    return None


def to_decimal(value: Any) -> Decimal | None:
    """Number-ish input (``1000``, ``"1000.5"``, ``"1 000,50"``) -> Decimal, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value).strip().replace(" ", "").replace(",", ".")
    if not text:
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def format_money(value: Any) -> str:
    """``1000000`` -> ``"1000000.00"`` (as ``OPPORTUNITY`` and ``TAX_VALUE`` are returned)."""
    number = to_decimal(value) or Decimal(0)
    return str(number.quantize(_CENT, rounding=ROUND_HALF_UP))


def to_int(value: Any) -> int | None:
    """PHP-ish ``intval`` for ids: ``"12"`` -> 12; anything non-numeric -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return None


def json_number(value: Decimal | float | int) -> int | float:
    """PHP-like number for JSON: integral values as ints (``100``), others as floats."""
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def as_php_array(value: Mapping[str, Any]) -> dict[str, Any] | list[Any]:
    """Return what PHP's ``json_encode`` makes of an array with these keys.

    Keys exactly ``"0".."n-1"`` in order (or no keys at all) give a list; anything else an object.
    """
    keys = list(value.keys())
    if all(str(key) == str(index) for index, key in enumerate(keys)):
        return list(value.values())
    return dict(value)


def php_json(payload: Any) -> bytes:
    """Encode as Bitrix24 does: UTF-8, unescaped Unicode, escaped slashes."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_default)
    return text.replace("/", "\\/").encode("utf-8")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return json_number(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
