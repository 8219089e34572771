"""ONAPPINSTALL events verified off the listener thread, under the REST rate limiter.

An install event carries a token we do not know yet, so only a REST call with the event's own
access token against the configured portal proves it. That call used to run on the listener
thread, outside the rate limiter: four junk installs held all four listener threads while the
portal was slow. Now the listener only checks the event's shape and queues it (a few at most;
more are refused with 503), and this verifier makes the call.

Pending installs are kept in memory only: they carry fresh OAuth tokens, which must not rest in
the state DB in clear. A crash in the second between the answer and the check loses the
install; signing in again (or reinstalling the app) brings the tokens back.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from ..bitrix import phpform
from ..bitrix.throttle import Cancelled, LeakyBucket
from ..health import HealthBoard
from ..supervisor import SupervisedThread

log = logging.getLogger(__name__)

MAX_PENDING = 4


class InstallQueueFull(Exception):
    """More unverified installs wait than the bound allows."""


class InstallVerifier:
    """Queue of unverified install forms; a supervised thread proves and stores each."""

    def __init__(
        self,
        prove: Callable[[str], bool],
        store: Callable[[dict], None],
        bucket: Callable[[], LeakyBucket],
        board: HealthBoard | None = None,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.prove = prove  # a REST call with this access token answered by our portal
        self.store = store
        self.bucket = bucket
        self.board = board
        self.max_pending = max_pending
        self._pending: deque[dict] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: SupervisedThread | None = None
        self.verified = 0
        self.refused = 0

    def submit(self, form: dict) -> None:
        """Queue an install event (listener thread: no I/O); raise when the queue is full."""
        with self._lock:
            if len(self._pending) >= self.max_pending:
                raise InstallQueueFull
            self._pending.append(form)
        self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def start(self) -> None:
        self._stop.clear()
        self._thread = SupervisedThread("install-verifier", self._run, self._stop, self.board)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.alive

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    form = self._pending.popleft() if self._pending else None
                if form is None:
                    break
                self.verify(form)

    def verify(self, form: dict) -> bool:
        """Prove one install with a paced REST call; store it when the portal vouches."""
        access = phpform.get_path(form, "auth", "access_token") or ""
        try:
            self.bucket().acquire(self._stop)
        except Cancelled:
            return False
        if not self.prove(access):
            self.refused += 1
            log.warning("an install event could not be verified with the portal: ignored")
            return False
        self.store(form)
        self.verified += 1
        return True
