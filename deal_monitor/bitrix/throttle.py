"""Client-side pacing that keeps the portal from having to refuse us.

``LeakyBucket`` mirrors the portal's request bucket (each HTTP request +1, drains ``rate``
per second, refuses above ``burst``) and makes callers wait *before* they would overflow it.
``OperatingBudget`` tracks each method's ``time.operating`` (summed server seconds over ten
minutes) and holds a method back before the portal blocks it with 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Cancelled(Exception):
    """A wait was cut short because the owner is stopping."""


def wait_or_cancel(seconds: float, cancel: threading.Event | None) -> None:
    """Sleep ``seconds`` unless ``cancel`` is set first (then raise :class:`Cancelled`)."""
    if seconds <= 0:
        return
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise Cancelled()


class LeakyBucket:
    """Thread-safe mirror of the portal's leaky bucket.

    ``reserve`` is kept a little below the portal's burst, since other apps on the same portal
    and IP share the bucket and our clock is not the portal's.
    """

    def __init__(
        self,
        burst: int,
        rate: float,
        reserve: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self.limit = max(1.0, burst - reserve)
        self._clock = clock
        self._level = 0.0
        self._last = clock()
        self._lock = threading.Lock()

    def _drain(self, now: float) -> None:
        self._level = max(0.0, self._level - (now - self._last) * self.rate)
        self._last = now

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Take one request slot, waiting as long as needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._drain(now)
                if self._level + 1 <= self.limit:
                    self._level += 1
                    return waited
                delay = (self._level + 1 - self.limit) / self.rate
            wait_or_cancel(delay, cancel)
            waited += delay

    def available(self) -> float:
        """How many requests could go out right now without waiting."""
        with self._lock:
            self._drain(self._clock())
            return max(0.0, self.limit - self._level)

    def refused(self) -> None:
        """The portal said 503 QUERY_LIMIT_EXCEEDED: its bucket is full, so is ours."""
        with self._lock:
            self._drain(self._clock())
            self._level = max(self._level, self.limit)


class OperatingBudget:
    """Per-method pause times derived from ``time.operating`` and 429 answers."""

    def __init__(
        self,
        limit_seconds: float = 480.0,
        soft_share: float = 0.85,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit_seconds
        self.soft = limit_seconds * soft_share
        self._clock = clock
        self._paused_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait_time(self, method: str) -> float:
        with self._lock:
            until = self._paused_until.get(method, 0.0)
        return max(0.0, until - self._clock())

    def observe(self, method: str, time_block: dict | None) -> None:
        """Note a response's ``time`` block; near the budget, pause until the reset."""
        if not isinstance(time_block, dict):
            return
        try:
            operating = float(time_block.get("operating") or 0.0)
        except (TypeError, ValueError):
            return
        if operating >= self.soft:
            self.pause(method, seconds_until_reset(time_block))

    def pause(self, method: str, seconds: float | None, default_seconds: float = 60.0) -> None:
        """Hold ``method`` back for ``seconds`` (or a default minute when the portal did not say)."""
        delay = default_seconds if seconds is None else max(0.0, seconds)
        until = self._clock() + delay
        with self._lock:
            self._paused_until[method] = max(self._paused_until.get(method, 0.0), until)


def seconds_until_reset(time_block: dict | None) -> float | None:
    """``operating_reset_at`` measured on the portal's own clock (``time.finish``).

    Using the difference of two portal timestamps keeps a skewed local clock out of it.
    """
    if not isinstance(time_block, dict):
        return None
    try:
        reset_at = float(time_block["operating_reset_at"])
        now = float(time_block.get("finish") or time_block.get("start"))
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, reset_at - now)
