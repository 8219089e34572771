"""The OAuth side of the portal: registered apps, authorization codes, token pairs.

Mirrors ``oauth.bitrix.info``: ``/oauth/token/`` exchanges a 30-second code or a refresh
token for a new pair (``expires_in`` 3600). ``/oauth/authorize/`` plays the portal's consent
page for a signed-in user (user 1) who approves at once: it redirects the browser to
``redirect_uri`` with ``code``, ``state`` (echoed), ``domain``, ``member_id``, ``scope`` and
``server_domain``, as the desktop sign-in of a local application expects. Refresh tokens rotate: each one works once.
Expired access tokens answer ``expired_token``; a revoked or uninstalled app answers
``invalid_token`` on REST and ``invalid_grant`` on refresh.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from . import errors

ACCESS_TTL = 3600
CODE_TTL = 30.0


@dataclass
class App:
    """A local app registered on the portal."""

    client_id: str
    client_secret: str
    scope: str
    application_token: str
    status: str = "L"
    version: int = 1
    installed: bool = False
    revoked: bool = False
    install_url: str | None = None


@dataclass
class Token:
    """One access/refresh pair issued to an app for a user."""

    access_token: str
    refresh_token: str
    client_id: str
    user_id: int
    expires_at: float
    scope: str
    extra: dict[str, Any] = field(default_factory=dict)


Identity = Callable[[], Mapping[str, str]]  # -> domain, member_id, client_endpoint, server_endpoint


def _token() -> str:
    return secrets.token_hex(35)


class OAuthServer:
    """Apps and tokens; thread-safe."""

    def __init__(self, identity: Identity, clock: Callable[[], float] = time.time) -> None:
        self._identity = identity
        self._clock = clock
        self._lock = threading.Lock()
        self.apps: dict[str, App] = {}
        self._codes: dict[str, tuple[str, int, float]] = {}
        self._access: dict[str, Token] = {}
        self._refresh: dict[str, Token] = {}
        self.refreshes = 0

    # -- apps -------------------------------------------------------------------------
    def register_app(self, client_id: str, client_secret: str, *, scope: str = "crm,user_brief",
                     application_token: str | None = None) -> App:
        with self._lock:
            app = App(client_id, client_secret, scope, application_token or secrets.token_hex(16))
            self.apps[client_id] = app
            return app

    def app(self, client_id: str | None = None) -> App:
        with self._lock:
            if client_id is None:
                if not self.apps:
                    raise LookupError("no app registered; call register_app() first")
                return list(self.apps.values())[-1]
            return self.apps[client_id]

    def revoke(self, client_id: str | None = None) -> None:
        app = self.app(client_id)
        with self._lock:
            app.revoked = True

    # -- codes and tokens -----------------------------------------------------------------
    def issue_code(self, client_id: str | None = None, user_id: int = 1) -> str:
        app = self.app(client_id)
        code = secrets.token_hex(35)
        with self._lock:
            self._codes[code] = (app.client_id, user_id, self._clock() + CODE_TTL)
        return code

    def issue_tokens(self, client_id: str, user_id: int) -> Token:
        app = self.app(client_id)
        with self._lock:
            return self._issue(app, user_id)

    def _issue(self, app: App, user_id: int) -> Token:
        token = Token(_token(), _token(), app.client_id, user_id,
                      self._clock() + ACCESS_TTL, app.scope)
        self._access[token.access_token] = token
        self._refresh[token.refresh_token] = token
        return token

    def expire_access_tokens(self) -> None:
        with self._lock:
            past = self._clock() - 1
            for token in self._access.values():
                token.expires_at = min(token.expires_at, past)

    def authenticate(self, access_token: str) -> Token:
        """The token behind ``auth=`` or the REST error the portal would answer."""
        with self._lock:
            token = self._access.get(access_token)
            if token is None:
                raise errors.no_auth_found()
            app = self.apps.get(token.client_id)
            if app is None or app.revoked:
                raise errors.invalid_token()
            if token.expires_at <= self._clock():
                raise errors.expired_token()
            return token

    def token_response(self, token: Token) -> dict[str, Any]:
        """The JSON body of a successful token request (key order as the OAuth server)."""
        ident = self._identity()
        app = self.apps[token.client_id]
        return {
            "access_token": token.access_token,
            "expires": int(token.expires_at),
            "expires_in": ACCESS_TTL,
            "scope": token.scope,
            "domain": ident["oauth_domain"],
            "server_endpoint": ident["server_endpoint"],
            "status": app.status,
            "client_endpoint": ident["client_endpoint"],
            "member_id": ident["member_id"],
            "user_id": token.user_id,
            "refresh_token": token.refresh_token,
        }

    def token_request(self, params: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Serve ``/oauth/token/``; returns (HTTP status, JSON body)."""
        grant = str(params.get("grant_type", ""))
        client_id = str(params.get("client_id", ""))
        secret = str(params.get("client_secret", ""))
        with self._lock:
            app = self.apps.get(client_id)
            if grant not in {"authorization_code", "refresh_token"}:
                return 400, {"error": "invalid_request",
                             "error_description": "Invalid grant_type parameter"}
            if app is None or not secrets.compare_digest(app.client_secret, secret):
                return 401, {"error": "invalid_client",
                             "error_description": "Invalid client credentials"}
            if grant == "authorization_code":
                entry = self._codes.pop(str(params.get("code", "")), None)
                if entry is None or entry[0] != client_id or entry[2] < self._clock() or app.revoked:
                    return 400, {"error": "invalid_grant"}
                token = self._issue(app, entry[1])
            else:
                old = self._refresh.pop(str(params.get("refresh_token", "")), None)
                if old is None or old.client_id != client_id or app.revoked:
                    return 400, {"error": "invalid_grant"}
                token = self._issue(app, old.user_id)
                self.refreshes += 1
        return 200, self.token_response(token)

    def authorize(self, params: Mapping[str, Any], user_id: int = 1) -> tuple[int, str]:
        """Serve ``/oauth/authorize/``: (302, Location) on approval, else (400, reason).

        Without ``redirect_uri`` the app's registered handler would be used; the simulator
        knows none, so one is required. Denied apps (revoked) get ``error=access_denied``.
        """
        client_id = str(params.get("client_id", ""))
        redirect = str(params.get("redirect_uri", ""))
        with self._lock:
            app = self.apps.get(client_id)
        if app is None:
            return 400, "unknown client_id"
        if urlsplit(redirect).scheme not in ("http", "https") or not urlsplit(redirect).netloc:
            return 400, "redirect_uri missing or not an http(s) URL"
        ident = self._identity()
        reply: dict[str, Any] = {}
        if app.revoked:
            reply["error"] = "access_denied"
        else:
            code = self.issue_code(client_id, user_id)
            reply.update(code=code, domain=ident["domain"], member_id=ident["member_id"],
                         scope=app.scope, server_domain=ident["oauth_domain"])
        if params.get("state") is not None:
            reply["state"] = str(params["state"])
        joiner = "&" if urlsplit(redirect).query else "?"
        return 302, f"{redirect}{joiner}{urlencode(reply)}"

    def event_token(self, client_id: str, user_id: int) -> Token:
        """A valid access token for event envelopes (reused until it expires)."""
        with self._lock:
            now = self._clock()
            for token in self._access.values():
                if (token.client_id == client_id and token.user_id == user_id
                        and token.expires_at - now > 60 and token.extra.get("event")):
                    return token
            token = self._issue(self.apps[client_id], user_id)
            token.extra["event"] = True
            return token
