"""Counters the tests and benchmarks read: requests, calls per method, refusals, refreshes."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    """Thread-safe request accounting (``sim.stats``); ``reset()`` zeroes everything.

    ``http_requests`` counts every HTTP request on ``/rest/...`` (refused ones too);
    ``calls_by_method`` counts method calls that passed the bucket and authorization (each
    inner ``batch`` command under its own method, plus one ``batch``), including calls then
    refused by the operating limit. ``in_flight`` is the number of ``/rest`` requests being
    served right now, ``max_in_flight`` the most served at once since the last reset.
    """

    http_requests: int = 0
    calls_by_method: Counter[str] = field(default_factory=Counter)
    refusals_503: int = 0
    refusals_429: int = 0
    batch_requests: int = 0
    token_refreshes: int = 0
    faults_injected: int = 0
    answers_held: int = 0  # answers made, then held back by a ``lag`` fault
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def request_started(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def request_ended(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def count_call(self, method: str) -> None:
        with self._lock:
            self.calls_by_method[method] += 1

    def reset(self) -> None:
        with self._lock:
            self.http_requests = 0
            self.calls_by_method = Counter()
            self.refusals_503 = 0
            self.refusals_429 = 0
            self.batch_requests = 0
            self.token_refreshes = 0
            self.faults_injected = 0
            self.answers_held = 0
            self.max_in_flight = self.in_flight  # requests being served still count
