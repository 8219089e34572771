"""The scheduler thread: reconciliation at start, on a timer, on demand and after sleep.

A laptop that slept for an hour missed every event of that hour; the scheduler notices a jump
between the wall clock and the monotonic clock and reconciles at once. It also keeps the
silence watchdog: when reconciliation keeps finding changes no event announced, pushed events
are not arriving, and the status says so with the likely cause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..bitrix.throttle import Cancelled
from ..errors import BitrixError, TargetError
from ..health import HealthBoard
from ..supervisor import SupervisedThread

if TYPE_CHECKING:  # pragma: no cover
    from ..service import Monitor

log = logging.getLogger(__name__)

SLEEP_JUMP_S = 60.0
TICK_S = 5.0


class Scheduler:
    def __init__(
        self,
        monitor: Monitor,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        tick: float = TICK_S,
        board: HealthBoard | None = None,
    ) -> None:
        self.monitor = monitor
        self.board = board or HealthBoard()
        self._wall = wall
        self._mono = mono
        self.tick = tick
        self._stop = threading.Event()
        self._now = threading.Event()
        self._thread: SupervisedThread | None = None
        self.runs = 0
        self.tick_failures = 0
        self.events_silent = False
        self.silence_hint = ""
        self.last_result = None
        self._positive_runs = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = SupervisedThread("scheduler", self._run, self._stop, self.board)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.alive

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._now.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def trigger(self) -> None:
        """Reconcile as soon as possible."""
        self._now.set()

    def _interval(self) -> float:
        return self.monitor.settings.sync.reconcile_minutes * 60.0

    def _run(self) -> None:
        """The loop; a tick that fails unexpectedly is logged, counted, shown in health,
        and the loop goes on after a pause (the supervisor restarts it if even that fails)."""
        self._due = self._mono()  # once at start
        self._deletion_due = (self._due if self._deletion_interval() != float("inf")
                              else float("inf"))
        self._clock = (self._wall(), self._mono())
        pause = TICK_S
        while not self._stop.is_set():
            try:
                self._tick()
                pause = TICK_S
            except Exception as exc:
                log.error("scheduler tick failed (%s); going on in %.0f s", type(exc).__name__,
                          pause, exc_info=True)
                self.board.failed("scheduler",
                                  f"scheduler: internal error: {type(exc).__name__}: {exc}")
                self.tick_failures += 1  # last: whoever sees the count sees the health too
                self._due = self._mono() + pause  # the work that failed is tried again
                self._stop.wait(pause)
                pause = min(pause * 2, 300.0)
                continue
            due = self._due
            wait = self.tick if due == float("inf") else min(self.tick, max(0.0, due - self._mono()))
            self._now.wait(wait)

    def _tick(self) -> None:
        now_wall, now_mono = self._wall(), self._mono()
        wall, mono = self._clock
        if (now_wall - wall) - (now_mono - mono) > SLEEP_JUMP_S:
            log.info("the machine seems to have slept; reconciling now")
            self._due = now_mono
        self._clock = (now_wall, now_mono)
        interval = self._interval()
        if self._now.is_set() or (now_mono >= self._due and (interval > 0 or self.runs == 0)):
            self._now.clear()
            if self._reconcile():
                self._due = self._mono() + (interval if interval > 0 else float("inf"))
            else:  # no credentials yet, or the portal failed: try again soon
                self._due = self._mono() + min(TICK_S * 6, interval or TICK_S * 6)
            if self.runs and self._mono() >= self._deletion_due:
                self._check_deleted()
                self._deletion_due = self._mono() + self._deletion_interval()
        self.board.recovered("scheduler")

    def _deletion_interval(self) -> float:
        minutes = self.monitor.settings.sync.deletion_check_minutes
        return minutes * 60.0 if minutes > 0 else float("inf")

    def _check_deleted(self) -> None:
        reconciler = self.monitor.reconciler
        if reconciler is None:
            return
        try:
            reconciler.find_deleted(cancel=self._stop)
        except Cancelled:
            return
        except (BitrixError, TargetError) as exc:
            log.warning("deletion check failed: %s", exc)
            self.board.failed("deletion_check", f"deletion check: {exc}")
            return
        self.board.recovered("deletion_check")

    def _reconcile(self) -> bool:
        """One reconciliation; False when it could not run (it is then retried soon)."""
        monitor = self.monitor
        if monitor.reconciler is None or not monitor.has_credentials():
            return False
        try:
            result = monitor.reconciler.run(cancel=self._stop)
        except Cancelled:
            return False
        except (BitrixError, TargetError) as exc:
            log.warning("reconciliation failed: %s", exc)
            self.board.failed("reconcile", f"reconciliation: {exc}")
            monitor.publish_status(force=True)
            return False
        self.board.recovered("reconcile")
        self.board.recovered("state_recovery")  # the full catch-up after a lost state DB is done
        self.runs += 1
        self.last_result = result
        self._watch_silence(result.unannounced)
        monitor.publish_status(force=True)
        return True

    def _watch_silence(self, unannounced: int) -> None:
        if self.runs <= 1:
            return  # the first run after start catches up on downtime by design
        if unannounced == 0:
            self._positive_runs = 0
            self.events_silent = False
            self.silence_hint = ""
            return
        # one positive run can be an event still in flight; two in a row is a pattern
        self._positive_runs += 1
        if self._positive_runs < 2:
            return
        self.events_silent = True
        status = self.monitor.status()
        if not status.listening:
            self.silence_hint = "the listener is not running"
        elif not self.monitor.settings.listener.public_url:
            self.silence_hint = (
                "no public URL is set: Bitrix24 cannot reach this computer; "
                "use a tunnel or reverse proxy, or rely on reconciliation"
            )
        else:
            self.silence_hint = (
                "check that the outgoing webhook (or event.bind handler) points at "
                f"{self.monitor.settings.listener.public_url}"
            )
        log.warning("%d deal change(s) arrived without an event: %s", unannounced, self.silence_hint)
