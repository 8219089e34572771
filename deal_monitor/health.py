"""Per-component health: each part of the instance reports its own trouble and recovery.

One shared "last error" slot let a good worker pass wipe out a failing reconciliation (the
status flickered between "ok" and the error) and never heard of intake failures. Here each
component keeps its own state: only its own success clears its error, every failure is
counted, and a component that stopped for good makes the instance not ready.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# components whose failure means the instance cannot do its job (readiness 503)
CRITICAL = frozenset({"target", "state", "intake"})


@dataclass
class ComponentHealth:
    ok: bool = True
    stopped: bool = False  # a thread that ended and will not come back by itself
    last_error: str = ""
    last_error_at: datetime | None = None
    failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok and not self.stopped,
            "stopped": self.stopped,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "failures": self.failures,
        }


class HealthBoard:
    """Thread-safe component states (``failed``/``recovered``/``stopped``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, ComponentHealth] = {}
        self._order: list[str] = []  # failing components, most recent failure last

    def _part(self, name: str) -> ComponentHealth:
        part = self._parts.get(name)
        if part is None:
            part = self._parts[name] = ComponentHealth()
        return part

    def failed(self, name: str, error: str) -> None:
        with self._lock:
            part = self._part(name)
            part.ok = False
            part.failures += 1
            part.last_error = error[:500]
            part.last_error_at = datetime.now(UTC)
            if name in self._order:
                self._order.remove(name)
            self._order.append(name)

    def recovered(self, name: str) -> None:
        """``name`` worked: its own error (only its own) is cleared; the count stays."""
        with self._lock:
            part = self._parts.get(name)
            if part is None or (part.ok and not part.stopped):
                return
            part.ok = True
            part.stopped = False
            if name in self._order:
                self._order.remove(name)

    def stopped(self, name: str, error: str) -> None:
        """A thread ended for good: the instance is not ready until it is restarted."""
        self.failed(name, error)
        with self._lock:
            self._parts[name].stopped = True

    def reset(self, name: str) -> None:
        """Forget ``name`` (a thread started again, a component replaced)."""
        with self._lock:
            self._parts.pop(name, None)
            if name in self._order:
                self._order.remove(name)

    def failing(self) -> list[tuple[str, str]]:
        """(component, error) of every failing component, most recent failure last."""
        with self._lock:
            return [(n, self._parts[n].last_error) for n in self._order]

    def is_ok(self, name: str) -> bool:
        with self._lock:
            part = self._parts.get(name)
            return part is None or (part.ok and not part.stopped)

    def any_stopped(self) -> list[str]:
        with self._lock:
            return [n for n, p in self._parts.items() if p.stopped]

    def failures(self, name: str) -> int:
        with self._lock:
            part = self._parts.get(name)
            return part.failures if part else 0

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: part.as_dict() for name, part in sorted(self._parts.items())}

    def summary(self) -> str:
        """One line for the window's status: the failing components' errors, newest first
        (each error says what failed: "reconciliation: …", "target database: …")."""
        parts = self.failing()
        return "; ".join(error or name for name, error in reversed(parts))
