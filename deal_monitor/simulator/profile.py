"""Simulator profiles: how kind the simulated portal is.

``default`` is the fast portal the unit tests use: no latency, one FIFO delivery thread,
every date a local midnight in one fixed offset. ``realistic`` (issue 13) is as unkind as a
cloud portal seen from a customer's server:

* **server time per call** drawn from a bounded, right-skewed (triangular) distribution per
  method — ``crm.deal.get`` 80–250 ms, a list page 0.2–0.6 s plus the cost of skipping
  ``start`` rows (the docs measured 49.9 s for an offset page of 2.39 M items, ~21 µs a row;
  keyset paging with ``start=-1`` skips nothing); the time is really spent (the request
  waits), reported in the ``time`` block and charged to the operating budget, as the portal
  charges its execution time;
* **batch** = the sum of its commands' server time, at most 50 commands (the batch itself
  enforces it) and at most the 60 s per-request wall limit (what a real portal does past it
  is not documented; the simulator stops adding time there);
* **network** round trip 10–40 ms per HTTP request, outside the ``time`` block;
* **event delivery** from a small pool of senders, each event leaving 0.1–3 s after the
  change (jitter included), so events of changes close in time arrive out of order, and an
  occasional duplicate POST of the same event (separate hits make them on a real portal);
* **dates** rendered as ``CRestUtil::ConvertDate`` does
  (``date('c', MakeTimeStamp($dt, FORMAT_DATE) + date("Z"))``, bitrix ``rest`` module
  ``classes/general/rest_util.php``): a date field is the portal's local midnight plus the
  portal's *current* UTC offset, shown in the offset of that instant — ``2024-08-30T02:00:00+02:00``
  in the docs fixture; west of UTC the text carries the previous evening
  (``2024-08-29T20:00:00-04:00``). Time zones may be IANA names (DST changes apply).

All draws come from one seeded :class:`random.Random` (``seed``), so a single-threaded run
is reproducible; with concurrent requests the order of draws follows the thread schedule.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

Range = tuple[float, float]

WALL_LIMIT = 60.0  # seconds per HTTP request on a cloud portal (API.md §8)
# 49.9 s for a page at offset 2.39 M (settings/performance/huge-data.md): ~21 µs a skipped row
OFFSET_COST = 49.9 / 2_390_000


@dataclass(frozen=True)
class Profile:
    """What the simulated portal costs and how it delivers; see the module docstring."""

    name: str
    method_latency: Mapping[str, Range] = field(default_factory=dict)
    default_latency: Range = (0.0, 0.0)
    list_latency: Range = (0.0, 0.0)
    offset_cost: float = 0.0  # seconds per skipped row of ``start`` on list methods
    network: Range = (0.0, 0.0)
    senders: int = 1
    delivery_delay: Range = (0.0, 0.0)
    duplicate_share: float = 0.0
    php_dates: bool = False
    time_zone: str = "+03:00"
    seed: int | None = None

    @property
    def timed(self) -> bool:
        """True when calls take server time (and are charged by it)."""
        return self.default_latency[1] > 0 or self.list_latency[1] > 0 or bool(self.method_latency)

    def with_seed(self, seed: int | None) -> Profile:
        return self if seed is None else replace(self, seed=seed)


DEFAULT = Profile("default")
REALISTIC = Profile(
    "realistic",
    method_latency=MappingProxyType({
        "crm.deal.get": (0.08, 0.25),
        "crm.deal.add": (0.10, 0.30),
        "crm.deal.update": (0.10, 0.30),
        "crm.deal.delete": (0.08, 0.25),
        "crm.deal.productrows.get": (0.05, 0.15),
        "crm.deal.productrows.set": (0.10, 0.30),
        "crm.deal.fields": (0.05, 0.15),
    }),
    default_latency=(0.03, 0.12),
    list_latency=(0.2, 0.6),
    offset_cost=OFFSET_COST,
    network=(0.01, 0.04),
    senders=3,
    delivery_delay=(0.1, 3.0),
    duplicate_share=0.03,
    php_dates=True,
    time_zone="Europe/Moscow",
)
PROFILES: dict[str, Profile] = {"default": DEFAULT, "realistic": REALISTIC}


def profile_named(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown simulator profile {profile!r}; use {sorted(PROFILES)}") from None


def is_list_method(method: str) -> bool:
    return method.endswith(".list")


class Draws:
    """The profile's seeded random numbers (thread-safe)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._rng = random.Random(profile.seed)
        self._lock = threading.Lock()

    def _skewed(self, span: Range) -> float:
        low, high = span
        if high <= low:
            return low
        with self._lock:  # triangular: bounded, mode at 30 % of the span (latencies lean low)
            return self._rng.triangular(low, high, low + 0.3 * (high - low))

    def uniform(self, span: Range) -> float:
        low, high = span
        if high <= low:
            return low
        with self._lock:
            return self._rng.uniform(low, high)

    def chance(self, share: float) -> bool:
        if share <= 0:
            return False
        with self._lock:
            return self._rng.random() < share

    def server_time(self, method: str, start: int = 0) -> float:
        """Seconds one call of ``method`` takes on the portal (0 for the default profile)."""
        p = self.profile
        if is_list_method(method):
            return self._skewed(p.list_latency) + p.offset_cost * max(0, start)
        return self._skewed(p.method_latency.get(method, p.default_latency))

    def network(self) -> float:
        return self.uniform(self.profile.network)

    def delivery_delay(self) -> float:
        return self.uniform(self.profile.delivery_delay)
