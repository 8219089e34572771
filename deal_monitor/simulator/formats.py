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
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

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


class PortalZone(tzinfo):
    """A portal time zone (fixed offset or IANA name) whose date fields render like PHP.

    Behaves as the wrapped zone for every datetime operation; :func:`format_date` sees
    ``php_dates`` and renders as ``CRestUtil::ConvertDate`` (see :mod:`.profile`).
    """

    php_dates = True

    def __init__(self, zone: tzinfo, name: str) -> None:
        self.zone = zone
        self.name = name

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return self.zone.utcoffset(None if dt is None else dt.replace(tzinfo=self.zone))

    def dst(self, dt: datetime | None) -> timedelta | None:
        return self.zone.dst(None if dt is None else dt.replace(tzinfo=self.zone))

    def tzname(self, dt: datetime | None) -> str | None:
        return self.zone.tzname(None if dt is None else dt.replace(tzinfo=self.zone))

    def fromutc(self, dt: datetime) -> datetime:
        return self.zone.fromutc(dt.replace(tzinfo=self.zone)).replace(tzinfo=self)

    def __repr__(self) -> str:
        return f"PortalZone({self.name!r})"


def portal_zone(text: str, *, php_dates: bool = False) -> tzinfo:
    """``"+03:00"`` or an IANA name (``"America/New_York"``) -> the portal's time zone."""
    zone: tzinfo = parse_offset(text) if _OFFSET.match(text.strip()) else ZoneInfo(text)
    return PortalZone(zone, text) if php_dates else zone


def format_datetime(moment: datetime, tz: tzinfo) -> str:
    """Render like PHP ``date('c')`` in the portal offset: no fractions, ``+03:00`` suffix."""
    local = moment.astimezone(tz).replace(microsecond=0)
    return local.isoformat()


def format_date(day: date, tz: tzinfo, now: datetime | None = None) -> str:
    """A ``date`` field as Bitrix24 returns it.

    Default: midnight of that day in the portal offset. A :class:`PortalZone` renders like
    ``date('c', MakeTimeStamp($dt, FORMAT_DATE) + date("Z"))``: local midnight plus the
    offset in force ``now``, shown in the offset of the resulting instant.
    """
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    if not getattr(tz, "php_dates", False):
        return midnight.isoformat()
    current = (now or datetime.now(UTC)).astimezone(tz).utcoffset() or timedelta(0)
    instant = datetime.fromtimestamp(midnight.timestamp() + current.total_seconds(), tz)
    return instant.isoformat()


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
