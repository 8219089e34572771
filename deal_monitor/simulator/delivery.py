"""The portal's event queue server: POSTs queued events to handler URLs.

Like Bitrix24 it sends ``application/x-www-form-urlencoded`` bodies, waits a few seconds
for an answer, records the outcome and never retries: a failed or unreachable delivery is
simply lost. Every attempt is recorded as a :class:`Delivery`.

The default is one sender thread, first in first out. A profile (:mod:`.profile`) may give
a pool of senders and a random delay per event (each event is due ``delay`` seconds after it
was queued, so events close in time leave out of order), and a share of events that are
sent twice (the second copy with its own delay).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass

import requests

from .profile import DEFAULT, Draws

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
    duplicate: bool = False  # a second POST of an event already sent or queued
    queued_at: float = 0.0  # time.time() when the portal queued the event

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
    duplicate: bool = False
    queued_at: float = 0.0


class DeliveryWorker:
    """Sender pool over a due-time queue, with idle tracking; ``stop()`` joins the senders."""

    def __init__(self, timeout: float = TIMEOUT, draws: Draws | None = None) -> None:
        self.timeout = timeout
        self.delay = 0.0  # a fixed extra pause before each send (tests set it)
        self.draws = draws or Draws(DEFAULT)
        self.senders = max(1, self.draws.profile.senders)
        self._due: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._records: list[Delivery] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Condition(self._lock)
        self._pending = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self._threads:
            return
        self._stopping = False
        for n in range(self.senders):
            thread = threading.Thread(target=self._run, name=f"b24sim-delivery-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if not self._threads:
            return
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        self._drain_unsent()

    def submit(self, job: Job) -> None:
        now = time.time()
        copies = [job]
        if self.draws.chance(self.draws.profile.duplicate_share):
            copies.append(Job(job.event, job.deal_id, job.url, job.body, job.handler_id, True))
        with self._lock:
            for copy in copies:
                due = time.monotonic() + self.draws.delivery_delay()
                copy = Job(copy.event, copy.deal_id, copy.url, copy.body, copy.handler_id,
                           copy.duplicate, now)
                heapq.heappush(self._due, (due, next(self._seq), copy))
                self._pending += 1
            self._wake.notify_all()

    def record_dropped(self, job: Job, reason: str) -> None:
        """Record an event the portal could not send at all (nothing is queued)."""
        self._append(Delivery(job.event, job.deal_id, job.url, None, reason, job.body,
                              time.time(), job.handler_id, job.duplicate, job.queued_at))

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

    def _next(self) -> Job | None:
        """The next due job (waiting for it); None when stopping and nothing is due.

        Jobs already due when ``stop()`` is called are still sent (as the FIFO thread sent
        everything queued before it); jobs still waiting out their delay are dropped.
        """
        with self._lock:
            while True:
                if self._due:
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._due)[2]
                    if self._stopping:
                        return None
                    self._wake.wait(wait)
                elif self._stopping:
                    return None
                else:
                    self._wake.wait()

    def _run(self) -> None:
        session = requests.Session()
        try:
            while (job := self._next()) is not None:
                try:
                    if self.delay:
                        time.sleep(self.delay)
                    self._append(self._send(session, job))
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()
        finally:
            session.close()

    def _drain_unsent(self) -> None:
        with self._lock:
            unsent = [job for _, _, job in sorted(self._due)]
            self._due.clear()
        for job in unsent:
            self.record_dropped(job, "simulator stopped before delivery")
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _send(self, session: requests.Session, job: Job) -> Delivery:
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
                            job.body, time.time(), job.handler_id, job.duplicate, job.queued_at)
        except requests.RequestException as exc:
            return Delivery(job.event, job.deal_id, job.url, None, f"{type(exc).__name__}: {exc}",
                            job.body, time.time(), job.handler_id, job.duplicate, job.queued_at)
