"""The advanced part of a local application's connection: OAuth server and sign-in port.

Shared by the first-run wizard and the Settings dialog. A cloud portal leaves it alone (the
defaults are shown as placeholders and used when the fields are empty); an on-premise portal
enters its own OAuth address, and a fixed sign-in port is for a local application whose
handler path in the portal names one. The values are checked by the core's own rules
(``config.check_secure_url`` and the ``portal.signin_port`` range), never by a second copy.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import config
from ..bitrix.oauth import DEFAULT_OAUTH_SERVER
from ..config import ConfigError, PortalSettings
from . import texts
from .widgets import InlineMessage

KEYS = ("portal.oauth_server", "portal.signin_port", "portal.allow_private_http")


class OAuthAdvanced(QWidget):
    """A "Advanced" toggle and, under it, the OAuth server, the sign-in port and plain http."""

    def __init__(self, portal: PortalSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle = QToolButton(self)
        self.toggle.setCheckable(True)
        self.toggle.setAutoRaise(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.toggled.connect(self.set_expanded)
        self.body = QWidget(self)
        self.server = QLineEdit(portal.oauth_server, self.body)
        self.server.setPlaceholderText(DEFAULT_OAUTH_SERVER)
        self.port = QLineEdit(str(portal.signin_port) if portal.signin_port else "", self.body)
        self.port.setPlaceholderText(self.tr("automatic"))
        self.port.setMaximumWidth(120)
        self.private_http = QCheckBox(self.tr("Allow plain http:// in the local network"),
                                      self.body)
        self.private_http.setChecked(portal.allow_private_http)
        self.message = InlineMessage(self.body)
        self.note = _hint(self.body, self.tr(
            "A cloud portal (an address in bitrix24.ru, bitrix24.com, …) needs none of this: "
            "leave it as it is."))
        server_hint = _hint(self.body, self.tr(
            "Empty: %1, the server of every cloud portal. An on-premise portal (on your own "
            "server) uses its own address, for example https://crm.example.com.").replace(
                "%1", DEFAULT_OAUTH_SERVER))
        port_hint = _hint(self.body, self.tr(
            "The port on this computer the browser returns to after you approve the "
            "application. Empty: any free port. Enter a number only when the application's "
            "handler path in the portal names one (http://127.0.0.1:8766/oauth/callback → "
            "8766)."))
        form = QFormLayout(self.body)
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(8)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow(self.note)
        # hints as rows of their own: a wrapped label nested in a row is measured too short
        form.addRow(self.tr("OAuth server"), self.server)
        form.addRow("", server_hint)
        form.addRow(self.tr("Sign-in port"), self.port)
        form.addRow("", port_hint)
        form.addRow("", self.private_http)
        form.addRow("", _hint(self.body, self.tr(
            "Only for an on-premise portal at a private address (192.168.…, 10.…); never over "
            "the internet.")))
        form.addRow("", self.message)
        # as tall as its content: folded, it must not take the page's spare room
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(self.body)
        # open from the start when something is set: the user should see what is in force
        self.set_expanded(bool(portal.oauth_server or portal.signin_port
                               or portal.allow_private_http))

    def set_expanded(self, expanded: bool) -> None:
        self.toggle.blockSignals(True)
        self.toggle.setChecked(expanded)
        self.toggle.blockSignals(False)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.toggle.setText(self.tr("Advanced: OAuth server and sign-in port"))
        self.body.setVisible(expanded)
        self.updateGeometry()
        if expanded:
            QTimer.singleShot(0, self._fit_window)

    def _fit_window(self) -> None:
        """Make the window tall enough for the opened part (its hints wrap; never clipped)."""
        top = self.window()
        layout = top.layout() if top is not None else None
        if layout is None or not top.isVisible():
            return
        layout.activate()
        width = top.width()
        needed = (layout.totalHeightForWidth(width) if layout.hasHeightForWidth()
                  else layout.totalSizeHint().height())
        screen = top.screen().availableGeometry().height() if top.screen() else needed
        if top.height() < needed:
            top.resize(width, min(needed, screen))

    def portal_changes(self) -> dict[str, Any]:
        """The entered values as ``portal`` keys; raises ConfigError (the core's own checks)."""
        server = self.server.text().strip().rstrip("/")
        allow = self.private_http.isChecked()
        if server:
            config.check_secure_url("portal.oauth_server", server, allow)
        entered = self.port.text().strip()
        port: Any = 0
        if entered:
            try:
                port = int(entered)
            except ValueError:
                port = entered  # the core says "must be a whole number"
        config.from_mapping({"portal": {"signin_port": port}}, env={})
        return {"oauth_server": server, "signin_port": port, "allow_private_http": allow}

    def show_problem(self, exc: ConfigError) -> bool:
        """Show a problem of one of these keys under the fields (opened); False if not ours."""
        if exc.key not in KEYS:
            return False
        self.set_expanded(True)
        label = {"portal.oauth_server": self.tr("OAuth server"),
                 "portal.signin_port": self.tr("Sign-in port")}.get(exc.key, "")
        problem = texts.config_problem_text(exc.key, exc.problem)
        self.message.show_error(f"{label}: {problem}" if label else problem)
        return True

    def clear_problem(self) -> None:
        self.message.clear_message()


def _hint(parent: QWidget, text: str) -> QLabel:
    hint = QLabel(text, parent)
    hint.setWordWrap(True)
    hint.setStyleSheet("color: #5B6675;")
    return hint


__all__ = ["OAuthAdvanced"]
