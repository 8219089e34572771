"""The crash dialog: an unexpected exception is logged and shown, and the app keeps running.

``sys.excepthook`` catches exceptions raised in slots and event handlers on the GUI thread;
``threading.excepthook`` those of other threads, which are handed to the GUI thread by a
queued signal. The text shown and logged passes the secret filter first.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..logs import secrets as secret_registry
from . import icons
from .widgets import bold

log = logging.getLogger("deal_monitor.crash")


class CrashDialog(QDialog):
    """What happened, in words, with the details one click away."""

    def __init__(self, summary: str, details: str, log_dir: Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Deal Monitor: unexpected error"))
        self.setWindowIcon(icons.icon("tray_attention"))
        self.setMinimumWidth(600)
        self.log_dir = log_dir
        icon = QLabel(self)
        icon.setPixmap(icons.icon("tray_attention").pixmap(40, 40))
        heading = QLabel(self.tr("Something went wrong inside Deal Monitor"), self)
        heading.setFont(bold(self.font(), 2))
        text = QLabel(self.tr(
            "The app keeps running and no received event is lost: events wait in the local "
            "inbox until they are synced. If this happens again, send the details below to "
            "your administrator."), self)
        text.setWordWrap(True)
        what = QLabel(summary, self)
        what.setWordWrap(True)
        what.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        what.setStyleSheet("color: #B42318;")
        self.details = QPlainTextEdit(details, self)
        self.details.setReadOnly(True)
        self.details.setVisible(False)
        toggle = QPushButton(self.tr("Show details"), self)
        toggle.setCheckable(True)
        toggle.toggled.connect(self._show_details)
        toggle.toggled.connect(
            lambda on: toggle.setText(self.tr("Hide details") if on else self.tr("Show details")))
        copy = QPushButton(self.tr("Copy details"), self)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(f"{summary}\n\n{details}"))
        logs = QPushButton(self.tr("Open the log folder"), self)
        logs.setVisible(log_dir is not None)
        logs.clicked.connect(self._open_logs)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        head = QHBoxLayout()
        head.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        head_text = QVBoxLayout()
        head_text.addWidget(heading)
        head_text.addWidget(text)
        head.addLayout(head_text, 1)
        row = QHBoxLayout()
        row.addWidget(toggle)
        row.addWidget(copy)
        row.addWidget(logs)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(head)
        layout.addWidget(what)
        layout.addLayout(row)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)
        self._show_details(False)

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.adjustSize()
        if shown:
            self.resize(max(self.width(), 680), max(self.height(), 480))

    def _open_logs(self) -> None:
        if self.log_dir is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_dir)))


class CrashReporter(QObject):
    """Installs the hooks; ``crashed(summary, details)`` fires on the GUI thread."""

    crashed = Signal(str, str)

    def __init__(self, log_dir: Path | None = None, parent: QObject | None = None,
                 interactive: bool = True) -> None:
        super().__init__(parent)
        self.log_dir = log_dir
        self.interactive = interactive
        self.reports: list[tuple[str, str]] = []
        self._showing = False
        self._previous_hook = sys.excepthook
        self._previous_thread_hook = threading.excepthook
        self.crashed.connect(self.on_crashed, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook

    def uninstall(self) -> None:
        sys.excepthook = self._previous_hook
        threading.excepthook = self._previous_thread_hook

    def excepthook(self, exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            self._previous_hook(exc_type, exc, tb)
            return
        self._report(exc_type, exc, tb)

    def thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        self._report(args.exc_type, args.exc_value, args.exc_traceback,
                     args.thread.name if args.thread else "")

    def _report(self, exc_type, exc, tb, thread: str = "") -> None:
        details = secret_registry.redact("".join(traceback.format_exception(exc_type, exc, tb)))
        summary = secret_registry.redact(f"{exc_type.__name__}: {exc}")
        if thread:
            summary += f" [{thread}]"
        log.error("unexpected error: %s\n%s", summary, details)
        with contextlib.suppress(RuntimeError):  # the app may be shutting down
            self.crashed.emit(summary, details)

    def on_crashed(self, summary: str, details: str) -> None:
        self.reports.append((summary, details))
        if not self.interactive or self._showing:
            return
        self._showing = True
        try:
            CrashDialog(summary, details, self.log_dir).exec()
        finally:
            self._showing = False


__all__ = ["CrashDialog", "CrashReporter"]
