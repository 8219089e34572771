"""The deal detail panel: what the selected deal is now, and its timeline.

The timeline lists, newest first, each step the app took for the deal — the events that
arrived, the read from the portal, the stage decision, the write to the production database,
errors — with the time; a write's field-level changes since the previous sync are its
children ("Stage: New → In production").
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ..model import DealState, DealView, HistoryEntry
from . import formatting, icons, texts
from .models import StageCatalog
from .widgets import bold

# shown first, in this order; the rest follow by code
_FIELD_ORDER = ("STAGE_ID", "CATEGORY_ID", "TITLE", "OPPORTUNITY", "CURRENCY_ID", "CLOSEDATE",
                "ASSIGNED_BY_ID", "COMMENTS")
# consequences of a stage change that only repeat it
_STAGE_ECHOES = frozenset({"IS_NEW", "MOVED_TIME", "MOVED_BY_ID", "STAGE_SEMANTIC_ID", "CLOSED"})

_MONEY_FIELDS = frozenset({"OPPORTUNITY", "TAX_VALUE"})
_DATE_FIELDS = frozenset({"CLOSEDATE", "BEGINDATE"})

_KIND_COLORS = {
    "event": "#2563C9",
    "fetch": "#5B6675",
    "decision": "#8A94A3",
    "write": "#22A35A",
    "error": "#D63B3B",
}


class DealDetail(QWidget):
    """Header with the deal's current state, a Resync button and the timeline."""

    resync_requested = Signal(int)
    dry_run_requested = Signal(int)

    def __init__(self, catalog: StageCatalog, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.deal_id: int | None = None
        self.entries: list[HistoryEntry] = []
        self._currency = ""

        self.stack = QStackedWidget(self)
        self.placeholder = QLabel(self)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet("color: #6B7280;")

        page = QWidget(self)
        self.title = QLabel(page)
        self.title.setFont(bold(self.font(), 2))
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.facts = QLabel(page)
        self.facts.setTextFormat(Qt.TextFormat.RichText)
        self.facts.setWordWrap(True)
        self.error = QLabel(page)
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #B42318;")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.resync_button = QPushButton(icons.icon("resync"), "", page)
        self.resync_button.clicked.connect(self._on_resync_clicked)
        self.dry_run_button = QPushButton(icons.icon("preview"), "", page)
        self.dry_run_button.clicked.connect(self._on_dry_run_clicked)
        self.timeline_label = QLabel(page)
        self.timeline_label.setFont(bold(self.font()))

        self.timeline_model = QStandardItemModel(self)
        self.timeline = QTreeView(page)
        self.timeline.setModel(self.timeline_model)
        self.timeline.setRootIsDecorated(True)
        self.timeline.setUniformRowHeights(True)
        self.timeline.setAlternatingRowColors(True)
        self.timeline.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.timeline.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.timeline.setTextElideMode(Qt.TextElideMode.ElideRight)

        head = QHBoxLayout()
        head.setSpacing(12)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.facts)
        text.addWidget(self.error)
        head.addLayout(text, 1)
        buttons = QVBoxLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.resync_button)
        buttons.addWidget(self.dry_run_button)
        buttons.addStretch(1)
        head.addLayout(buttons)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(8, 8, 8, 0)
        layout.setSpacing(6)
        layout.addLayout(head)
        layout.addWidget(self.timeline_label)
        layout.addWidget(self.timeline, 1)

        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(page)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)
        self.retranslate()
        self.show_nothing()

    def retranslate(self) -> None:
        self.resync_button.setText(self.tr("Resync this deal"))
        self.resync_button.setToolTip(self.tr("Read the deal from the portal again now (Ctrl+R)"))
        self.dry_run_button.setText(self.tr("Dry run"))
        self.dry_run_button.setToolTip(self.tr(
            "What a sync would write for this deal now, without writing (Ctrl+D)"))
        self.timeline_label.setText(self.tr("Timeline"))
        self.timeline_model.setHorizontalHeaderLabels(
            [self.tr("Time"), self.tr("Step"), self.tr("What happened")]
        )
        if self.deal_id is None:
            self.placeholder.setText(self.tr("Select a deal to see its timeline."))

    # -- content -------------------------------------------------------------------------------
    def show_nothing(self) -> None:
        self.deal_id = None
        self.entries = []
        self.placeholder.setText(self.tr("Select a deal to see its timeline."))
        self.stack.setCurrentIndex(0)

    def show_many(self, count: int) -> None:
        self.deal_id = None
        self.entries = []
        self.placeholder.setText(
            self.tr("%n deal(s) selected. Ctrl+R reads them all again.", "", count)
        )
        self.stack.setCurrentIndex(0)

    def show_deal(self, deal: DealView, history: list[HistoryEntry]) -> None:
        self.deal_id = deal.id
        self._currency = deal.currency_id
        self.entries = list(history)
        self.title.setText(deal.title or self.tr("Deal %1").replace("%1", str(deal.id)))
        color = self.catalog.stage_color(deal.stage_id) or "#C5CBD3"
        stage = _escape(self.catalog.stage_name(deal.stage_id))
        parts = [
            f"<b>#{deal.id}</b>",
            _escape(self.catalog.pipeline_name(deal.category_id)),
            f"<span style='color:{color}'>■</span>&nbsp;{stage}",
            _escape(formatting.amount_text(deal.amount, deal.currency_id)),
        ]
        if deal.close_date:
            parts.append(
                _escape(self.tr("closes %1").replace("%1", formatting.date_text(deal.close_date)))
            )
        state_color = {"failed": "#B42318", "synced": "#17803D"}.get(deal.state.value, "#5B6675")
        parts.append(f"<span style='color:{state_color}'>{_escape(texts.state_label(deal.state))}</span>")
        self.facts.setText(" · ".join(parts))
        self.error.setText(texts.error_text(deal.error))
        self.error.setVisible(bool(deal.error) and deal.state == DealState.FAILED)
        self._fill_timeline()
        self.stack.setCurrentIndex(1)

    def _fill_timeline(self) -> None:
        model = self.timeline_model
        model.removeRows(0, model.rowCount())
        root = model.invisibleRootItem()
        for entry in reversed(self.entries):
            when = QStandardItem(formatting.time_text(entry.at))
            when.setToolTip(formatting.datetime_text(entry.at))
            kind = QStandardItem(icons.dot(_KIND_COLORS.get(entry.kind, "#8A94A3")),
                                 texts.history_kind_label(entry.kind))
            what_text = texts.history_text(entry, self.catalog.stage_name)
            what = QStandardItem(what_text)
            what.setToolTip(what_text)
            for change in _ordered(entry.changes):
                old = self._value(change.field, change.old)
                new = self._value(change.field, change.new)
                child_text = f"{old}  →  {new}"
                child = [
                    QStandardItem(""),
                    QStandardItem(texts.field_label(change.field)),
                    QStandardItem(child_text),
                ]
                child[1].setToolTip(change.field)
                child[2].setToolTip(child_text)
                when.appendRow(child)
            root.appendRow([when, kind, what])
        self.timeline.expandAll()
        header = self.timeline.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)

    def _value(self, field: str, value: str | None) -> str:
        if value is None or value == "":
            return QCoreApplication.translate("DealDetail", "(empty)")
        if field == "STAGE_ID":
            return self.catalog.stage_name(value)
        if field == "CATEGORY_ID" and value.lstrip("-").isdigit():
            return self.catalog.pipeline_name(int(value))
        if field in ("CLOSED", "IS_NEW", "IS_MANUAL_OPPORTUNITY", "OPENED"):
            return {"Y": self.tr("yes"), "N": self.tr("no")}.get(value, value)
        if field in _MONEY_FIELDS:
            try:
                return formatting.amount_text(Decimal(value), self._currency)
            except InvalidOperation:
                return value
        moment = formatting.parse_iso(value) if "T" in value else None
        if moment is not None and field in _DATE_FIELDS:
            # the portal's calendar day: converting to local time could move it a day back
            return formatting.date_text(moment.date())
        if moment is not None:
            return formatting.datetime_text(moment)
        return value if len(value) <= 200 else value[:200] + "…"

    def _on_resync_clicked(self) -> None:
        if self.deal_id is not None:
            self.resync_requested.emit(self.deal_id)

    def _on_dry_run_clicked(self) -> None:
        if self.deal_id is not None:
            self.dry_run_requested.emit(self.deal_id)


def _ordered(changes):
    fields = {c.field for c in changes}
    shown = [c for c in changes if not ("STAGE_ID" in fields and c.field in _STAGE_ECHOES)]
    rank = {name: i for i, name in enumerate(_FIELD_ORDER)}
    return sorted(shown, key=lambda c: (rank.get(c.field, len(rank)), c.field))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["DealDetail"]
