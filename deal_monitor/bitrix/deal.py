"""Turning a deal as the REST API returns it (strings everywhere) into typed values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from ..model import Deal


class DealFormatError(ValueError):
    """The portal returned a deal we cannot read (missing ID or DATE_MODIFY)."""


def parse_datetime(value: Any) -> datetime | None:
    """``2024-08-30T14:29:00+02:00`` -> aware datetime; empty -> None."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed


def portal_date(value: Any) -> date | None:
    """The calendar day the portal shows for a date field.

    Bitrix24 keeps a date field as a day and renders it with ``CRestUtil::ConvertDate``: the
    portal's local midnight plus its *current* UTC offset, shown in the offset of that instant
    (the docs' ``2024-09-09T02:00:00+02:00``; a New York portal sends 15 January as
    ``2027-01-14T19:00:00-05:00``, and 15 July, asked in winter, one DST hour off UTC
    midnight). That instant lies within an hour of the UTC midnight that starts the day: such
    a value is that UTC day. Anything else — local midnight (``2024-09-09T00:00:00+03:00``), or a real datetime
    mapped to a date column — is the date as written; converting it to UTC would move it.
    """
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None and moment.utcoffset():
        utc = moment.astimezone(UTC)
        nearest = (utc + timedelta(hours=12)).replace(hour=0, minute=0, second=0, microsecond=0)
        if abs(utc - nearest) <= timedelta(hours=1):
            return nearest.date()
    return moment.date()


def money(value: Any) -> Decimal:
    """``"1000000.00"`` -> Decimal exactly; junk or empty -> 0."""
    if value is None or value == "":
        return Decimal("0")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return Decimal("0")
    return result if result.is_finite() else Decimal("0")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def parse_deal(raw: Mapping[str, Any]) -> Deal:
    """Normalise a ``crm.deal.get``/``crm.deal.list`` row."""
    deal_id = _int(raw.get("ID"), -1)
    if deal_id <= 0:
        raise DealFormatError("deal without a valid ID")
    modified = parse_datetime(raw.get("DATE_MODIFY"))
    if modified is None:
        raise DealFormatError(f"deal {deal_id} has no DATE_MODIFY")
    return Deal(
        id=deal_id,
        title=str(raw.get("TITLE") or ""),
        stage_id=str(raw.get("STAGE_ID") or ""),
        category_id=_int(raw.get("CATEGORY_ID")),
        amount=money(raw.get("OPPORTUNITY")),
        currency_id=str(raw.get("CURRENCY_ID") or ""),
        close_date=portal_date(raw.get("CLOSEDATE")),
        comments=str(raw.get("COMMENTS") or ""),
        date_modify=modified,
        fields=MappingProxyType(dict(raw)),
    )
