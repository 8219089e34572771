"""Small widgets shared by the window and the dialogs: message bars and inline messages."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import icons

_STYLES = {
    "error": ("#FDECEC", "#E3A1A1", "#8A1C1C", "tray_attention"),
    "failure": ("#FDECEC", "#E3A1A1", "#8A1C1C", "tray_attention"),
    "warning": ("#FFF6E0", "#E8C77A", "#6B4A00", "tray_paused"),
    "production": ("#E9F7EE", "#9FD3B1", "#14532D", "tray_ok"),
    "success": ("#E9F7EE", "#9FD3B1", "#14532D", "tray_ok"),
    "info": ("#EAF1FC", "#A9C2EC", "#173B7A", "tray_working"),
}


class MessageBar(QFrame):
    """A coloured bar with an icon, a message, an optional action button and a close button."""

    action_triggered = Signal()
    closed = Signal()

    def __init__(self, parent: QWidget | None = None, closable: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.kind = "info"
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.setSpacing(8)
        self.icon = QLabel(self)
        self.icon.setFixedSize(18, 18)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.action = QPushButton(self)
        self.action.setVisible(False)
        self.action.clicked.connect(self.action_triggered)
        self.close_button = QToolButton(self)
        self.close_button.setIcon(icons.icon("cancel"))
        self.close_button.setAutoRaise(True)
        self.close_button.setVisible(closable)
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self._hide_timer = QTimer(self)
        self._hide_timer.setSingleShot(True)
        self._hide_timer.timeout.connect(self.dismiss)
        self.setVisible(False)

    def show_message(
        self, kind: str, text: str, action: str = "", timeout_ms: int = 0, title: str = ""
    ) -> None:
        self.kind = kind
        background, border, color, icon_name = _STYLES.get(kind, _STYLES["info"])
        self.setStyleSheet(
            f"#messageBar {{ background: {background}; border: 1px solid {border};"
            f" border-radius: 4px; }} #messageBar QLabel {{ color: {color}; }}"
        )
        self.icon.setPixmap(icons.icon(icon_name).pixmap(18, 18))
        self.text.setText(f"{title}: {text}" if title else text)
        self.action.setText(action)
        self.action.setVisible(bool(action))
        self._hide_timer.stop()
        if timeout_ms:
            self._hide_timer.start(timeout_ms)
        self.setVisible(True)

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self._hide_timer.stop()
        if self.isVisible():
            self.setVisible(False)
            self.closed.emit()


class InlineMessage(QLabel):
    """A one-line result under a field: what is wrong with the user's input, or that it works."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setVisible(False)
        self.ok = False

    def show_error(self, text: str) -> None:
        self.ok = False
        self.setStyleSheet("color: #B42318;")
        self.setText("✖ " + text)
        self.setVisible(True)

    def show_ok(self, text: str) -> None:
        self.ok = True
        self.setStyleSheet("color: #17803D;")
        self.setText("✔ " + text)
        self.setVisible(True)

    def show_busy(self, text: str) -> None:
        self.ok = False
        self.setStyleSheet("color: #5B6675;")
        self.setText(text)
        self.setVisible(True)

    def clear_message(self) -> None:
        self.ok = False
        self.clear()
        self.setVisible(False)


class StatusField(QWidget):
    """A status-bar entry: an optional icon and a short text (details in the tooltip)."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.setSpacing(4)
        self.icon = QLabel(self)
        self.icon.setFixedSize(16, 16)
        self.icon.setVisible(False)
        self.label = QLabel(self)
        layout.addWidget(self.icon)
        layout.addWidget(self.label)

    def set(self, text: str, tooltip: str = "", icon_name: str = "", alert: bool = False) -> None:
        self.label.setText(text)
        self.setToolTip(tooltip or text)
        if icon_name:
            self.icon.setPixmap(icons.icon(icon_name).pixmap(16, 16))
        self.icon.setVisible(bool(icon_name))
        self.label.setStyleSheet("color: #B42318; font-weight: 600;" if alert else "")

    def text(self) -> str:
        return self.label.text()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


def field_row(parent: QWidget, *widgets: QWidget, below: list[QWidget] | tuple = (),
              stretch: tuple[int, ...] = ()) -> QWidget:
    """Widgets side by side, with messages and hints under them (hidden ones take no space)."""
    box = QWidget(parent)
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(4)
    row = QHBoxLayout()
    for index, widget in enumerate(widgets):
        default = 1 if index == 0 else 0
        row.addWidget(widget, stretch[index] if index < len(stretch) else default)
    column.addLayout(row)
    for widget in below:
        column.addWidget(widget)
    return box


def bold(font: QFont, delta: float = 0.0) -> QFont:
    result = QFont(font)
    result.setBold(True)
    if delta:
        result.setPointSizeF(max(6.0, result.pointSizeF() + delta))
    return result


__all__ = ["InlineMessage", "MessageBar", "StatusField", "bold", "field_row"]
