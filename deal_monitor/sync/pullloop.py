"""The thread both pull sources share: call ``step()`` every ``interval`` seconds (sooner while
it reports more work), keep the last error for the status, stop on request."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from ..bitrix.throttle import Cancelled
from ..errors import BitrixError

BUSY_PAUSE = 0.2  # seconds between steps while a step says more work is waiting


class PullLoop(ABC):
    """Owner of one named daemon thread with start()/stop(); subclasses implement ``step``."""

    thread_name = "pull"
    first_wait = False  # wait one interval before the first step
    log = logging.getLogger(__name__)

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def step(self) -> bool:
        """One unit of work; True when more is waiting (call again soon)."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        wait = self.interval if self.first_wait else 0.0
        while not self._stop.wait(wait):
            try:
                busy = self.step()
                self.last_error = ""
            except Cancelled:
                return
            except BitrixError as exc:
                # said once while it lasts: a dead token would otherwise log every few seconds
                level = logging.DEBUG if str(exc) == self.last_error else logging.WARNING
                self.log.log(level, "%s: %s", self.thread_name, exc)
                self.last_error = str(exc)
                busy = False
            wait = BUSY_PAUSE if busy else self.interval
