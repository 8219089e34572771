"""The retention thread: drops old finished work from the state DB while the instance runs.

A server runs for months; pruning only at start would let the inbox and the deal timelines
grow without bound. Every ``interval`` (on the injectable clock) this thread removes finished
inbox rows, deal timeline entries and rejected requests older than ``storage.keep_days``.
Queued rows are never touched. Several instances on one shared inbox may all prune: the
deletes are idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from ..store.engine import utcnow
from ..store.state import StateStore

log = logging.getLogger(__name__)

INTERVAL = timedelta(hours=1)
TICK_S = 30.0  # how often the thread looks at the clock (real seconds)
CLOCK: Callable[[], datetime] = utcnow  # naive UTC; tests replace it to let days pass


class RetentionJob:
    def __init__(self, state: StateStore, keep_days: int, *,
                 now: Callable[[], datetime] | None = None, interval: timedelta = INTERVAL,
                 tick: float | None = None) -> None:
        self.state = state
        self.keep = timedelta(days=keep_days)
        self._now = now or CLOCK
        self.interval = interval
        self.tick = TICK_S if tick is None else tick
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RetentionJob:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def run_once(self) -> dict[str, int]:
        removed = self.state.prune_before(self._now() - self.keep)
        self.runs += 1
        if any(removed.values()):
            log.info("retention: removed %s (older than %d days)",
                     ", ".join(f"{n} {name}" for name, n in removed.items() if n), self.keep.days)
        return removed

    def _run(self) -> None:
        due = self._now()
        while not self._stop.is_set():
            if self._now() >= due:
                try:
                    self.run_once()
                except Exception as exc:  # the DB may be down for a while: try next time
                    log.warning("retention: could not prune: %s", type(exc).__name__)
                due = self._now() + self.interval
            self._stop.wait(self.tick)
