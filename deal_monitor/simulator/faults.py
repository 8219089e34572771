"""Switchable faults for the REST surface: forced errors, dropped connections, stalls, lag.

Rules are consumed in the order they were added; each applies to the next ``count`` REST
HTTP requests (optionally only those for one method; for ``batch`` the method is ``batch``;
``method="oauth.token"`` targets the OAuth token endpoint instead, e.g. to answer a refresh
with ``{"error": "PAYMENT_REQUIRED"}``).
``hide_new_deals_reads = N`` makes every newly added deal answer "Not found" to the next N
``crm.deal.get`` reads of it (read-after-write lag seen on busy portals).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class FaultRule:
    """One pending fault."""

    kind: str  # fail | drop | stall | lag | truncate
    remaining: int
    method: str | None = None
    status: int = 503
    body: bytes | str | dict | None = None
    html: bool = False
    seconds: float = 0.0

    def matches(self, method: str, explicit: bool = False) -> bool:
        if self.remaining <= 0:
            return False
        if explicit:
            return self.method == method
        return self.method is None or self.method == method.lower()


class Faults:
    """Fault switchboard (``sim.faults``)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self.hide_new_deals_reads = 0

    def fail_next(self, count: int, status: int = 503, body: bytes | str | dict | None = None,
                  method: str | None = None, html: bool = False) -> None:
        """The next ``count`` requests get ``status`` with ``body`` (default: the real body)."""
        self._add(FaultRule("fail", count, _norm(method), status=status, body=body, html=html))

    def drop_next(self, count: int, method: str | None = None) -> None:
        """The next ``count`` requests are read, then the connection is closed unanswered."""
        self._add(FaultRule("drop", count, _norm(method)))

    def stall_next(self, count: int, seconds: float, method: str | None = None) -> None:
        """The next ``count`` requests wait ``seconds`` before being served normally."""
        self._add(FaultRule("stall", count, _norm(method), seconds=seconds))

    def lag_next(self, count: int, seconds: float, method: str | None = None) -> None:
        """The next ``count`` requests are answered at once but the answer is held back
        ``seconds``: it shows the portal as it was when asked, arriving late (a slow link or
        a busy front end). ``sim.stats.answers_held`` counts answers made and held."""
        self._add(FaultRule("lag", count, _norm(method), seconds=seconds))

    def truncate_next(self, count: int, method: str | None = None) -> None:
        """The next ``count`` responses send headers and half the body, then close."""
        self._add(FaultRule("truncate", count, _norm(method)))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.hide_new_deals_reads = 0

    def take(self, method: str, explicit: bool = False) -> FaultRule | None:
        """Consume and return the first rule matching this request, if any.

        ``explicit`` requests (the OAuth token endpoint, ``oauth.token``) only match rules
        naming them, so a catch-all REST fault never hits the token endpoint.
        """
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, explicit):
                    rule.remaining -= 1
                    taken = FaultRule(rule.kind, 1, rule.method, rule.status, rule.body,
                                      rule.html, rule.seconds)
                    self._rules = [r for r in self._rules if r.remaining > 0]
                    return taken
            return None

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(r.remaining for r in self._rules)

    def _add(self, rule: FaultRule) -> None:
        if rule.remaining < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            if rule.remaining:
                self._rules.append(rule)


def _norm(method: str | None) -> str | None:
    if method is None:
        return None
    name = method.lower()
    return name[:-5] if name.endswith(".json") else name
