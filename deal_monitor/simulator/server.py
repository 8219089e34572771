"""Running a WSGI app under waitress in a daemon thread, with a real ``stop()``.

waitress has no supported stop-from-code, so the server is built with ``create_server`` and
driven by our own poll loop that checks a stop flag; ``stop()`` wakes the loop through
waitress' trigger pipe, closes every channel and the listening socket from the loop thread
and shuts the worker threads down, leaving no thread or socket behind.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from waitress import wasyncore
from waitress.server import create_server


class ThreadedServer:
    """One waitress server on (host, port); port 0 picks a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 16) -> None:
        self._server = create_server(
            app, host=host, port=port, threads=threads, ident="nginx",
            channel_timeout=30, cleanup_interval=5, expose_tracebacks=False,
            log_socket_errors=False,
        )
        self.host = host
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"b24sim-http-{self.port}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        socket_map = self._server._map
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=0.5, map=socket_map, use_poll=True, count=1)
        finally:
            for dispatcher in list(socket_map.values()):
                with contextlib.suppress(OSError):
                    dispatcher.close()
            socket_map.clear()

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.pull_trigger()
        self._thread.join(timeout)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
