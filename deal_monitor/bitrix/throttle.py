"""Client-side pacing that keeps the portal from having to refuse us.

``LeakyBucket`` mirrors the portal's request bucket (each HTTP request +1, drains ``rate``
per second, refuses above ``burst``) and makes callers wait *before* they would overflow it.
``OperatingBudget`` tracks each method's ``time.operating`` (summed server seconds over ten
minutes) and holds a method back before the portal blocks it with 429. With requests in
flight at once, each of them may still add its cost after the last answer was seen, so
``headroom`` allows another concurrent request only while every one in flight could land and
the sum would still stay under the soft share (see :meth:`OperatingBudget.headroom`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping


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
    """Per-method pause times derived from ``time.operating`` and 429 answers.

    Serially, a method is paused once an answer shows ``operating`` at the soft share, so it
    can overshoot it by one request's cost at most. ``headroom`` keeps that bound when
    requests overlap: another request may join ``running`` others only if the last seen
    ``operating`` plus the most each of them and the new one can still add (its calls of the
    method times the largest cost of one call seen) stays under the soft share. A method with
    no answer seen yet (start-up) gets no overlap: the budget may be spent already by an
    earlier run of the same webhook or app.
    """

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
        self._seen: dict[str, tuple[float, float]] = {}  # method -> (portal time, operating)
        self._largest: dict[str, float] = {}  # method -> largest cost of one call seen
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
        at = _number(time_block.get("finish")) or _number(time_block.get("start")) or 0.0
        with self._lock:
            # answers of overlapping requests arrive in any order: the portal's latest wins
            if at >= self._seen.get(method, (float("-inf"), 0.0))[0]:
                self._seen[method] = (at, operating)
        if operating >= self.soft:
            self.pause(method, seconds_until_reset(time_block))

    def note_cost(self, method: str, seconds: float) -> None:
        """One call of ``method`` (alone, or a command of a batch) ran ``seconds``."""
        if seconds > 0:
            with self._lock:
                self._largest[method] = max(self._largest.get(method, 0.0), seconds)

    def headroom(self, calls: Mapping[str, int], running: int) -> bool:
        """May one more request go out while ``running`` like it are in flight?

        ``calls``: how many calls of each method one such request makes (a batch of 50
        ``crm.deal.get``: ``{"crm.deal.get": 50}``). Yes only if, for every method, the last
        ``operating`` seen plus ``running + 1`` requests' worth of calls at the largest cost
        seen stays under the soft share, and the method is not paused. A method with no
        answer or cost seen yet gets no overlap.
        """
        now = self._clock()
        with self._lock:
            for method, count in calls.items():
                seen = self._seen.get(method)
                cost = self._largest.get(method)
                if seen is None or cost is None or self._paused_until.get(method, 0.0) > now:
                    return False
                if seen[1] + (running + 1) * count * cost >= self.soft:
                    return False
        return True

    def pause(self, method: str, seconds: float | None, default_seconds: float = 60.0) -> None:
        """Hold ``method`` back for ``seconds`` (or a default minute when the portal did not say)."""
        delay = default_seconds if seconds is None else max(0.0, seconds)
        until = self._clock() + delay
        with self._lock:
            self._paused_until[method] = max(self._paused_until.get(method, 0.0), until)


def _number(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


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
