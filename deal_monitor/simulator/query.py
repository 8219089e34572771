"""List-method machinery: ``select`` masks, prefixed ``filter`` keys, ``order`` and paging.

Filter keys carry an operator prefix (``>=``, ``>``, ``<=``, ``<``, ``=``, ``!``/``!=``,
``@`` IN, ``!@`` NOT IN, ``%`` substring, ``=%``/``%=`` LIKE with explicit ``%``). Values are
compared by field type: numbers as numbers, datetimes in the portal offset (ISO with any
offset, ``YYYY-MM-DD`` or ``DD.MM.YYYY`` accepted), strings case-insensitively like MySQL's
default collation. A NULL never matches a comparison but does match ``!``/``!@``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timezone
from decimal import Decimal
from typing import Any

from .errors import RestError
from .formats import parse_user_datetime, to_decimal

PAGE_SIZE = 50
_PREFIX = re.compile(r"^(!@|!=|!%|>=|<=|=%|%=|>|<|=|!|@|%)?(.+)$")
_NUMERIC = "numeric"
_DATE = "date"
_TEXT = "text"

FieldKind = Callable[[str], str | None]  # field name -> numeric | date | text | None (unknown)


def list_error() -> RestError:
    return RestError(400, "", "Failed to get list. General error")


@dataclass(frozen=True)
class Condition:
    """One parsed filter entry."""

    field: str
    op: str
    values: tuple[Any, ...]
    kind: str
    empty: bool  # the filter value was "" / null: matches empty fields

    def test(self, row: Mapping[str, Any]) -> bool:
        raw = row.get(self.field)
        if isinstance(raw, list):  # multiple fields: any element
            return any(self.test({self.field: item}) for item in raw) if raw else self._test(None)
        return self._test(raw)

    def _test(self, raw: Any) -> bool:
        negative = self.op in {"!", "!@", "!%"}
        if self.empty:
            is_empty = raw in (None, "", "0") if self.kind == _NUMERIC else raw in (None, "")
            return not is_empty if negative else is_empty
        if raw is None:
            return negative
        value = _key(raw, self.kind)
        if value is None:
            return negative
        op = self.op
        if op in {"=", "@"}:
            return value in self.values
        if op in {"!", "!@"}:
            return value not in self.values
        target = self.values[0]
        if op == ">":
            return value > target
        if op == ">=":
            return value >= target
        if op == "<":
            return value < target
        if op == "<=":
            return value <= target
        if op in {"%", "=%", "%=", "!%"}:
            hit = bool(target.search(str(value)))
            return not hit if op == "!%" else hit
        return False


def _key(raw: Any, kind: str) -> Any:
    if kind == _NUMERIC:
        return to_decimal(raw)
    if kind == _DATE:
        return str(raw)[:19]
    return str(raw).casefold()


def _filter_value(value: Any, kind: str, tz: timezone) -> Any:
    if kind == _NUMERIC:
        number = to_decimal(value)
        if number is None:
            raise list_error()
        return number
    if kind == _DATE:
        moment = parse_user_datetime(value, tz)
        if moment is None:
            raise list_error()
        return moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")
    return str(value).casefold()


def _like(pattern: str, explicit: bool) -> re.Pattern[str]:
    if not explicit:
        return re.compile(re.escape(pattern.casefold()))
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern.casefold()]
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def parse_filter(raw: Any, kind_of: FieldKind, tz: timezone) -> list[Condition]:
    """Parse a ``filter`` parameter; unknown fields are ignored, as the portal does."""
    if raw in (None, "", []):
        return []
    if not isinstance(raw, Mapping):
        raise RestError(400, "", "Parameter 'filter' must be array.")
    conditions: list[Condition] = []
    for key, value in raw.items():
        match = _PREFIX.match(str(key))
        if not match:
            continue
        op = match.group(1) or "="
        op = "!" if op == "!=" else op
        field = match.group(2).upper()
        kind = kind_of(field)
        if kind is None:
            continue
        items = _as_values(value)
        if items is None:  # a scalar
            items = [value] if op in {"@", "!@"} else [value]
        elif op not in {"=", "!", "@", "!@"}:
            raise list_error()  # e.g. an unresolved batch reference left an array here
        if op in {"=", "!"} and len(items) == 1 and items[0] in (None, ""):
            conditions.append(Condition(field, op, (), kind, True))
            continue
        if op in {"%", "=%", "%=", "!%"}:
            explicit = op in {"=%", "%="}
            conditions.append(Condition(field, op, (_like(str(items[0]), explicit),), _TEXT, False))
            continue
        values = tuple(_filter_value(v, kind, tz) for v in items)
        conditions.append(Condition(field, op, values, kind, False))
    return conditions


def _as_values(value: Any) -> list[Any] | None:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return None


def parse_order(raw: Any, kind_of: FieldKind) -> list[tuple[str, bool, str]]:
    """``{FIELD: ASC|DESC}`` -> [(field, descending, kind)] for known fields."""
    if raw in (None, "", []):
        return []
    if not isinstance(raw, Mapping):
        raise RestError(400, "", "Parameter 'order' must be array.")
    result = []
    for field, direction in raw.items():
        kind = kind_of(str(field).upper())
        if kind is not None:
            result.append((str(field).upper(), str(direction).upper() == "DESC", kind))
    return result


def sort_rows(rows: list[Mapping[str, Any]], order: list[tuple[str, bool, str]]) -> None:
    """Stable multi-key sort; NULLs first ascending, last descending (MySQL)."""
    for field, descending, kind in reversed(order):
        rows.sort(key=lambda row, f=field, k=kind: _sort_key(row.get(f), k), reverse=descending)


def _sort_key(raw: Any, kind: str) -> tuple[int, Any]:
    if raw is None:
        return (0, Decimal(0) if kind == _NUMERIC else "")
    value = _key(raw, kind)
    if value is None:
        return (0, Decimal(0) if kind == _NUMERIC else "")
    return (1, value)


@dataclass
class Page:
    """One page of a list method: rows plus ``total``/``next`` as the server sets them."""

    rows: list[Mapping[str, Any]]
    total: int | None  # None: not counted (start=-1)
    next: int | None


def paginate(candidates: Iterable[Mapping[str, Any]], conditions: list[Condition],
             order: list[tuple[str, bool, str]], start: int, presorted: bool) -> Page:
    """Apply filter, order and the fixed page size of 50.

    ``start`` is rounded down to a page boundary (``intdiv(start, 50)``) like the server's
    navigation; ``start=-1`` selects the first 50 matches without counting.
    """
    matching = (row for row in candidates if all(c.test(row) for c in conditions))
    if start < 0:
        if presorted:
            rows = []
            for row in matching:
                rows.append(row)
                if len(rows) == PAGE_SIZE:
                    break
            return Page(rows, None, None)
        everything = list(matching)
        sort_rows(everything, order)
        return Page(everything[:PAGE_SIZE], None, None)
    offset = (start // PAGE_SIZE) * PAGE_SIZE
    everything = list(matching)
    if not presorted:
        sort_rows(everything, order)
    rows = everything[offset:offset + PAGE_SIZE]
    total = len(everything)
    has_next = offset + PAGE_SIZE < total
    return Page(rows, total, offset + PAGE_SIZE if has_next else None)


def kind_for_type(ftype: str | None, numeric: frozenset[str], dates: frozenset[str]) -> str | None:
    if ftype is None:
        return None
    if ftype in numeric:
        return _NUMERIC
    if ftype in dates:
        return _DATE
    return _TEXT
