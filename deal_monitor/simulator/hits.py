"""Who changes the portal ("actor") and the unit of one server hit.

Bitrix24 buffers events raised during one PHP request and sends identical ones once
(``Buffer::addEvent``), so all changes made by one REST call, one ``batch`` or one Python API
call form one :class:`Hit` whose events are deduplicated before dispatch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Actor:
    """The authenticated party of a hit.

    ``kind`` is ``user`` (the portal UI / Python API), ``webhook`` (an inbound webhook),
    ``app`` (OAuth) or ``robot`` (automation: no user, so events carry no tokens).
    """

    kind: str
    user_id: int
    client_id: str = ""
    connector: str = ""
    auth_key: str = ""

    @classmethod
    def ui(cls, user_id: int = 1) -> Actor:
        return cls("user", user_id, auth_key=f"user:{user_id}")

    @classmethod
    def robot(cls) -> Actor:
        return cls("robot", 0, auth_key="robot")


@dataclass
class Hit:
    """Events raised while serving one request, deduplicated in order."""

    actor: Actor
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, event: str, data: dict[str, Any]) -> None:
        item = (event, data)
        if item not in self.events:
            self.events.append(item)


class HitScope:
    """Thread-local current hit; nested scopes join the outer hit."""

    def __init__(self, on_end: Callable[[Hit], None]) -> None:
        self._local = threading.local()
        self._on_end = on_end

    def current(self) -> Hit | None:
        return getattr(self._local, "hit", None)

    @contextmanager
    def open(self, actor: Actor) -> Iterator[Hit]:
        outer = self.current()
        if outer is not None:
            yield outer
            return
        hit = Hit(actor)
        self._local.hit = hit
        try:
            yield hit
        finally:
            self._local.hit = None
            if hit.events:
                self._on_end(hit)
