"""The "sign in again" bar: shown while the portal needs a new browser sign-in (app mode).

The core says so in ``StatusSnapshot.auth_state == "reauthorize"`` with ``auth_reason``
(refresh token dead, app removed, never signed in). The button starts the core's loopback
sign-in and opens the system browser; the outcome comes back from the sign-in server's thread
through a queued signal.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QWidget

from ..errors import DealMonitorError
from ..model import StatusSnapshot
from . import texts
from .tasks import run_in_background
from .widgets import MessageBar

APP_MODES = ("app", "app_offline")


class SignInBar(MessageBar):
    finished = Signal(object)  # SignInResult, emitted from the sign-in server's thread

    def __init__(self, controller, parent: QWidget | None = None) -> None:
        super().__init__(parent, closable=False)
        self.controller = controller
        self.open_url: Callable[[str], object] = lambda url: QDesktopServices.openUrl(QUrl(url))
        self.waiting = False
        self.action_triggered.connect(self.sign_in)
        self.finished.connect(self._finished)

    def update_status(self, status: StatusSnapshot) -> None:
        if self.waiting:
            return
        if status.auth_state == "reauthorize" and status.connection_mode in APP_MODES:
            reason = texts.error_text(status.auth_reason) if status.auth_reason else ""
            text = self.tr("The portal needs a new sign-in; until then nothing is read from it.")
            if reason:
                text += " (" + reason + ")"
            self.show_message("warning", text, self.tr("Sign in again"))
        elif self.kind == "warning":
            self.dismiss()

    def sign_in(self) -> None:
        try:
            url = self.controller.monitor.start_sign_in(self.finished.emit)
        except DealMonitorError as exc:
            self.show_message("error", texts.error_text(f"{exc} {getattr(exc, 'hint', '')}".strip()),
                              self.tr("Sign in again"))
            return
        self.waiting = True
        self.show_message("info", texts.sign_in_waiting())
        self.open_url(url)

    def _finished(self, result) -> None:
        self.waiting = False
        if result.ok:
            self.show_message("success", self.tr("Signed in to the portal again."),
                              timeout_ms=10_000)
            self.controller.refresh_status()
            monitor = self.controller.monitor
            if monitor.connection_mode() == "app_offline" and monitor.client is not None:
                run_in_background(lambda: monitor.bind_handlers(offline=True),
                                  on_error=self._bind_failed, name="bind-offline", owner=self)
        else:
            self.show_message("error", texts.sign_in_error(result.error),
                              self.tr("Sign in again"))

    def _bind_failed(self, exc: Exception) -> None:
        self.show_message("warning", texts.offline_bind_failed(str(exc)),
                          self.tr("Sign in again"))


__all__ = ["SignInBar"]
