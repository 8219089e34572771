"""The HTTP face of the portal (WSGI): REST endpoints, the OAuth token endpoint, faults.

Routes: ``/rest/<user>/<secret>/<method>[.json]`` (inbound webhook),
``/rest/<method>[.json]`` with ``auth=<access_token>`` (OAuth), ``/oauth/token/``,
``/oauth/authorize/`` (the consent page: redirects with a code).
Parameters are merged from the query string and a form (PHP brackets) or JSON body.
Order of checks per REST request: injected fault -> latency -> leaky bucket (503) ->
authorization (401) -> method (404) -> operating limit (429) -> the method itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from waitress.channel import ClientDisconnected

from . import errors, formcodec
from .errors import RestError, html_error_page, status_line
from .faults import FaultRule, Faults
from .formats import php_json
from .hits import Actor
from .limits import LeakyBucket
from .oauth import OAuthServer
from .portal import Portal
from .rest import METHODS, RestService
from .stats import Stats

_log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
MAX_FIELDS = 10000
MAX_DEPTH = 8


class BadRequest(Exception):
    """The request body or query could not be read."""


def read_params(environ: dict[str, Any]) -> dict[str, Any]:
    """Merge query-string and body parameters (body wins, like PHP's ``$_REQUEST``)."""
    try:
        params: dict[str, Any] = dict(
            formcodec.decode(environ.get("QUERY_STRING", ""), max_fields=MAX_FIELDS, max_depth=MAX_DEPTH))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        if body:
            ctype = str(environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
            if ctype == "application/json":
                data = json.loads(body.decode("utf-8"))
                if not isinstance(data, dict):
                    raise BadRequest("JSON body must be an object")
                params.update(data)
            else:
                params.update(formcodec.decode(body, max_fields=MAX_FIELDS, max_depth=MAX_DEPTH))
    except (ValueError, UnicodeDecodeError) as exc:  # FormLimitError is a ValueError
        raise BadRequest(str(exc)) from exc
    return params


class PortalApp:
    """WSGI application of one simulated portal."""

    def __init__(self, *, portal: Portal, service: RestService, oauth: OAuthServer, stats: Stats,
                 faults: Faults, bucket: Callable[[], LeakyBucket | None],
                 webhook: Callable[[], tuple[int, str]], latency: Callable[[], float]) -> None:
        self.portal = portal
        self.service = service
        self.oauth = oauth
        self.stats = stats
        self.faults = faults
        self.bucket = bucket
        self.webhook = webhook
        self.latency = latency
        self._token_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path.startswith("/rest/"):
            return self._rest(environ, start_response, path[len("/rest/"):])
        if path.rstrip("/") == "/oauth/token":
            return self._token(environ, start_response)
        if path.rstrip("/") == "/oauth/authorize":
            return self._authorize_page(environ, start_response)
        if path == "/":
            return _send(start_response, 200, b"Bitrix24 portal simulator\n",
                         "text/plain; charset=utf-8")
        return _send(start_response, 404, html_error_page(404), "text/html")

    # -- OAuth token endpoint -----------------------------------------------------------
    def _token(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rule = self.faults.take("oauth.token", explicit=True)
        if rule is not None:
            early = self._apply_fault(rule, environ, start_response)
            if early is not None:
                return early
        try:
            params = read_params(environ)
        except BadRequest:
            return _json(start_response, 400, {"error": "invalid_request"})
        with self._token_lock:
            status, body = self.oauth.token_request(params)
        if status == 200 and params.get("grant_type") == "refresh_token":
            self.stats.bump("token_refreshes")
        return _json(start_response, status, body)

    def _authorize_page(self, environ: dict[str, Any],
                        start_response: StartResponse) -> Iterable[bytes]:
        try:
            params = read_params(environ)
        except BadRequest:
            return _send(start_response, 400, b"bad request", "text/plain")
        status, where = self.oauth.authorize(params)
        if status != 302:
            return _send(start_response, status, where.encode("utf-8"), "text/plain; charset=utf-8")
        start_response("302 Found", [("Location", where), ("Content-Length", "0")])
        return [b""]

    # -- REST -----------------------------------------------------------------------------
    def _rest(self, environ: dict[str, Any], start_response: StartResponse,
              tail: str) -> Iterable[bytes]:
        self.stats.request_started()  # in flight until its answer is made (and held)
        try:
            answer = self._rest_answer(environ, start_response, tail)
            held = environ.get("simulator.lag", 0.0)
            if held:  # a ``lag`` fault: the answer (error or not) is made, then held back
                self.stats.bump("answers_held")
                time.sleep(held)
            return answer
        finally:
            self.stats.request_ended()

    def _rest_answer(self, environ: dict[str, Any], start_response: StartResponse,
                     tail: str) -> Iterable[bytes]:
        self.stats.bump("http_requests")
        parts = tail.split("/")
        method = parts[-1].lower()
        if method.endswith(".json"):
            method = method[: -len(".json")]
        rule = self.faults.take(method)
        if rule is not None:
            early = self._apply_fault(rule, environ, start_response)
            if early is not None:
                return early
        delay = self.latency()
        if delay > 0:
            time.sleep(delay)
        try:
            params = read_params(environ)
        except BadRequest as exc:
            return _json(start_response, 400, {"error": "INVALID_REQUEST",
                                               "error_description": f"Invalid request: {exc}"})
        bucket = self.bucket()
        if bucket is not None and not bucket.try_hit():
            self.stats.bump("refusals_503")
            return _error(start_response, errors.query_limit_exceeded())
        try:
            if len(parts) not in (1, 3) or (method not in METHODS and method != "batch"):
                raise errors.method_not_found()
            actor, auth_type = self._authorize(parts, params)
            with self.portal.hits.open(actor):
                payload = self.service.call(method, params, actor, auth_type)
        except RestError as exc:
            return _error(start_response, exc)
        except Exception:  # a simulator bug must look like the portal's own 500, not hang
            _log.exception("simulator failed serving %s", method)
            return _error(start_response, RestError(500, "INTERNAL_SERVER_ERROR",
                                                    "Internal server error"))
        body = php_json(payload)
        headers = [("X-Bitrix-Rest-Time", f"{payload['time']['processing']:.10f}")]
        if auth_type == "oauth":
            headers.append(("X-Bitrix-Rest-Application", actor.client_id))
        if rule is not None and rule.kind == "truncate":
            return _truncated(start_response, body)
        return _send(start_response, 200, body, "application/json; charset=utf-8", headers)

    def _authorize(self, parts: list[str], params: dict[str, Any]) -> tuple[Actor, str]:
        if len(parts) == 3:
            user, secret = self.webhook()
            if parts[0] != str(user) or parts[1] != secret:
                raise errors.no_auth_found()
            return Actor("webhook", user, auth_key=f"webhook:{user}:{secret}"), "webhook"
        auth = params.pop("auth", None)
        if not isinstance(auth, str) or not auth:
            raise errors.no_auth_found()
        token = self.oauth.authenticate(auth)
        connector = params.pop("auth_connector", "")
        connector = connector if isinstance(connector, str) else ""
        actor = Actor("app", token.user_id, client_id=token.client_id, connector=connector,
                      auth_key=f"app:{token.client_id}")
        return actor, "oauth"

    def _apply_fault(self, rule: FaultRule, environ: dict[str, Any],
                     start_response: StartResponse) -> Iterable[bytes] | None:
        self.stats.bump("faults_injected")
        if rule.kind == "stall":
            time.sleep(rule.seconds)
            return None
        if rule.kind == "lag":
            environ["simulator.lag"] = rule.seconds
            return None
        if rule.kind == "truncate":
            return None
        _drain(environ)
        if rule.kind == "drop":
            raise ClientDisconnected("fault injection: connection dropped")
        if rule.html:
            body = rule.body if isinstance(rule.body, bytes) else (
                rule.body.encode("utf-8") if isinstance(rule.body, str) else html_error_page(rule.status))
            return _send(start_response, rule.status, body, "text/html")
        if rule.body is None:
            payload = errors.DEFAULT_FAULT_BODIES.get(
                rule.status, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"})
            return _send(start_response, rule.status, php_json(payload), "application/json; charset=utf-8")
        if isinstance(rule.body, dict):
            return _send(start_response, rule.status, php_json(rule.body), "application/json; charset=utf-8")
        raw = rule.body if isinstance(rule.body, bytes) else rule.body.encode("utf-8")
        return _send(start_response, rule.status, raw, "application/json; charset=utf-8")


def _drain(environ: dict[str, Any]) -> None:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > 0:
        environ["wsgi.input"].read(length)


def _send(start_response: StartResponse, status: int, body: bytes, ctype: str,
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status_line(status), [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                         *(headers or [])])
    return [body]


def _json(start_response: StartResponse, status: int, payload: Any) -> list[bytes]:
    return _send(start_response, status, php_json(payload), "application/json; charset=utf-8")


def _error(start_response: StartResponse, exc: RestError) -> list[bytes]:
    return _json(start_response, exc.status, exc.body())


def _truncated(start_response: StartResponse, body: bytes) -> Iterator[bytes]:
    start_response(status_line(200), [("Content-Type", "application/json; charset=utf-8"),
                                      ("Content-Length", str(len(body)))])
    yield body[: max(1, len(body) // 2)]
    raise ClientDisconnected("fault injection: response truncated")
