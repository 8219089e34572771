"""The waitress server that runs the listener app on its own thread.

waitress has no supported stop-from-code, so ``stop`` asks the server's own loop (through
its trigger) to close every channel, which ends ``run``; then the worker threads are shut
down. Limits are set on purpose (see docs/reliability.md): small bodies and headers, short
idle timeout, bounded connections, no tracebacks to the client.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading

from waitress import wasyncore
from waitress.server import create_server

from ..errors import ListenerError

log = logging.getLogger(__name__)

MIN_WAITRESS = (3, 0, 2)


def _check_waitress() -> None:
    try:
        version = importlib.metadata.version("waitress")
    except importlib.metadata.PackageNotFoundError:
        return  # a frozen build may carry no package metadata; it bundles the pinned version
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MIN_WAITRESS:
        raise ListenerError(f"waitress {version} is too old; 3.0.2 or newer is required")


class ListenerServer:
    """Owns one waitress server bound to host:port."""

    def __init__(
        self,
        app,
        host: str = "127.0.0.1",
        port: int = 8765,
        trusted_proxy: str = "",
        threads: int = 4,
        max_body: int = 64 * 1024,
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.trusted_proxy = trusted_proxy
        self.threads = threads
        self.max_body = max_body
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port) if self._server else self.requested_port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        _check_waitress()
        options = {
            "host": self.host,
            "port": self.requested_port,
            "threads": self.threads,
            "connection_limit": 100,
            "channel_timeout": 20,
            "cleanup_interval": 5,
            "max_request_body_size": self.max_body,
            "max_request_header_size": 16 * 1024,
            "expose_tracebacks": False,
            "ident": "DealMonitor",
            "asyncore_use_poll": True,
            "channel_request_lookahead": 0,
            "clear_untrusted_proxy_headers": True,
        }
        if self.trusted_proxy:
            options["trusted_proxy"] = self.trusted_proxy
            options["trusted_proxy_headers"] = {"x-forwarded-for", "x-forwarded-proto"}
            options["trusted_proxy_count"] = 1
        try:
            self._server = create_server(self.app, **options)
        except OSError as exc:
            raise ListenerError(
                f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}"
            ) from None
        if self._server.adj.expose_tracebacks:  # pragma: no cover - guarded above
            raise ListenerError("expose_tracebacks must stay off")
        self._thread = threading.Thread(target=self._run, name="listener", daemon=True)
        self._thread.start()
        log.info("listening on http://%s:%s", self.host, self.port)

    def _run(self) -> None:
        server = self._server
        try:
            server.run()
        except Exception:  # health then says "listener not listening" (running is False)
            log.exception("the listener stopped")
        finally:
            server.task_dispatcher.shutdown(cancel_pending=False, timeout=5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish, close the socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        socket_map = server._map
        server.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map))
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():  # pragma: no cover - should not happen
                log.warning("listener thread did not stop within %.0f s", timeout)
        self._server = None
        self._thread = None
