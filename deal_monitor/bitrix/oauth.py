"""OAuth for a local Bitrix24 app: code exchange, refresh on ``expired_token``, rotation.

Refresh tokens rotate: every refresh returns a new one and the old one stops working. Two
threads refreshing at once would leave one of them with a dead token (``invalid_grant``), so
refresh is single-flight: a caller whose failed call used an access token that is no longer
current simply retries with the new one. The new tokens are stored in the secret store before
they are used. ``invalid_grant`` (or a removed app) puts the portal into a "re-authorize"
state that stops refresh attempts until the user authorizes again; it never loops.

The REST address is always the configured portal URL, never ``client_endpoint`` or
``server_endpoint`` from an event body.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

import requests

from ..credentials import SecretStore, SecretStoreUnavailable
from ..errors import BitrixError
from ..logs import secrets as secret_registry

log = logging.getLogger(__name__)

TOKENS_KEY = "oauth_tokens"
CLIENT_SECRET_KEY = "client_secret"
DEFAULT_OAUTH_SERVER = "https://oauth.bitrix.info"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires: float = 0.0
    member_id: str = ""

    @classmethod
    def from_reply(cls, data: dict) -> Tokens:
        try:
            expires = float(data.get("expires") or time.time() + float(data.get("expires_in") or 3600))
        except (TypeError, ValueError):
            expires = time.time() + 3600
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires=expires,
            member_id=str(data.get("member_id") or ""),
        )


class ReauthorizeNeeded(BitrixError):
    """The app must be authorized again by a person (refresh token dead, app removed)."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid_grant", reason, 401)


class OAuthAuth:
    """Auth for a local app: ``auth=<access_token>`` on every call, refreshed when expired."""

    def __init__(
        self,
        portal_url: str,
        client_id: str,
        store: SecretStore,
        oauth_server: str = DEFAULT_OAUTH_SERVER,
        session: requests.Session | None = None,
        timeout: float = 15.0,
        token_store: SecretStore | None = None,
        client_secret: str = "",
    ) -> None:
        self.portal_url = portal_url.rstrip("/")
        self.client_id = client_id
        self.store = store  # the client secret (keyring) when not given here
        self.token_store = token_store or store  # the tokens (keyring, or an owner-only file)
        self._configured_secret = client_secret
        secret_registry.add(client_secret)
        self.oauth_server = (oauth_server or DEFAULT_OAUTH_SERVER).rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._tokens: Tokens | None = self._load()
        self.needs_reauthorization = self._tokens is None
        self.reason = "" if self._tokens else "not authorized yet"
        self.refreshes = 0

    # -- the Auth protocol ------------------------------------------------------------------
    def url_for(self, method: str) -> str:
        return f"{self.portal_url}/rest/{method}.json"

    def auth_params(self) -> dict[str, str]:
        tokens = self._tokens
        if tokens is None or self.needs_reauthorization:
            raise ReauthorizeNeeded(self.reason or "not authorized")
        return {"auth": tokens.access_token}

    def recover(self, error: BitrixError) -> bool:
        """After ``expired_token``: refresh once (or notice another thread did); True = retry."""
        if error.code != "expired_token":
            if error.code in ("invalid_token", "NOT_INSTALLED", "ERROR_OAUTH", "PAYMENT_REQUIRED"):
                self._need_reauthorization(f"{error.code}: {error.description}")
            return False
        used = getattr(error, "auth_used", None)
        with self._lock:
            current = self._tokens
            if current is None or self.needs_reauthorization:
                return False
            if used is not None and used != current.access_token:
                return True  # someone refreshed while our call was in flight
            self._refresh(current)
            return True

    # -- token management --------------------------------------------------------------------
    def _load(self) -> Tokens | None:
        try:
            raw = self.token_store.get(TOKENS_KEY)
        except SecretStoreUnavailable as exc:
            log.warning("cannot read OAuth tokens: %s", exc)
            return None
        if not raw:
            return None
        try:
            tokens = Tokens(**json.loads(raw))
        except (ValueError, TypeError):
            return None
        secret_registry.add(tokens.access_token, tokens.refresh_token)
        return tokens

    def _save(self, tokens: Tokens) -> None:
        secret_registry.add(tokens.access_token, tokens.refresh_token)
        self.token_store.set(TOKENS_KEY, json.dumps(asdict(tokens)))
        self._tokens = tokens
        self.needs_reauthorization = False
        self.reason = ""

    def _client_secret(self) -> str:
        if self._configured_secret:
            return self._configured_secret
        try:
            secret = self.store.get(CLIENT_SECRET_KEY) or ""
        except SecretStoreUnavailable:
            secret = ""
        secret_registry.add(secret)
        return secret

    def _need_reauthorization(self, reason: str) -> None:
        self.needs_reauthorization = True
        self.reason = reason
        log.error("the portal needs a new authorization: %s", reason)

    def _token_request(self, params: dict[str, str]) -> dict:
        url = f"{self.oauth_server}/oauth/token/?{urlencode(params)}"
        try:
            response = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise BitrixError("NETWORK_ERROR", type(exc).__name__) from None
        try:
            data = response.json()
        except ValueError:
            raise BitrixError("ERROR_UNEXPECTED_ANSWER", f"OAuth server HTTP {response.status_code}",
                              response.status_code if response.status_code >= 500 else 502) from None
        if not isinstance(data, dict):
            raise BitrixError("ERROR_UNEXPECTED_ANSWER", "OAuth reply is not an object", 502)
        if "error" in data:
            raise BitrixError(str(data["error"]), str(data.get("error_description") or ""),
                              response.status_code)
        return data

    def _refresh(self, current: Tokens) -> None:
        secret = self._client_secret()
        try:
            data = self._token_request(
                {
                    "grant_type": "refresh_token",
                    "client_id": self.client_id,
                    "client_secret": secret,
                    "refresh_token": current.refresh_token,
                }
            )
        except BitrixError as exc:
            if exc.code in ("invalid_grant", "invalid_client", "PAYMENT_REQUIRED", "NOT_INSTALLED"):
                self._need_reauthorization(f"{exc.code}: {exc.description}".rstrip(": "))
                raise ReauthorizeNeeded(self.reason) from None
            raise
        tokens = Tokens.from_reply(data)
        self._save(tokens)  # stored before it is ever used
        self.refreshes += 1
        log.info("access token refreshed")

    def exchange_code(self, code: str, redirect_uri: str = "") -> Tokens:
        """The authorization-code step after the user approved the app in the portal."""
        params = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "client_secret": self._client_secret(),
            "code": code,
        }
        if redirect_uri:
            params["redirect_uri"] = redirect_uri  # RFC 6749 4.1.3: as in the authorize request
        data = self._token_request(params)
        tokens = Tokens.from_reply(data)
        with self._lock:
            self._save(tokens)
        return tokens

    def install(self, access_token: str, refresh_token: str, member_id: str = "") -> None:
        """Tokens from ONAPPINSTALL or the install callback."""
        with self._lock:
            self._save(Tokens(access_token, refresh_token, time.time() + 3600, member_id))

    def forget(self, reason: str) -> None:
        """ONAPPUNINSTALL: drop the tokens; only a new install or authorization helps."""
        with self._lock:
            self._tokens = None
            with contextlib.suppress(SecretStoreUnavailable):
                self.token_store.delete(TOKENS_KEY)
            self._need_reauthorization(reason)

    def has_client_secret(self) -> bool:
        return bool(self._client_secret())

    def authorize_url(self, state: str = "", redirect_uri: str = "") -> str:
        """Where the user approves the app (the code comes back to the redirect URI)."""
        params = {"client_id": self.client_id}
        if state or redirect_uri:
            params["response_type"] = "code"
        if state:
            params["state"] = state
        if redirect_uri:
            params["redirect_uri"] = redirect_uri
        return f"{self.portal_url}/oauth/authorize/?{urlencode(params)}"
