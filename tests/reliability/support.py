"""Helpers shared by the reliability suites: event bodies, raw HTTP, a TCP proxy, target checks.

Everything here talks to 127.0.0.1 only and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from deal_monitor.simulator import PortalSimulator
from deal_monitor.simulator.events import encode_envelope

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Hypothesis examples and soak sizes scale: 1 in CI, e.g. 10 nightly (DEAL_MONITOR_FUZZ_SCALE)
SCALE = max(1, int(os.environ.get("DEAL_MONITOR_FUZZ_SCALE", "1")))
# stages the default stage filter lets through (it skips NEW)
LIVE_STAGES = ("PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE", "WON")


# -- event bodies ------------------------------------------------------------------------------
def webhook_auth(sim: PortalSimulator, **overrides: str) -> dict[str, str]:
    """The ``auth`` block an outgoing webhook of this portal sends (domain, endpoints, token)."""
    auth = {
        "domain": sim.domain,
        "client_endpoint": f"{sim.url}/rest/",
        "server_endpoint": f"{sim.url}/rest/",
        "member_id": sim.member_id,
        "application_token": sim.application_token,
    }
    auth.update(overrides)
    return auth


def envelope(
    sim: PortalSimulator,
    deal_id: int | str,
    event: str = "ONCRMDEALUPDATE",
    ts: int | None = None,
    handler_id: int | None = 7,
    **auth: str,
) -> bytes:
    """A byte-exact event body as the portal's queue server posts it."""
    return encode_envelope(
        event, handler_id, {"FIELDS": {"ID": deal_id}}, int(time.time()) if ts is None else ts,
        webhook_auth(sim, **auth),
    )


def post(url: str, body: bytes | str, headers: Mapping[str, str] | None = None,
         timeout: float = 10.0) -> requests.Response:
    return requests.post(url, data=body, headers=dict(headers or FORM), timeout=timeout)


def timed_post(session: requests.Session, url: str, body: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    reply = session.post(url, data=body, headers=FORM, timeout=10)
    return reply.status_code, time.perf_counter() - started


def post_all(url: str, bodies: list[bytes], senders: int = 4,
             timeout: float = 120) -> tuple[list[int], list[float]]:
    """POST every body from ``senders`` threads (keep-alive each); (statuses, latencies)."""
    statuses: list[int] = []
    latencies: list[float] = []
    lock = threading.Lock()

    def sender(part: list[bytes]) -> None:
        with requests.Session() as session:
            for body in part:
                status, took = timed_post(session, url, body)
                with lock:
                    statuses.append(status)
                    latencies.append(took)

    threads = [threading.Thread(target=sender, args=(bodies[i::senders],)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return statuses, latencies


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# -- raw HTTP ------------------------------------------------------------------------------------
@dataclass
class RawReply:
    status: int | None
    data: bytes
    closed: bool  # the server closed the connection (EOF or reset) within the wait


def raw_http(port: int, payload: bytes | list[bytes], wait: float = 3.0,
             pause: float = 0.0) -> RawReply:
    """Send bytes as they are (in pieces if a list), read until close or ``wait`` seconds."""
    pieces = payload if isinstance(payload, list) else [payload]
    data = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        for piece in pieces:
            try:
                sock.sendall(piece)
            except OSError:  # the server answered and closed while we were still sending
                break
            if pause:
                time.sleep(pause)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
            if _complete(data):
                break
    status = None
    if data.startswith(b"HTTP/"):
        with contextlib.suppress(ValueError, IndexError):
            status = int(data.split(b" ", 2)[1])
    return RawReply(status, data, closed)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    return False


def http_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 1000) -> bytes:
    out = b""
    for start in range(0, len(body), size):
        piece = body[start:start + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


# -- a TCP proxy that can be switched off (a database server or a tunnel going away) ----------------
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a backend; ``down()`` refuses and cuts, ``up()`` restores."""

    def __init__(self, backend_port: int, port: int = 0) -> None:
        self.backend_port = backend_port
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = port
        self.accepted = 0
        self.up()

    def up(self) -> None:
        if self._listener is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    close = down

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                backend = socket.create_connection(("127.0.0.1", self.backend_port), timeout=5)
            except OSError:
                client.close()
                continue
            backend.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    backend.close()
                    return
                self._conns += [client, backend]
                self.accepted += 1
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


# -- recording what reaches the fake portal ---------------------------------------------------------
class RequestLog:
    """WSGI middleware for the simulator: (monotonic time, REST method) of every request."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.entries: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        method = path.rsplit("/", 1)[-1].removesuffix(".json").lower()
        if path.startswith("/oauth/token"):
            method = "oauth.token"
        with self._lock:
            self.entries.append((time.monotonic(), method))
        return self.app(environ, start_response)

    def times(self, method: str | None = None) -> list[float]:
        with self._lock:
            return [t for t, m in self.entries if method is None or m == method]

    def count(self, method: str | None = None, since: float = 0.0) -> int:
        return sum(1 for t in self.times(method) if t >= since)


def recording_simulator(**kwargs: Any) -> tuple[PortalSimulator, RequestLog]:
    """A started simulator whose HTTP requests are timestamped."""
    sim = PortalSimulator(**kwargs)
    log = RequestLog(sim.app)
    sim.app = log  # the server is built from ``sim.app`` in start()
    sim.start(host="127.0.0.1", port=0)
    return sim, log


# -- reading databases (target rows and expected values: tests/oracle.py) -------------------------
def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def sqlite_rows(path: Path, query: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(query)]


def state_counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            "inbox": conn.execute(text("SELECT count(*) FROM inbox")).scalar_one(),
            "rejection": conn.execute(text("SELECT count(*) FROM rejection")).scalar_one(),
        }
