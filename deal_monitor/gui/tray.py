"""The tray icon: the state at a glance, a menu, and notifications.

Green means everything received has been synced and nothing failed; blue means work is
queued; amber means processing is paused; red means something needs the user (a failed
deal, the listener down, the portal refusing the webhook). The icon never animates.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from ..model import StatusSnapshot
from . import icons, texts
from .controller import AppController, Notice

STATE_ICONS = {
    "ok": "tray_ok",
    "working": "tray_working",
    "paused": "tray_paused",
    "attention": "tray_attention",
}


class TrayIcon(QObject):
    """Owns the ``QSystemTrayIcon`` and its menu."""

    open_requested = Signal()
    quit_requested = Signal()
    problems_requested = Signal()
    deal_requested = Signal(int)

    def __init__(self, controller: AppController, parent: QObject | None = None,
                 available: Callable[[], bool] = QSystemTrayIcon.isSystemTrayAvailable) -> None:
        super().__init__(parent)
        self.controller = controller
        self.available = available()
        self.state = ""
        self.last_notice: Notice | None = None
        self.icon = QSystemTrayIcon(self)
        self.menu = QMenu()
        self.open_action = QAction(icons.app_icon(), "", self.menu)
        self.open_action.triggered.connect(self.open_requested)
        self.pause_action = QAction(self.menu)
        self.pause_action.triggered.connect(controller.toggle_pause)
        self.resync_all_action = QAction(icons.icon("resync_all"), "", self.menu)
        self.resync_all_action.triggered.connect(self._resync_all)
        self.problems_action = QAction(icons.icon("tray_attention"), "", self.menu)
        self.problems_action.triggered.connect(self._show_problems)
        self.quit_action = QAction("", self.menu)
        self.quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.open_action)
        self.menu.addSeparator()
        self.menu.addAction(self.pause_action)
        self.menu.addAction(self.resync_all_action)
        self.menu.addAction(self.problems_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.menu.setDefaultAction(self.open_action)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        self.icon.messageClicked.connect(self._on_message_clicked)
        controller.status_updated.connect(self.on_status_updated)
        self.retranslate()
        self.on_status_updated(controller.status)

    def show(self) -> None:
        if self.available:
            self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def retranslate(self) -> None:
        self.open_action.setText(self.tr("Open Deal Monitor"))
        self.resync_all_action.setText(self.tr("Resync all"))
        self.problems_action.setText(self.tr("Show problems"))
        self.quit_action.setText(self.tr("Quit"))
        self._update_pause()
        self.on_status_updated(self.controller.status)

    def _update_pause(self) -> None:
        paused = self.controller.status.paused
        self.pause_action.setText(self.tr("Resume processing") if paused
                                  else self.tr("Pause processing"))
        self.pause_action.setIcon(icons.icon("resume" if paused else "pause"))

    def tooltip(self, status: StatusSnapshot) -> str:
        state = self.controller.health()
        lines = [self.tr("Deal Monitor")]
        if state == "ok":
            lines.append(self.tr("All deals are synced"))
        elif state == "paused":
            lines.append(self.tr("Processing paused: %n event(s) waiting", "", status.inbox_depth))
        elif state == "working":
            lines.append(self.tr("Syncing: %n event(s) waiting", "", status.inbox_depth))
        else:
            if status.failed_count:
                lines.append(self.tr("%n event(s) failed", "", status.failed_count))
            if self.controller.start_error:
                lines.append(texts.error_text(self.controller.start_error))
            if self.controller.monitor.listen and not status.listening and self.controller.running:
                lines.append(self.tr("Not receiving events"))
            if status.last_error:
                lines.append(texts.error_text(status.last_error))
            if status.auth_state == "reauthorize":
                lines.append(self.tr("The portal refuses the webhook"))
        return "\n".join(lines)

    def on_status_updated(self, status: StatusSnapshot) -> None:
        state = self.controller.health()
        if state != self.state:
            self.state = state
            self.icon.setIcon(icons.icon(STATE_ICONS[state]))
        self.icon.setToolTip(self.tooltip(status))
        self.problems_action.setEnabled(state == "attention")
        self.resync_all_action.setEnabled(self.controller.running)
        self._update_pause()

    def notify(self, notice: Notice) -> bool:
        """Show a balloon; False when there is no tray to show it in."""
        if not self.available or not self.icon.isVisible():
            return False
        self.last_notice = notice
        kind = {
            "failure": QSystemTrayIcon.MessageIcon.Critical,
            "error": QSystemTrayIcon.MessageIcon.Warning,
        }.get(notice.kind, QSystemTrayIcon.MessageIcon.Information)
        self.icon.showMessage(notice.title, notice.text, kind, 10_000)
        return True

    def _resync_all(self) -> None:
        self.controller.resync_all()

    def _show_problems(self) -> None:
        self.open_requested.emit()
        self.problems_requested.emit()

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick):
            self.open_requested.emit()

    def _on_message_clicked(self) -> None:
        self.open_requested.emit()
        notice = self.last_notice
        if notice is None:
            return
        if notice.kind == "failure":
            self.problems_requested.emit()
        elif notice.deal_ids:
            self.deal_requested.emit(notice.deal_ids[0])

    def dispose(self) -> None:
        self.icon.hide()
        self.menu.deleteLater()


__all__ = ["TrayIcon"]
