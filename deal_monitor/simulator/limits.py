"""The portal's two REST limits: the leaky bucket (503) and the operating-time budget (429).

Leaky bucket: every HTTP request to ``/rest`` adds 1; the counter drains ``rate`` per second;
a request that would push it over ``burst`` is refused with ``QUERY_LIMIT_EXCEEDED`` and
does not count. Operating limit: per (auth, method) the simulated execution time is summed in
ten buckets over a sliding window (10 minutes in the cloud); once the sum exceeds the limit
the method is refused with ``OPERATION_TIME_LIMIT`` until the oldest bucket drops out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

PLANS: dict[str, tuple[float, float]] = {
    "standard": (50.0, 2.0),
    "enterprise": (250.0, 5.0),
}

Clock = Callable[[], float]


def plan_limits(plan: str | tuple[float, float]) -> tuple[float, float]:
    """A plan name or a custom ``(burst, drain_per_second)`` tuple."""
    if isinstance(plan, str):
        try:
            return PLANS[plan]
        except KeyError:
            raise ValueError(f"unknown plan {plan!r}; use {sorted(PLANS)} or (burst, rate)") from None
    burst, rate = plan
    if burst < 1 or rate <= 0:
        raise ValueError("plan needs burst >= 1 and rate > 0")
    return float(burst), float(rate)


class LeakyBucket:
    """Per-portal request counter."""

    def __init__(self, burst: float, rate: float, clock: Clock = time.monotonic) -> None:
        self.burst = burst
        self.rate = rate
        self._clock = clock
        self._level = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    def _drain(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self.rate)
        self._at = now

    def try_hit(self) -> bool:
        """Count one request; False (and no count) when the bucket would overflow."""
        with self._lock:
            self._drain()
            if self._level + 1 > self.burst:
                return False
            self._level += 1
            return True

    @property
    def level(self) -> float:
        with self._lock:
            self._drain()
            return self._level

    def reset(self) -> None:
        with self._lock:
            self._level = 0.0
            self._at = self._clock()


@dataclass
class OperatingState:
    """What a response's ``time`` block reports for one (auth, method)."""

    operating: float
    reset_at: float


class OperatingLimiter:
    """Sliding-window budget of summed method cost, keyed by (auth, method)."""

    BUCKETS = 10

    def __init__(self, limit: float, window: float = 600.0, clock: Clock = time.time) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._slot = window / self.BUCKETS
        self._costs: dict[tuple[str, str], dict[int, float]] = {}
        self._lock = threading.Lock()

    def _live(self, key: tuple[str, str], now: float) -> dict[int, float]:
        buckets = self._costs.setdefault(key, {})
        oldest = int(now // self._slot) - self.BUCKETS + 1
        for slot in [s for s in buckets if s < oldest]:
            del buckets[slot]
        return buckets

    def _state(self, buckets: dict[int, float], now: float) -> OperatingState:
        total = sum(buckets.values())
        first = min(buckets) if buckets else int(now // self._slot)
        reset_at = (first + self.BUCKETS) * self._slot
        return OperatingState(total, reset_at)

    def blocked(self, key: tuple[str, str]) -> OperatingState | None:
        """The state if this method is currently blocked, else None."""
        with self._lock:
            now = self._clock()
            buckets = self._live(key, now)
            state = self._state(buckets, now)
            return state if state.operating > self.limit else None

    def charge(self, key: tuple[str, str], cost: float) -> OperatingState:
        """Add the cost of one executed call and return the new state."""
        with self._lock:
            now = self._clock()
            buckets = self._live(key, now)
            slot = int(now // self._slot)
            buckets[slot] = buckets.get(slot, 0.0) + cost
            return self._state(buckets, now)

    def peek(self, key: tuple[str, str]) -> OperatingState:
        with self._lock:
            now = self._clock()
            return self._state(self._live(key, now), now)

    def reset(self) -> None:
        with self._lock:
            self._costs.clear()
