"""The tests' own oracle: what the target must hold, and what it does hold.

Expected values are computed here from the portal's raw JSON (the strings ``crm.deal.get``
returns), never by the app's parser; target rows are read with plain SQL on a reflected table
through a fresh SQLAlchemy engine, never through the app's writer or its column types. Only
the conventions are shared with the app, and they are written down here on purpose:

- money (``OPPORTUNITY``) is a string decimal and must arrive exactly, every digit;
- a date field (``CLOSEDATE``) is the calendar day the portal shows, never the UTC date of the
  written instant (``2024-09-09T00:00:00+03:00`` is 9 September even though it is the 8th in
  UTC; ``2027-01-14T19:00:00-05:00`` is 15 January: see ``portal_day``);
- a datetime (``DATE_MODIFY``) is stored as naive UTC;
- a deleted deal keeps its row with ``deleted`` true (or has no row).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, func, inspect, select

_STAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:(Z)|([+-])(\d{2}):?(\d{2}))$"
)
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:$|[T ])")
_CLOCK = re.compile(r"T(\d{2}):(\d{2}):\d{2}([+-])(\d{2}):(\d{2})$")
_MONEY = re.compile(r"^-?\d+(?:\.\d+)?$")

DEAL_COLUMNS = ("title", "stage_id", "category_id", "amount", "currency_id", "close_date",
                "comments", "date_modify", "deleted")


# -- the portal's raw values -> what the target must hold ------------------------------------------
def portal_day(value: Any) -> date | None:
    """The calendar day a portal date field names.

    The portal renders a day as a datetime within half a day of that day's UTC midnight: local
    midnight in its offset (``2024-09-09T00:00:00+03:00``) or UTC midnight shown in the current
    offset (``2024-09-09T02:00:00+02:00``; ``2027-01-14T19:00:00-05:00`` is 15 January). Worked
    out here by hand: minutes from the written midnight, minus the offset, rounded to days.
    """
    if not value:
        return None
    match = _DAY.match(str(value))
    if not match:
        raise AssertionError(f"the portal sent a date the oracle cannot read: {value!r}")
    year, month, day = (int(part) for part in match.groups())
    written = date(year, month, day)
    clock = _CLOCK.search(str(value))
    if clock is None:
        return written
    hours, minutes, sign, off_h, off_m = clock.groups()
    offset = (1 if sign == "+" else -1) * (int(off_h) * 60 + int(off_m))
    utc_minutes = int(hours) * 60 + int(minutes) - offset  # from the written midnight, in UTC
    return date.fromordinal(written.toordinal() + round(utc_minutes / 1440))


def portal_money(value: Any) -> Decimal:
    """A portal money string (``"1000000.10"``) as an exact decimal; empty is zero."""
    if value is None or value == "":
        return Decimal(0)
    text = str(value)
    if not _MONEY.match(text):
        raise AssertionError(f"the portal sent money the oracle cannot read: {value!r}")
    return Decimal(text)


def portal_instant_utc(value: Any) -> datetime:
    """``2024-08-30T14:29:00+02:00`` -> naive UTC ``2024-08-30 12:29:00`` (the column convention)."""
    match = _STAMP.match(str(value))
    if not match:
        raise AssertionError(f"the portal sent a datetime the oracle cannot read: {value!r}")
    year, month, day, hour, minute, second, zulu, sign, off_h, off_m = match.groups()
    local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    if zulu:
        return local
    offset = timedelta(hours=int(off_h), minutes=int(off_m))
    return local - offset if sign == "+" else local + offset


def expected_row(portal_deal: Mapping[str, Any]) -> dict[str, Any]:
    """The default target row for a deal as the portal returns it (raw JSON strings)."""
    return {
        "title": portal_deal.get("TITLE") or "",
        "stage_id": portal_deal.get("STAGE_ID") or "",
        "category_id": int(portal_deal.get("CATEGORY_ID") or 0),
        "amount": portal_money(portal_deal.get("OPPORTUNITY")),
        "currency_id": portal_deal.get("CURRENCY_ID") or "",
        "close_date": portal_day(portal_deal.get("CLOSEDATE")),
        "comments": portal_deal.get("COMMENTS") or "",
        "date_modify": portal_instant_utc(portal_deal["DATE_MODIFY"]),
        "deleted": False,
    }


# -- database values -> comparable Python values ------------------------------------------------------
def as_decimal(value: Any) -> Decimal | None:
    """NUMERIC (PostgreSQL, MariaDB) or text (SQLite) -> Decimal."""
    return None if value is None else Decimal(str(value))


def as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    return date.fromisoformat(str(value)[:10])


def as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def comparable(row: Mapping[str, Any]) -> dict[str, Any]:
    """The default columns of a stored row in the types :func:`expected_row` uses."""
    return {
        "title": row.get("title"),
        "stage_id": row.get("stage_id"),
        "category_id": None if row.get("category_id") is None else int(row["category_id"]),
        "amount": as_decimal(row.get("amount")),
        "currency_id": row.get("currency_id"),
        "close_date": as_date(row.get("close_date")),
        "comments": row.get("comments"),
        "date_modify": as_datetime(row.get("date_modify")),
        "deleted": bool(row.get("deleted")),
    }


# -- reading the target with plain SQL ----------------------------------------------------------------
def read_table(url: str, table: str = "deal", key: str = "bitrix_id") -> dict[Any, dict[str, Any]]:
    """Every row of ``table`` by ``key`` as the driver returns it ({} when there is no table)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(table):
                return {}
            reflected = Table(table, MetaData(), autoload_with=conn)
            return {r._mapping[key]: dict(r._mapping) for r in conn.execute(select(reflected))}
    finally:
        engine.dispose()


def target_table(url: str, table: str = "deal") -> dict[int, dict[str, Any]]:
    """Rows of a default target table by deal ID."""
    return read_table(url, table)


def live_ids(url: str, table: str = "deal") -> set[int]:
    """Deal IDs with a row not flagged deleted."""
    return {deal_id for deal_id, row in read_table(url, table).items() if not row["deleted"]}


def duplicate_ids(url: str, table: str = "deal") -> list[int]:
    """Deal IDs with more than one row (the key must make this impossible)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            reflected = Table(table, MetaData(), autoload_with=conn)
            key = reflected.c.bitrix_id
            return [r[0] for r in conn.execute(select(key).group_by(key).having(func.count() > 1))]
    finally:
        engine.dispose()


# -- comparing ----------------------------------------------------------------------------------------
def row_matches(row: Mapping[str, Any] | None, portal_deal: Mapping[str, Any]) -> bool:
    return row is not None and comparable(row) == expected_row(portal_deal)


def mismatches(rows: Mapping[int, Mapping[str, Any]], sim, ever_created: set[int]) -> dict[int, str]:
    """Deals whose target row differs from the portal (live: equal; deleted: absent/flagged)."""
    bad: dict[int, str] = {}
    for deal_id in ever_created:
        portal_deal = sim.portal.get_deal(deal_id)
        row = rows.get(deal_id)
        if portal_deal is None:
            if row is not None and not row["deleted"]:
                bad[deal_id] = "deleted in the portal, live in the target"
        elif not row_matches(row, portal_deal):
            got = comparable(row) if row else None
            bad[deal_id] = f"target {got} != portal {expected_row(portal_deal)}"
    for deal_id in set(rows) - ever_created:
        bad[deal_id] = "in the target but never created in the portal"
    return bad


def converge(read_rows: Callable[[], Mapping[int, Mapping[str, Any]]], sim,
             ever_created: set[int], timeout: float = 30.0) -> dict[int, Mapping[str, Any]]:
    """Wait until the target equals the portal for every deal ever created; return the rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = read_rows()
        bad = mismatches(rows, sim, ever_created)
        if not bad:
            return dict(rows)
        if time.monotonic() > deadline:
            sample = dict(list(bad.items())[:5])
            raise AssertionError(f"{len(bad)} deal(s) not converged, e.g. {sample}")
        time.sleep(0.2)


def monitor_target(monitor) -> tuple[str, str]:
    """(URL, table) of a running monitor's target, from its settings (not its writer)."""
    return monitor.where.target_url, monitor.settings.target.table
