"""Browser sign-in for a local Bitrix24 app (RFC 8252 loopback redirect).

The sign-in owns a tiny HTTP server bound to 127.0.0.1 (port 0 = any free port, or a configured
one) that serves only ``GET /oauth/callback``. The user's browser is sent to
``<portal>/oauth/authorize/?client_id=…&response_type=code&state=…&redirect_uri=…``; the portal
sends it back to the callback with ``code`` and ``state``. ``state`` is unguessable
(``secrets.token_urlsafe``) and single use: a request without it, or with another value, gets
400 and no token request is made (a forged redirect cannot plant someone else's code); after
a successful exchange the state is spent. The code is exchanged at the token endpoint by the
app, not the browser, and the tokens go to the token store before anything uses them.

The server is separate from the event listener, so sign-in works whether or not that runs
(pull mode and offline events have no listener need at all).
"""

from __future__ import annotations

import html
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..errors import BitrixError, ListenerError
from .oauth import OAuthAuth

log = logging.getLogger(__name__)

CALLBACK_PATH = "/oauth/callback"
DEFAULT_TIMEOUT = 600.0  # ten minutes for a person to approve the app


@dataclass(frozen=True)
class SignInResult:
    """How a sign-in ended. ``error`` is a code: denied | exchange_failed | timeout | cancelled."""

    ok: bool
    error: str = ""
    detail: str = ""  # plain words, no secrets
    member_id: str = ""


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Deal Monitor</title></head>
<body style="font-family:sans-serif;margin:3em"><h2>{title}</h2><p>{text}</p></body></html>"""


class LoopbackSignIn:
    """One sign-in attempt: ``start()`` gives the address to open, ``wait()`` its outcome.

    ``on_done`` is called once, from the server's thread, with the result (the GUI turns it
    into a signal). ``cancel()`` ends the attempt (result ``cancelled``).
    """

    def __init__(
        self,
        oauth: OAuthAuth,
        port: int = 0,
        on_done: Callable[[SignInResult], None] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.oauth = oauth
        self.host = host
        self.port = port
        self.on_done = on_done
        self._state = ""
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: SignInResult | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.forged = 0  # callbacks refused for a wrong or missing state

    @property
    def redirect_uri(self) -> str:
        return f"http://{self.host}:{self.port}{CALLBACK_PATH}"

    def start(self) -> str:
        """Bind the loopback server and return the portal address the browser must open."""
        self._state = secrets.token_urlsafe(32)
        handler = _handler_for(self)
        try:
            self._server = ThreadingHTTPServer((self.host, self.port), handler)
        except OSError as exc:
            raise ListenerError(
                f"cannot take the sign-in redirect on {self.host}:{self.port}: "
                f"{exc.strerror or exc}",
                "Another program uses this port: stop it or change portal.signin_port (and the "
                "application's handler path in the portal).",
            ) from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-signin",
                                        daemon=True)
        self._thread.start()
        log.info("sign-in: waiting for the portal's redirect on %s", self.redirect_uri)
        return self.oauth.authorize_url(self._state, self.redirect_uri)

    def wait(self, timeout: float | None = DEFAULT_TIMEOUT) -> SignInResult:
        """Block until the sign-in ends (or ``timeout``: result ``timeout``); stops the server."""
        if not self._done.wait(timeout):
            self._finish(SignInResult(False, "timeout", "no redirect came back in time"))
        self._close()
        assert self._result is not None
        return self._result

    def cancel(self) -> None:
        self._finish(SignInResult(False, "cancelled", "sign-in cancelled"))
        self._close()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- the callback ----------------------------------------------------------------------
    def handle_callback(self, query: str) -> tuple[int, str, str, SignInResult | None]:
        """(HTTP status, page title, page text, how the sign-in ended or None) for one callback.

        The caller ends the sign-in with the result only after the page is sent: a headless
        ``authorize`` exits as soon as it ends, and the browser must still get its page.
        """
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        with self._lock:
            expected = self._state
            given = params.get("state", "")
            if not expected or not given or not secrets.compare_digest(expected, given):
                self.forged += 1
                log.warning("sign-in: a redirect with a wrong or missing state was refused")
                return (400, "Sign-in refused", "This sign-in link is not valid (state mismatch).",
                        None)
            self._state = ""  # single use, whatever happens next
        if params.get("error"):
            return (400, "Sign-in failed", "The portal did not grant access. Try again.",
                    SignInResult(False, "denied", f"the portal answered: {params['error']}"))
        code = params.get("code", "")
        if not code:
            return (400, "Sign-in failed", "The portal sent no authorization code.",
                    SignInResult(False, "exchange_failed", "the redirect carried no code"))
        try:
            tokens = self.oauth.exchange_code(code, self.redirect_uri)
        except BitrixError as exc:
            return (502, "Sign-in failed", "The portal refused the sign-in. Check the client secret.",
                    SignInResult(False, "exchange_failed", f"{exc.code}: {exc.description}"))
        return (200, "Signed in", "Deal Monitor is connected. You can close this tab.",
                SignInResult(True, member_id=tokens.member_id))

    def _finish(self, result: SignInResult) -> None:
        with self._lock:
            if self._result is not None:
                return
            self._result = result
            self._state = ""
        self._done.set()
        if result.ok:
            log.info("sign-in done")
        else:
            log.warning("sign-in ended: %s (%s)", result.error, result.detail)
        if self.on_done is not None:
            try:
                self.on_done(result)
            except Exception:
                log.exception("sign-in callback failed")
        # stop serving from another thread: shutdown() waits for serve_forever to return
        threading.Thread(target=self._close, name="oauth-signin-stop", daemon=True).start()

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def _handler_for(signin: LoopbackSignIn) -> type[BaseHTTPRequestHandler]:
    class CallbackHandler(BaseHTTPRequestHandler):
        server_version = "DealMonitor"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            parts = urlsplit(self.path)
            if parts.path != CALLBACK_PATH:
                self._reply(404, "Not found", "")
                return
            status, title, text, result = signin.handle_callback(parts.query)
            self._reply(status, title, text)
            if result is not None:
                signin._finish(result)

        def _reply(self, status: int, title: str, text: str) -> None:
            body = PAGE.format(title=html.escape(title), text=html.escape(text)).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            pass  # the query holds the code: never log request lines

    return CallbackHandler
