"""Icons: the SVGs shipped in ``resources/icons`` plus small drawn swatches and status dots."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from ..model import DealState, EventStatus
from ..paths import resources_dir

RESOURCES = resources_dir()
ICONS = RESOURCES / "icons"

STATUS_COLORS = {
    EventStatus.QUEUED: "#2563C9",
    EventStatus.SYNCED: "#22A35A",
    EventStatus.SKIPPED: "#8A94A3",
    EventStatus.DELETED: "#6B4FBB",
    EventStatus.FAILED: "#D63B3B",
    EventStatus.IGNORED: "#B0B7C3",
    EventStatus.REJECTED: "#E07B00",
}
RETRY_COLOR = "#E3A008"

STATE_COLORS = {
    DealState.SYNCED: "#22A35A",
    DealState.SKIPPED: "#8A94A3",
    DealState.DELETED: "#6B4FBB",
    DealState.FAILED: "#D63B3B",
}


@cache
def icon(name: str) -> QIcon:
    """An icon from ``resources/icons/<name>.svg`` (an empty icon if it is missing)."""
    path = ICONS / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()


def app_icon() -> QIcon:
    return icon("app")


@cache
def dot(color: str, size: int = 12) -> QIcon:
    """A filled circle: status of an event or deal."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(color))
    painter.drawEllipse(QRectF(1.5, 1.5, size - 3, size - 3))
    painter.end()
    return QIcon(pixmap)


@cache
def swatch(color: str, size: int = 14) -> QIcon:
    """A rounded square in a stage's colour (grey when the portal gave none)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    fill = QColor(color) if color and QColor(color).isValid() else QColor("#C5CBD3")
    painter.setPen(fill.darker(125))
    painter.setBrush(fill)
    painter.drawRoundedRect(QRectF(1.5, 1.5, size - 3, size - 3), 3, 3)
    painter.end()
    return QIcon(pixmap)


def status_icon(status: EventStatus, retrying: bool = False) -> QIcon:
    return dot(RETRY_COLOR if retrying else STATUS_COLORS.get(status, "#8A94A3"))


def state_icon(state: DealState) -> QIcon:
    return dot(STATE_COLORS.get(state, "#8A94A3"))


__all__ = ["app_icon", "dot", "icon", "state_icon", "status_icon", "swatch"]
