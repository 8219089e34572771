"""One window at a time: a second start asks the first to show its window, then exits.

Which start is the first is decided by a lock file (``claim()``), taken before anything slow:
a second start that finds it held waits for the first to answer on its local socket (a named
pipe on Windows) and never takes that socket over, however long the first takes to start.
The names are derived from the user and the settings file, so two users of one computer do
not meet. (The data folder has its own lock, shared with the headless service:
deal_monitor/instance.py.)
"""

from __future__ import annotations

import getpass
import hashlib
import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from .. import paths
from ..instance import InstanceLock

MESSAGE = b"show\n"


def instance_key(config_path: str) -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name on some service accounts
        user = "user"
    digest = hashlib.sha256(f"{user}|{config_path}".encode()).hexdigest()[:16]
    return f"DealMonitor-{digest}"


class SingleInstance(QObject):
    """``activated`` fires when another start asked this instance to come forward."""

    activated = Signal()

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.server: QLocalServer | None = None
        self.lock = InstanceLock(paths.config_dir(), f"{key}.lock")

    def claim(self) -> bool:
        """Become the first window (the lock is held until ``close()``); False if another is."""
        return self.lock.acquire()

    def notify_first(self, wait_s: float = 30.0) -> bool:
        """Ask the first window to show itself, waiting while it is still starting (it listens
        only once it got that far). False if it never answered, or if it exited meanwhile and
        this start took its place (then ``lock.held``)."""
        deadline = time.monotonic() + wait_s
        while not self.notify_running(300):
            if self.claim() or time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def notify_running(self, timeout_ms: int = 800) -> bool:
        """True if an instance is running (it was asked to show its window)."""
        socket = QLocalSocket(self)
        socket.connectToServer(self.key)
        if not socket.waitForConnected(timeout_ms):
            socket.deleteLater()
            return False
        socket.write(MESSAGE)
        socket.flush()
        socket.waitForBytesWritten(timeout_ms)
        socket.disconnectFromServer()
        socket.deleteLater()
        return True

    def listen(self) -> bool:
        """Become the running instance (removes a socket left by a crashed one)."""
        QLocalServer.removeServer(self.key)
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.key):
            return False
        server.newConnection.connect(self._on_connection)
        self.server = server
        return True

    def _on_connection(self) -> None:
        assert self.server is not None
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._on_ready(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._on_ready(socket)

    def _on_ready(self, socket: QLocalSocket) -> None:
        if bytes(socket.readAll().data()).startswith(MESSAGE.strip()):
            self.activated.emit()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self.lock.release()


__all__ = ["SingleInstance", "instance_key"]
