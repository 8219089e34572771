"""The portal's event queue server: POSTs queued events to handler URLs from one thread.

Like Bitrix24 it sends ``application/x-www-form-urlencoded`` bodies, waits a few seconds
for an answer, records the outcome and never retries: a failed or unreachable delivery is
simply lost. Every attempt is recorded as a :class:`Delivery`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import requests

TIMEOUT = 5.0


@dataclass(frozen=True)
class Delivery:
    """One attempted event POST (``status`` None when no HTTP answer came)."""

    event: str
    deal_id: int | None
    url: str
    status: int | None
    error: str | None
    body: bytes
    at: float
    handler_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Job:
    event: str
    deal_id: int | None
    url: str
    body: bytes
    handler_id: int | None


_STOP = object()


class DeliveryWorker:
    """FIFO delivery thread with idle tracking; ``stop()`` joins it and closes connections."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self.delay = 0.0
        self._queue: queue.Queue[object] = queue.Queue()
        self._records: list[Delivery] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._session: requests.Session | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="b24sim-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put(job)

    def record_dropped(self, job: Job, reason: str) -> None:
        """Record an event the portal could not send at all (nothing is queued)."""
        self._append(Delivery(job.event, job.deal_id, job.url, None, reason, job.body,
                              time.time(), job.handler_id))

    def records(self) -> list[Delivery]:
        with self._lock:
            return list(self._records)

    def clear_records(self) -> None:
        with self._lock:
            self._records.clear()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def _append(self, record: Delivery) -> None:
        with self._lock:
            self._records.append(record)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._drain_unsent()
                return
            assert isinstance(item, Job)
            try:
                if self.delay:
                    time.sleep(self.delay)
                self._append(self._send(item))
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _drain_unsent(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Job):
                self.record_dropped(item, "simulator stopped before delivery")
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _send(self, job: Job) -> Delivery:
        session = self._session or requests.Session()
        try:
            response = session.post(
                job.url, data=job.body, timeout=(self.timeout, self.timeout),
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "User-Agent": "Bitrix24 Webhook Engine"},
                allow_redirects=False,
            )
            response.close()
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
            return Delivery(job.event, job.deal_id, job.url, response.status_code, error,
                            job.body, time.time(), job.handler_id)
        except requests.RequestException as exc:
            return Delivery(job.event, job.deal_id, job.url, None, f"{type(exc).__name__}: {exc}",
                            job.body, time.time(), job.handler_id)
