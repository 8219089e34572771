"""One instance at a time: a second start asks the first to show its window, then exits.

The running instance listens on a local socket (a named pipe on Windows) whose name is
derived from the user and the settings file, so two users of one computer do not meet.
"""

from __future__ import annotations

import getpass
import hashlib

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

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


__all__ = ["SingleInstance", "instance_key"]
