"""Fixtures for the simulator suite: a started simulator, an HTTP receiver, REST helpers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from deal_monitor.simulator import PortalSimulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"  # copies of shared/bitrix24/fixtures


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8").strip()


class Receiver:
    """A local HTTP server that records every POST (the app's event listener stand-in)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer._cond:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body})
                    outer._cond.notify_all()
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= count, timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def sim() -> Iterator[PortalSimulator]:
    simulator = PortalSimulator(rate_limit=False)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    try:
        yield rec
    finally:
        rec.close()


def call(sim: PortalSimulator, method: str, params: dict[str, Any] | None = None,
         *, as_json: bool = True) -> requests.Response:
    """POST a method through the inbound webhook."""
    url = sim.webhook_url + method
    if as_json:
        return requests.post(url, json=params or {}, timeout=10)
    from deal_monitor.bitrix import phpform
    return requests.post(url, data=phpform.encode(params or {}),
                         headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)


def app_call(sim: PortalSimulator, method: str, token: str, params: dict[str, Any] | None = None,
             ) -> requests.Response:
    """POST a method with OAuth (``auth=<access_token>``)."""
    return requests.post(f"{sim.url}/rest/{method}", json={**(params or {}), "auth": token},
                         timeout=10)


def make_app(sim: PortalSimulator, client_id: str = "local.abc123", secret: str = "s3cr3t") -> dict[str, Any]:
    """Register an app and exchange a code through the token endpoint; returns the tokens."""
    sim.register_app(client_id, secret)
    code = sim.issue_auth_code(client_id)
    response = requests.get(sim.oauth_url, params={
        "grant_type": "authorization_code", "client_id": client_id, "client_secret": secret,
        "code": code}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
