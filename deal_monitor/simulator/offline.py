"""The offline event queue (``b_rest_event_offline``) with the rest module's semantics.

* one row per (MESSAGE_ID, app, connector, PROCESS_ID): a new change of a deal updates the
  unreserved row (``TIMESTAMP_X``, data) instead of adding one; ``MESSAGE_ID`` is
  ``md5(EVENT_NAME + "|" + json(EVENT_DATA))``, so ADD and UPDATE of a deal are two rows;
* ``mark`` reserves matching unreserved rows under a fresh 32-char process id; a change
  made after that lands in a new unreserved row;
* ``mark_error`` turns reserved rows into unreserved ``ERROR=1`` rows and drops their
  other copies; ``clear`` deletes reserved rows.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import query
from .formats import format_datetime

_ALPHABET = string.ascii_lowercase + string.digits
_KINDS = {"ID": "numeric", "ERROR": "numeric", "TIMESTAMP_X": "date", "EVENT_NAME": "text",
          "MESSAGE_ID": "text", "PROCESS_ID": "text"}
GET_FIELDS = frozenset({"ID", "TIMESTAMP_X", "EVENT_NAME", "MESSAGE_ID"})


def message_id(event: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return hashlib.md5(f"{event}|{payload}".encode()).hexdigest()


def new_process_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


@dataclass
class OfflineRow:
    """One queued offline event."""

    id: int
    timestamp: datetime
    event_name: str
    event_data: dict[str, Any]
    additional: dict[str, Any]
    message_id: str
    app: str
    connector: str
    process_id: str = ""
    error: int = 0

    def view(self, tz: timezone) -> dict[str, Any]:
        return {
            "ID": str(self.id),
            "TIMESTAMP_X": format_datetime(self.timestamp, tz),
            "EVENT_NAME": self.event_name,
            "EVENT_DATA": self.event_data,
            "EVENT_ADDITIONAL": self.additional,
            "MESSAGE_ID": self.message_id,
            "PROCESS_ID": self.process_id,
            "ERROR": str(self.error),
        }


def _kind(field: str) -> str | None:
    return _KINDS.get(field)


class OfflineQueue:
    """Offline rows of all apps."""

    def __init__(self, tz: timezone) -> None:
        self._tz = tz
        # the plan's rest_offline_extended feature: without it clear=0 is a LicenseException
        self.extended = True
        self._rows: list[OfflineRow] = []
        self._next_id = 1
        self._lock = threading.Lock()

    def call_event(self, app: str, connector: str, event: str, data: dict[str, Any],
                   additional: dict[str, Any], now: datetime) -> None:
        mid = message_id(event, data)
        with self._lock:
            for row in self._rows:
                if (row.message_id, row.app, row.connector, row.process_id) == (mid, app, connector, ""):
                    row.timestamp, row.event_data, row.additional = now, data, additional
                    return
            self._rows.append(OfflineRow(self._next_id, now, event, data, additional, mid, app,
                                         connector))
            self._next_id += 1

    def _select(self, rows: list[OfflineRow], raw_filter: Any, raw_order: Any, allowed: frozenset[str],
                default_order: dict[str, str]) -> list[OfflineRow]:
        kind_of = lambda f: _kind(f) if f in allowed else None  # noqa: E731
        conditions = query.parse_filter(raw_filter, kind_of, self._tz)
        order = query.parse_order(raw_order or default_order, kind_of)
        views = [(row.view(self._tz), row) for row in rows]
        chosen = [(v, r) for v, r in views if all(c.test(v) for c in conditions)]
        by_view = {id(v): r for v, r in chosen}
        only_views = [v for v, _ in chosen]
        query.sort_rows(only_views, order)
        return [by_view[id(v)] for v in only_views]

    def mark(self, app: str, connector: str, error: int, raw_filter: Any, raw_order: Any,
             limit: int) -> str:
        """Reserve up to ``limit`` unreserved rows under a new process id and return it."""
        process_id = new_process_id()
        with self._lock:
            pool = [r for r in self._rows if r.app == app and r.connector == connector
                    and r.error == error and r.process_id == ""]
            for row in self._select(pool, raw_filter, raw_order, GET_FIELDS,
                                    {"TIMESTAMP_X": "ASC"})[:limit]:
                row.process_id = process_id
        return process_id

    def reserved(self, app: str, connector: str, process_id: str, error: int, raw_filter: Any,
                 raw_order: Any, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            pool = [r for r in self._rows if r.app == app and r.connector == connector
                    and r.error == error and r.process_id == process_id]
            chosen = self._select(pool, raw_filter, raw_order, GET_FIELDS, {"TIMESTAMP_X": "ASC"})
            return [self._get_view(r) for r in chosen[:limit]]

    def _get_view(self, row: OfflineRow) -> dict[str, Any]:
        view = row.view(self._tz)
        del view["PROCESS_ID"], view["ERROR"]
        return view

    def clear(self, app: str, connector: str, process_id: str, ids: list[int] | None = None,
              message_ids: list[str] | None = None) -> None:
        with self._lock:
            def doomed(r: OfflineRow) -> bool:
                if (r.app, r.connector, r.process_id) != (app, connector, process_id):
                    return False
                if ids is not None and r.id not in ids:
                    return False
                return message_ids is None or r.message_id in message_ids
            self._rows = [r for r in self._rows if not doomed(r)]

    def mark_error(self, app: str, connector: str, process_id: str, message_ids: list[str]) -> None:
        with self._lock:
            same = [r for r in self._rows if r.app == app and r.connector == connector
                    and r.message_id in message_ids and r.error == 0]
            drop = {id(r) for r in same if r.process_id != process_id}
            self._rows = [r for r in self._rows if id(r) not in drop]
            for row in same:
                if id(row) not in drop:
                    row.error, row.process_id = 1, ""
            # keep one unreserved error row per message id (the unique key)
            seen: set[str] = set()
            kept = []
            for row in reversed(self._rows):
                key = row.message_id + "|" + row.app + "|" + row.connector
                if row.error and row.process_id == "" and key in seen:
                    continue
                if row.error and row.process_id == "":
                    seen.add(key)
                kept.append(row)
            self._rows = list(reversed(kept))

    def list(self, app: str, connector: str, raw_filter: Any, raw_order: Any) -> list[dict[str, Any]]:
        with self._lock:
            pool = [r for r in self._rows if r.app == app and r.connector == connector]
            allowed = frozenset(_KINDS)
            return [r.view(self._tz) for r in self._select(pool, raw_filter, raw_order, allowed,
                                                           {"ID": "ASC"})]

    def list_rows(self) -> list[dict[str, Any]]:
        """Every row of every app (for tests: what is still queued or reserved)."""
        with self._lock:
            return [{**r.view(self._tz), "APP_ID": r.app, "CONNECTOR_ID": r.connector}
                    for r in self._rows]

    def drop_app(self, app: str) -> None:
        with self._lock:
            self._rows = [r for r in self._rows if r.app != app]

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)
