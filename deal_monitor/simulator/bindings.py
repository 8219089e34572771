"""Event handler registrations: ``event.bind`` rows of apps and the admin's outgoing webhooks.

A row is unique per (owner, event, handler, user, connector); binding it again fails with
``ERROR_CORE`` "Unable to set event handler: Handler already binded" as in the rest module.
Offline rows have an empty handler.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import RestError

DEAL_EVENTS = ("ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE")
APP_EVENTS = frozenset({
    *DEAL_EVENTS, "ONCRMDEALMOVETOCATEGORY", "ONAPPINSTALL", "ONAPPUNINSTALL",
    "ONAPPUPDATE", "ONOFFLINEEVENT", "ONAPPTEST",
})
NO_OFFLINE = frozenset({"ONOFFLINEEVENT", "ONAPPINSTALL", "ONAPPUNINSTALL"})


@dataclass
class Binding:
    """One subscription row."""

    id: int
    event: str
    handler: str
    owner: str  # app client_id; "" for an outgoing webhook
    user_id: int = 0
    connector: str = ""
    application_token: str = ""  # outgoing webhooks carry their own token
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def offline(self) -> bool:
        return self.handler == ""

    @property
    def is_webhook(self) -> bool:
        return self.owner == ""


class BindingRegistry:
    """All subscription rows of the portal."""

    def __init__(self, first_id: int = 1) -> None:
        self._rows: list[Binding] = []
        self._next_id = first_id
        self._lock = threading.Lock()

    def add(self, event: str, handler: str, owner: str, *, user_id: int = 0, connector: str = "",
            application_token: str = "", options: dict[str, Any] | None = None) -> Binding:
        with self._lock:
            for row in self._rows:
                if (row.owner, row.event, row.handler, row.user_id, row.connector) == (
                        owner, event, handler, user_id, connector):
                    raise RestError(400, "ERROR_CORE",
                                    "Unable to set event handler: Handler already binded")
            row = Binding(self._next_id, event, handler, owner, user_id, connector,
                          application_token, dict(options or {}))
            self._next_id += 1
            self._rows.append(row)
            return row

    def remove(self, owner: str, event: str, handler: str, *, connector: str | None = None,
               user_id: int | None = None) -> int:
        with self._lock:
            keep, gone = [], 0
            for row in self._rows:
                hit = (row.owner == owner and row.event == event and row.handler == handler
                       and (connector is None or row.connector == connector)
                       and (user_id is None or row.user_id == user_id))
                if hit:
                    gone += 1
                else:
                    keep.append(row)
            self._rows = keep
            return gone

    def remove_owner(self, owner: str) -> None:
        with self._lock:
            self._rows = [r for r in self._rows if r.owner != owner]

    def of_owner(self, owner: str) -> list[Binding]:
        with self._lock:
            return [r for r in self._rows if r.owner == owner]

    def for_event(self, event: str) -> list[Binding]:
        with self._lock:
            return [r for r in self._rows if r.event == event]
