"""The WSGI application that takes Bitrix24 event POSTs.

It does as little as it can on the request thread: bound the body, parse, verify the token,
commit the event to the inbox, answer. Anything that needs the portal or the target happens
later in the worker, so the answer goes out in milliseconds whatever else is slow or down.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import metrics
from ..bitrix.events import IncomingEvent, Rejection, read_event

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Verification:
    """What an event must carry to be accepted (read per request: settings can change)."""

    application_token: str
    member_id: str = ""
    domain: str = ""
    install_check: Callable[[dict], bool] | None = None
    previous_token: str = ""  # the token being rotated out, during its grace period


class Intake(Protocol):
    def accept(self, event: IncomingEvent, remote_addr: str) -> None:
        """Commit the event durably; raise if it could not be stored."""
        ...

    def reject(self, remote_addr: str, status: int, reason: str) -> None: ...

    def health(self) -> dict[str, Any]: ...


StartResponse = Callable[[str, list[tuple[str, str]]], Any]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    503: "Service Unavailable",
}


HEALTH_PATHS = frozenset({"/healthz", "/readyz"})


class ListenerApp:
    """``POST {path}`` takes events; ``GET /livez`` says the process answers;
    ``GET /readyz`` (alias ``/healthz``) answers 200 when the instance can do its job and
    503 when it cannot (target or state DB down, credentials refused, listener or a thread
    stopped). The full health document goes only to loopback and the allowed networks;
    anyone else gets the verdict alone.
    """

    def __init__(
        self,
        path: str,
        verification: Callable[[], Verification],
        intake: Intake,
        allow_networks: Iterable[str] = (),
        max_body: int = MAX_BODY,
    ) -> None:
        self.path = path.rstrip("/") or "/"
        self.verification = verification
        self.intake = intake
        self.networks = [ipaddress.ip_network(n, strict=False) for n in allow_networks]
        self.max_body = max_body

    def __call__(self, environ: dict, start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        path = (environ.get("PATH_INFO") or "/").rstrip("/") or "/"
        remote = environ.get("REMOTE_ADDR") or ""
        if path == metrics.PATH:
            return metrics.serve(environ, start_response, self.networks)
        if path == "/livez" or path in HEALTH_PATHS:
            if method not in ("GET", "HEAD"):
                return self._reply(start_response, 405, "", allow="GET")
            if path == "/livez":
                return self._reply(start_response, 200, '{"status": "alive"}',
                                   content_type="application/json")
            health = self.intake.health()
            ready = bool(health.get("ready", True))
            if not self._trusted(remote):
                health = {"status": health.get("status"), "ready": ready}
            return self._reply(start_response, 200 if ready else 503,
                               json.dumps(health, default=str), content_type="application/json")
        if path != self.path:
            return self._reply(start_response, 404, "not found")
        if method != "POST":
            return self._reply(start_response, 405, "use POST", allow="POST")
        status, reason = self._check_request(environ, remote)
        if status:
            self.intake.reject(remote, status, reason)
            return self._reply(start_response, status, reason)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            event = read_event(body, *self._verification_args())
        except Rejection as exc:
            self.intake.reject(remote, exc.status, exc.reason)  # counted; logged rate-limited
            return self._reply(start_response, exc.status, exc.reason)
        try:
            self.intake.accept(event, remote)
        except Exception:
            log.exception("could not store event %s for deal %s", event.event, event.deal_id)
            return self._reply(start_response, 503, "cannot store the event now")
        return self._reply(start_response, 200, "OK")

    def _verification_args(self) -> tuple:
        v = self.verification()
        return v.application_token, v.member_id, v.domain, v.install_check, v.previous_token

    def _trusted(self, remote: str) -> bool:
        """Loopback, or a sender in the allowed networks: may read the health details."""
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        return address.is_loopback or any(address in net for net in self.networks)

    def _check_request(self, environ: dict, remote: str) -> tuple[int, str]:
        """Checks that need no body: sender network, media type, size."""
        if self.networks:
            try:
                address = ipaddress.ip_address(remote)
            except ValueError:
                return 403, "sender address unknown"
            if not any(address in net for net in self.networks):
                return 403, "sender not in the allowed networks"
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            return 415, "expected application/x-www-form-urlencoded"
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 400, "bad Content-Length"
        if length > self.max_body:
            return 413, "body too large"
        if length <= 0:
            return 400, "empty body"
        return 0, ""

    @staticmethod
    def _reply(
        start_response: StartResponse,
        status: int,
        text: str,
        content_type: str = "text/plain; charset=utf-8",
        allow: str = "",
    ) -> list[bytes]:
        data = text.encode("utf-8")
        headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
        if allow:
            headers.append(("Allow", allow))
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [data]
