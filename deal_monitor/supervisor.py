"""Long-lived threads under supervision: an unexpected exception never stops one silently.

Each owner (worker, scheduler, status, offline puller, install verifier) runs its loop through
:class:`SupervisedThread`. An exception that escapes the loop is logged with its traceback
through the redacting logger, counted, shown in health, and the loop starts again after a
growing pause; when the thread still ends while it should run, health says the component
stopped and the instance is not ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .health import HealthBoard

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


class SupervisedThread:
    """Runs ``loop`` on a named daemon thread until ``stop`` is set; restarts it on a crash.

    ``loop`` returns when ``stop`` is set (or when it has nothing more to do); an exception
    escaping it is a crash. ``board`` gets ``failed(name)`` on each crash and
    ``stopped(name)`` when the thread ends although ``stop`` was not set.
    """

    def __init__(self, name: str, loop: Callable[[], None], stop: threading.Event,
                 board: HealthBoard | None = None, first_backoff: float = FIRST_BACKOFF_S,
                 max_backoff: float = MAX_BACKOFF_S) -> None:
        self.name = name
        self.loop = loop
        self.stop_event = stop
        self.board = board
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.crashes = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.board is not None:
            self.board.reset(self.name)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        delay = self.first_backoff
        ended = "ended"
        try:
            while not self.stop_event.is_set():
                try:
                    self.loop()
                except Exception as exc:
                    self.crashes += 1
                    log.error("the %s thread failed (%s); starting it again in %.0f s",
                              self.name, type(exc).__name__, delay, exc_info=True)
                    if self.board is not None:
                        self.board.failed(self.name, f"{self.name}: internal error: "
                                                  f"{type(exc).__name__}: {exc}")
                    self.stop_event.wait(delay)
                    delay = min(delay * 2, self.max_backoff)
                    continue
                return  # the loop ended by itself (stop set, or nothing more to do)
        except BaseException as exc:  # recorded in health, then the thread ends
            ended = f"ended: {type(exc).__name__}"
            raise
        finally:
            if not self.stop_event.is_set() and self.board is not None:
                log.error("the %s thread stopped", self.name)
                self.board.stopped(self.name, f"{self.name} stopped ({ended})")
