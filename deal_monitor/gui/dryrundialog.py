"""The dry run window: what syncing some deals now would write, without writing anything.

Left: the deals and what the sync would do with each (insert, update, no change, skip, ...).
Right: the selected deal's row, column by column — what the production table holds now and
what would be written, changed values marked — then its product rows and anything the
table would refuse (a value too long for its column, an empty required column).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..config import Settings
from ..sync.dryrun import DryRun
from . import formatting, icons, texts
from .mappingpage import problem_text
from .tasks import run_in_background
from .widgets import InlineMessage, bold

NEXT_EVENTS = 20
_CHANGED = QColor("#FFF4D6")
_DECISION_COLORS = {
    "insert": "#22A35A", "update": "#2563C9", "no_change": "#8A94A3", "keep_newer": "#8A94A3",
    "skip_stage": "#8A94A3", "deleted": "#6B4FBB", "error": "#D63B3B",
}


def decision_text(code: str) -> str:
    return {
        "insert": QCoreApplication.translate("DryRun", "new row"),
        "update": QCoreApplication.translate("DryRun", "update"),
        "no_change": QCoreApplication.translate("DryRun", "no change"),
        "keep_newer": QCoreApplication.translate("DryRun", "kept: the table holds newer data"),
        "skip_stage": QCoreApplication.translate("DryRun", "skipped: the stage is filtered out"),
        "deleted": QCoreApplication.translate("DryRun", "deleted in the portal: marked deleted"),
        "error": QCoreApplication.translate("DryRun", "cannot be read"),
    }.get(code, code)


def parse_ids(text: str) -> list[int]:
    """Deal IDs from "12, 15 20" (anything that is not a digit separates)."""
    return list(dict.fromkeys(int(part) for part in re.findall(r"\d+", text) if int(part) > 0))


def shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return QCoreApplication.translate("DryRun", "yes") if value else \
            QCoreApplication.translate("DryRun", "no")
    if isinstance(value, datetime):
        return formatting.datetime_text(value)
    if isinstance(value, date):
        return formatting.date_text(value)
    text = str(value)
    return text if len(text) <= 300 else text[:299] + "…"


class DryRunDialog(QDialog):
    """Run the core's dry run for deal IDs and show the rows it would write."""

    def __init__(self, controller, deal_ids: list[int] | None = None,
                 settings: Settings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.settings = settings  # None: the running target and mapping
        self.results: list[DryRun] = []
        self._tasks = []
        self.setWindowTitle(self.tr("Dry run — nothing is written"))
        self.setWindowIcon(icons.icon("preview"))
        self.resize(980, 620)

        self.ids = QLineEdit(", ".join(str(i) for i in deal_ids or []), self)
        self.ids.setPlaceholderText(self.tr("Deal IDs, e.g. 12, 15, 20"))
        self.ids.returnPressed.connect(self.run)
        self.next_button = QPushButton(self.tr("Next queued events"), self)
        self.next_button.setToolTip(self.tr("The deals of the next %1 events waiting in the queue")
                                    .replace("%1", str(NEXT_EVENTS)))
        self.next_button.clicked.connect(self.fill_next)
        self.run_button = QPushButton(icons.icon("preview"), self.tr("Run"), self)
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.message = InlineMessage(self)
        where = self.tr("the mapping as edited (not saved yet)") if settings is not None \
            else self.tr("the current settings")
        self.scope = QLabel(self.tr("Reads the deals from the portal and compares them with the "
                                    "production table, using %1. Nothing is written.")
                            .replace("%1", where), self)
        self.scope.setWordWrap(True)
        self.scope.setStyleSheet("color: #5B6675;")

        self.deals = QTableWidget(0, 2, self)
        self.deals.setHorizontalHeaderLabels([self.tr("Deal"), self.tr("What the sync would do")])
        self.deals.verticalHeader().setVisible(False)
        self.deals.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.deals.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.deals.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.deals.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.deals.horizontalHeader().setStretchLastSection(True)
        self.deals.itemSelectionChanged.connect(self._show_selected)

        self.heading = QLabel(self)
        self.heading.setFont(bold(self.heading.font(), 1))
        self.heading.setWordWrap(True)
        self.rows = QTableWidget(0, 3, self)
        self.rows.setHorizontalHeaderLabels([
            self.tr("Column"), self.tr("In the table now"), self.tr("Would be written")])
        self.rows.verticalHeader().setVisible(False)
        self.rows.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.rows.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2):
            self.rows.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.products = QLabel(self)
        self.products.setWordWrap(True)
        self.problems = QLabel(self)
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #B42318;")

        right = QWidget(self)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.heading)
        right_layout.addWidget(self.rows, 1)
        right_layout.addWidget(self.products)
        right_layout.addWidget(self.problems)
        splitter = QSplitter(self)
        splitter.addWidget(self.deals)
        splitter.addWidget(right)
        splitter.setSizes([320, 660])

        top = QHBoxLayout()
        top.addWidget(QLabel(self.tr("Deals"), self))
        top.addWidget(self.ids, 1)
        top.addWidget(self.next_button)
        top.addWidget(self.run_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.scope)
        layout.addWidget(self.message)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
        if deal_ids:
            self.run()

    # -- running ---------------------------------------------------------------------------------
    def fill_next(self) -> None:
        monitor = self.controller.monitor
        self._busy(self.tr("Reading the queue…"))

        def done(ids: list[int]) -> None:
            self._idle()
            if not ids:
                self.message.show_ok(self.tr("No events are waiting in the queue."))
                return
            self.ids.setText(", ".join(str(i) for i in ids))
            self.run()

        self._tasks.append(run_in_background(lambda: monitor.queued_deal_ids(NEXT_EVENTS), done,
                                             self._failed, name="queued", owner=self))

    def run(self) -> None:
        ids = parse_ids(self.ids.text())
        if not ids:
            self.message.show_error(self.tr("Enter one or more deal IDs."))
            return
        monitor, settings = self.controller.monitor, self.settings
        self._busy(self.tr("Reading %n deal(s) from the portal…", "", len(ids)))
        self._tasks.append(run_in_background(lambda: monitor.dry_run(ids, settings), self._show,
                                             self._failed, name="dry-run", owner=self))

    def _busy(self, text: str) -> None:
        self.message.show_busy(text)
        self.run_button.setEnabled(False)
        self.next_button.setEnabled(False)

    def _idle(self) -> None:
        self.run_button.setEnabled(True)
        self.next_button.setEnabled(True)

    def _failed(self, exc: Exception) -> None:
        self._idle()
        hint = getattr(exc, "hint", "")
        self.message.show_error(texts.error_text(str(exc)) + (f" {texts.hint_text(hint)}" if hint else ""))

    def _show(self, results: list[DryRun]) -> None:
        self._idle()
        self.results = results
        refused = sum(1 for r in results if r.refused)
        if refused:
            self.message.show_error(self.tr("The table would refuse %n of these rows: see below.",
                                            "", refused))
        else:
            self.message.show_ok(self.tr("Done. Nothing was written."))
        self.deals.setRowCount(len(results))
        for row, result in enumerate(results):
            deal = QTableWidgetItem(str(result.deal_id))
            deal.setData(Qt.ItemDataRole.UserRole, result.deal_id)
            color = "#D63B3B" if result.refused else _DECISION_COLORS.get(result.decision, "#8A94A3")
            deal.setIcon(icons.dot(color, 10))
            text = decision_text(result.decision)
            if result.refused:
                text = self.tr("%1 — the table would refuse it").replace("%1", text)
            self.deals.setItem(row, 0, deal)
            self.deals.setItem(row, 1, QTableWidgetItem(text))
        if results:
            self.deals.selectRow(0)

    def _show_selected(self) -> None:
        rows = self.deals.selectionModel().selectedRows()
        if not rows:
            return
        result = self.results[rows[0].row()]
        self.show_result(result)

    def show_result(self, result: DryRun) -> None:
        preview = result.preview
        decision = decision_text(result.decision)
        if preview is None:
            self.heading.setText(self.tr("Deal %1: %2").replace("%1", str(result.deal_id))
                                 .replace("%2", decision))
            self.rows.setRowCount(0)
            self.products.setText(result.problem)
            self.problems.setText("")
            return
        self.heading.setText(self.tr("Deal %1 → table “%2”: %3").replace("%1", str(result.deal_id))
                             .replace("%2", preview.table).replace("%3", decision))
        changed = {column for column, _old, _new in preview.changes}
        self.rows.setRowCount(len(preview.row))
        for row, (column, new) in enumerate(preview.row.items()):
            old = None if preview.current is None else preview.current.get(column)
            items = [QTableWidgetItem(column), QTableWidgetItem(shown(old)), QTableWidgetItem(shown(new))]
            for item in items:
                if column in changed and preview.current is not None:
                    item.setBackground(QBrush(_CHANGED))
                self.rows.setItem(row, items.index(item), item)
            if column in changed and preview.current is not None:
                items[2].setFont(bold(items[2].font()))
        self.rows.resizeRowsToContents()
        if preview.products or preview.current_products:
            names = ", ".join(f"{shown(p.get('name'))} × {shown(p.get('quantity'))}"
                              for p in preview.products[:10])
            self.products.setText(self.tr("Product rows: %1 now → %2: %3")
                                  .replace("%1", str(len(preview.current_products)))
                                  .replace("%2", str(len(preview.products)))
                                  .replace("%3", names or "—"))
        else:
            self.products.setText("")
        self.problems.setText("\n".join(
            f"{'⛔' if p.error else '⚠'} {p.column}: {problem_text(p)}" for p in preview.problems))


__all__ = ["DryRunDialog", "decision_text", "parse_ids"]
