"""Event sender for the intake figures, run in a spawned process of its own.

It posts the real wire format (the simulator's own ``encode_envelope``: an outgoing-webhook
body with ``event``, ``event_handler_id``, ``data[FIELDS][ID]``, ``ts``, ``auth[...]``) over
keep-alive connections, one per sender thread.

* Open loop (``rate`` set): event *i* is due at ``t0 + i / rate`` whatever happened to the
  ones before; latency is measured from that due time to the end of the answer, so a slow
  server is charged for the queue it causes (no coordinated omission).
* Closed loop (``rate`` None): every thread posts back to back until ``duration`` ends; the
  count of 200 answers per second is the sustained intake.
"""

from __future__ import annotations

import atexit
import http.client
import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from urllib.parse import urlsplit

HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": "Bitrix24 Webhook Engine",
}


@dataclass
class Identity:
    """What the portal puts in ``auth[...]`` of an outgoing-webhook event."""

    application_token: str
    member_id: str
    domain: str
    handler_id: int = 1


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    latency_ms: list[float] = field(default_factory=list)  # due (or sent) -> answered, 2xx only
    all_latency_ms: list[float] = field(default_factory=list)  # every answer
    late_ms_max: float = 0.0  # worst lag of a send behind its due time
    sent_at: list[float] = field(default_factory=list)  # time.time() of each send, by index
    ok_at: list[float] = field(default_factory=list)  # seconds after the start of each 2xx answer


def body_for(identity: Identity, deal_id: int, event: str = "ONCRMDEALUPDATE") -> bytes:
    from deal_monitor.simulator.events import encode_envelope

    rest = f"https://{identity.domain}/rest/"
    auth = {
        "domain": identity.domain,
        "client_endpoint": rest,
        "server_endpoint": rest,
        "member_id": identity.member_id,
        "application_token": identity.application_token,
    }
    return encode_envelope(event, identity.handler_id, {"FIELDS": {"ID": deal_id}}, int(time.time()), auth)


class _Conn:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> int:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                self.conn.request("POST", self.path, body, HEADERS)
                response = self.conn.getresponse()
                response.read()
                if response.will_close:
                    self.close()
                return response.status
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def connect(self) -> None:
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.conn.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run(
    url: str,
    identity: Identity,
    deal_ids: Sequence[int],
    *,
    rate: float | None,
    duration: float,
    threads: int = 16,
) -> LoadResult:
    """Post events for ``deal_ids`` (cycled) for ``duration`` seconds; see the module doc."""
    total = int(rate * duration) if rate else None
    result = LoadResult()
    if total is not None:
        result.sent_at = [0.0] * total
    lock = threading.Lock()
    counter = itertools.count()
    conns = [_Conn(url) for _ in range(threads)]
    for conn in conns:
        conn.connect()
    start = time.perf_counter() + 0.2
    deadline = start + duration

    def worker(conn: _Conn) -> None:
        late = 0.0
        while True:
            i = next(counter)
            if total is not None:
                if i >= total:
                    break
                due = start + i / rate  # type: ignore[operator]
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                else:
                    late = max(late, -pause)
            else:
                due = time.perf_counter()
                if due >= deadline:
                    break
            body = body_for(identity, deal_ids[i % len(deal_ids)])
            wall = time.time()
            sent = time.perf_counter()
            if total is None:
                due = sent
            try:
                status = conn.post(body)
            except (OSError, http.client.HTTPException):
                status = 0
            done = time.perf_counter()
            ms = (done - due) * 1000.0
            with lock:
                result.sent += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.all_latency_ms.append(ms)
                if total is not None:
                    result.sent_at[i] = wall
                if 200 <= status < 300:
                    result.ok += 1
                    result.latency_ms.append(ms)
                    result.ok_at.append(done - start)
                else:
                    result.errors += 1
        with lock:
            result.late_ms_max = max(result.late_ms_max, late * 1000.0)

    workers = [threading.Thread(target=worker, args=(c,), daemon=True) for c in conns]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    result.elapsed = max(1e-9, time.perf_counter() - start)
    for conn in conns:
        conn.close()
    return result


_pool: ProcessPoolExecutor | None = None


def _warm() -> None:
    import deal_monitor.simulator.events  # noqa: F401  (import once, not inside the timing)


def run_in_process(url: str, identity: Identity, deal_ids: Sequence[int], **kwargs) -> LoadResult:
    """:func:`run` in a spawned process, so the sender never shares a GIL with the server."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=_warm)
        atexit.register(shutdown)
    timeout = kwargs.get("duration", 10) * 4 + 60
    return _pool.submit(run, url, identity, list(deal_ids), **kwargs).result(timeout=timeout)


def shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
