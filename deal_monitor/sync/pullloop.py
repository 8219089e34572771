"""The thread both pull sources share: call ``step()`` every ``interval`` seconds (sooner while
it reports more work), keep the last error for the status, stop on request."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from .. import metrics
from ..bitrix.throttle import Cancelled
from ..errors import BitrixError
from ..health import HealthBoard
from ..supervisor import SupervisedThread

BUSY_PAUSE = 0.2  # seconds between steps while a step says more work is waiting


class PullLoop(ABC):
    """Owner of one named daemon thread with start()/stop(); subclasses implement ``step``."""

    thread_name = "pull"
    metrics_kind = "pull"  # the label of metrics.poll_run
    first_wait = False  # wait one interval before the first step
    log = logging.getLogger(__name__)

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last_error = ""
        self.rounds = 0  # steps that finished without an error
        self._stop = threading.Event()
        self._thread: SupervisedThread | None = None
        self.board: HealthBoard | None = None  # set by the Monitor: failures shown in health

    @abstractmethod
    def step(self) -> bool:
        """One unit of work; True when more is waiting (call again soon)."""

    def start(self) -> None:
        self._stop.clear()
        self._thread = SupervisedThread(self.thread_name, self._run, self._stop, self.board)
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
                self.rounds += 1
                metrics.poll_run(self.metrics_kind)
                self.last_error = ""
                if self.board is not None:
                    self.board.recovered(self.metrics_kind)
            except Cancelled:
                return
            except BitrixError as exc:
                # said once while it lasts: a dead token would otherwise log every few seconds
                level = logging.DEBUG if str(exc) == self.last_error else logging.WARNING
                self.log.log(level, "%s: %s", self.thread_name, exc)
                self.last_error = str(exc)
                if self.board is not None:
                    self.board.failed(self.metrics_kind, f"{self.thread_name}: {exc}")
                busy = False
            wait = BUSY_PAUSE if busy else self.interval
