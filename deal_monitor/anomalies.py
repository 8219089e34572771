"""Things that are handled safely but should not happen often: counted, logged, reported.

Each is harmless on its own — the event is still verified, the deal still re-read from the
portal — but a run of them means something is off: a forged DELETE says someone holds the
token, a time stamp days away says a replayed body or a broken clock, a burst of wrong-token
requests says a scan (or a token changed in Bitrix24 and not here). ``/healthz`` and the
status show the counts since start, the auth failures of the last hour, and warnings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque

log = logging.getLogger(__name__)

KINDS = (
    "ts_skew",  # the event's ts is more than a day away from our clock
    "forged_delete",  # ONCRMDEALDELETE for a deal the portal still has
    "previous_token",  # signed with the token being rotated out (grace period)
    "coalesced_at_intake",  # not stored: enough unread events of that deal already wait
)
TS_SKEW_SECONDS = 24 * 3600
AUTH_WINDOW_SECONDS = 3600
AUTH_BURST = 20  # wrong-token requests per hour before a warning
_LOG_EVERY = 300.0  # one log line per kind per five minutes, however many happen


class Anomalies:
    """Thread-safe counters (listener threads and the worker both report)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._auth_failures: deque[float] = deque()

    def note(self, kind: str, detail: str = "") -> None:
        assert kind in KINDS, kind
        now = self._clock()
        with self._lock:
            self._counts[kind] += 1
            count = self._counts[kind]
            quiet = now - self._logged_at.get(kind, -_LOG_EVERY) < _LOG_EVERY
            if not quiet:
                self._logged_at[kind] = now
        if not quiet:
            log.warning("anomaly %s (%d since start): %s", kind, count, detail)

    def auth_failure(self) -> None:
        now = self._clock()
        with self._lock:
            self._auth_failures.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._auth_failures and now - self._auth_failures[0] > AUTH_WINDOW_SECONDS:
            self._auth_failures.popleft()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {kind: self._counts[kind] for kind in KINDS}

    def auth_failures_last_hour(self) -> int:
        with self._lock:
            self._trim(self._clock())
            return len(self._auth_failures)

    def warnings(self) -> list[str]:
        """What an operator should look at (codes; the texts are in the UI and the log)."""
        result = []
        if self.auth_failures_last_hour() >= AUTH_BURST:
            result.append("auth_failures")
        counts = self.counts()
        if counts["forged_delete"]:
            result.append("forged_delete")
        if counts["previous_token"]:
            result.append("previous_token_in_use")
        return result


def ts_skewed(ts: int | None, now: float | None = None) -> bool:
    """The event's ``ts`` (Unix seconds) is more than a day away from our clock."""
    if ts is None:
        return False
    return abs((now if now is not None else time.time()) - ts) > TS_SKEW_SECONDS
