"""The stage filter dialog: which stages' deals are not sent to the production database.

The portal's pipelines and their stages are listed by name, in the portal's order and
colours. A change applies at once (``Monitor.set_skip_stages``), is written to the settings
file, and when skipped deals are now let through the dialog offers to sync them.

A checked stage is skipped in its own pipeline only: the dialog writes ``C1:NEW`` for a stage
of pipeline 1 and ``C0:NEW`` for the general pipeline's ``NEW`` (its stage IDs carry no
prefix in Bitrix24, and a bare ``NEW`` would match ``NEW`` in every pipeline). Bare entries
(the default ``NEW``: the start stage of every pipeline, also of pipelines added later; or
older settings files) are honoured and shown checked in every pipeline they cover;
they stay as they are until the user unchecks one of the stages they cover, and are then
replaced by one entry per pipeline that is still skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..bitrix.stages import Pipeline, StageFilter
from . import formatting, icons
from .controller import AppController
from .widgets import InlineMessage, MessageBar

STAGE_ROLE = Qt.ItemDataRole.UserRole + 10
PIPELINE_ROLE = Qt.ItemDataRole.UserRole + 11


def stage_entry(stage_id: str) -> str:
    """The filter entry that skips ``stage_id`` in its own pipeline only.

    The general pipeline's stages have no prefix (``NEW``); ``C0:NEW`` names them alone.
    """
    return stage_id if ":" in stage_id else f"C0:{stage_id}"


def toggle_stages(
    entries: Sequence[str], known: Sequence[str], changes: dict[str, bool]
) -> tuple[list[str], bool]:
    """New filter entries after the user (un)checked ``changes`` {stage ID: skip}.

    Every stage the user checks gets an entry for its own pipeline (``C0:NEW``, ``C1:NEW``).
    An entry without a prefix (``NEW``, from older settings) is kept while every stage it
    covers stays checked; once one of them is unchecked it is replaced by explicit entries for
    the stages it covered that are still checked. Entries for stages the portal no longer has
    are kept as they are.

    Returns the entries and whether such a bare entry had to be replaced.
    """
    known = list(dict.fromkeys([*known, *changes]))
    cleaned = [e.strip() for e in entries if e.strip()]
    current = StageFilter(cleaned)
    wanted = {s for s in known if current.skips(s)}
    for stage_id, skip in changes.items():
        if skip:
            wanted.add(stage_id)
        else:
            wanted.discard(stage_id)
    kept: list[str] = []
    unknown: list[str] = []
    expanded = False
    for entry in cleaned:
        covers = {s for s in known if StageFilter([entry]).skips(s)}
        if not covers:
            unknown.append(entry)  # a stage the portal no longer has (or not yet loaded)
        elif covers <= wanted:
            kept.append(entry)
        elif ":" not in entry and covers & wanted:
            expanded = True  # a bare entry lost one of its stages: the others stay skipped
    covered = StageFilter(kept)
    explicit = [stage_entry(s) for s in known if s in wanted and not covered.skips(s)]
    result: list[str] = []
    for entry in [*kept, *explicit, *unknown]:
        if entry not in result:
            result.append(entry)
    return result, expanded


def legacy_entries(entries: Iterable[str], known: Iterable[str]) -> list[str]:
    """Entries without a pipeline prefix that cover some of ``known`` (the default NEW, older files)."""
    known = list(known)
    return [e for e in entries if ":" not in e.strip() and e.strip()
            and any(StageFilter([e]).skips(s) for s in known)]


class StageFilterDialog(QDialog):
    """Pipelines and stages with checkboxes: checked stages are skipped."""

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle(self.tr("Stage filter"))
        self.setWindowIcon(icons.icon("filter"))
        self.resize(560, 620)
        self._filling = False
        self.released: list[int] = []

        self.intro = QLabel(self.tr(
            "Deals in the checked stages are not sent to the production database. "
            "A change applies at once."), self)
        self.intro.setWordWrap(True)
        self.loading = InlineMessage(self)
        self.retry_button = QPushButton(self.tr("Try again"), self)
        self.retry_button.setVisible(False)
        self.retry_button.clicked.connect(self._load)

        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels([self.tr("Pipeline and stage"), self.tr("Deals")])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.tree.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.tree.itemChanged.connect(self._on_item_changed)

        self.released_bar = MessageBar(self)
        self.released_bar.action_triggered.connect(self.sync_released)
        self.note = QLabel(self.tr(
            "A checked stage is skipped in its own pipeline only: stages with the same name "
            "in other pipelines are not affected."), self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #5B6675;")
        self.legacy = QLabel(self.tr(
            "Some stages are skipped in every pipeline, including pipelines added later; by "
            "default the start stage NEW is. Unchecking such a stage in one pipeline keeps it "
            "skipped in the others."), self)
        self.legacy.setWordWrap(True)
        self.legacy.setStyleSheet("color: #5B6675;")
        self.legacy.setVisible(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)

        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.loading)
        layout.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.released_bar)
        layout.addWidget(self.note)
        layout.addWidget(self.legacy)
        layout.addWidget(buttons)

        controller.pipelines_loaded.connect(self._on_pipelines_loaded)
        controller.pipelines_failed.connect(self._on_pipelines_failed)
        if controller.catalog.loaded:
            self.fill(controller.catalog.pipelines)
        self._load(refresh=controller.catalog.loaded)

    # -- loading -----------------------------------------------------------------------------------
    def _load(self, refresh: bool = False) -> None:
        self.retry_button.setVisible(False)
        if not self.controller.running or not self.controller.configured:
            if not self.controller.catalog.loaded:
                self.loading.show_error(self.tr(
                    "The pipelines come from the portal: connect to a portal in the settings "
                    "first."))
            return
        if not self.controller.catalog.loaded:
            self.loading.show_busy(self.tr("Loading the portal's pipelines…"))
        self.controller.load_pipelines(refresh=bool(refresh))

    def _on_pipelines_loaded(self) -> None:
        self.loading.clear_message()
        self.fill(self.controller.catalog.pipelines)

    def _on_pipelines_failed(self, problem: str) -> None:
        if self.controller.catalog.loaded:
            return  # the names we have are good enough; refreshing them failed
        self.loading.show_error(self.tr("Could not read the pipelines: %1").replace("%1", problem))
        self.retry_button.setVisible(True)

    # -- content -----------------------------------------------------------------------------------
    def known_stages(self) -> list[str]:
        return [s.id for p in self.controller.catalog.pipelines for s in p.stages]

    def fill(self, pipelines: Iterable[Pipeline]) -> None:
        counts = Counter(d.stage_id for d in self.controller.deals_model.deals())
        self._filling = True
        self.tree.clear()
        bold = QFont(self.tree.font())
        bold.setBold(True)
        for pipeline in pipelines:
            top = QTreeWidgetItem([pipeline.name, ""])
            top.setFont(0, bold)
            top.setData(0, PIPELINE_ROLE, pipeline.id)
            top.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            total = 0
            for stage in pipeline.stages:
                count = counts.get(stage.id, 0)
                total += count
                item = QTreeWidgetItem([stage.name, formatting.number_text(count) if count else ""])
                item.setIcon(0, icons.swatch(stage.color))
                item.setData(0, STAGE_ROLE, stage.id)
                item.setToolTip(0, f"{stage.name} ({stage.id})")
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                top.addChild(item)
            top.setText(1, formatting.number_text(total) if total else "")
            top.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.tree.addTopLevelItem(top)
        self.tree.expandAll()
        self._filling = False
        self.refresh_checks()

    def refresh_checks(self) -> None:
        """Show what the filter in force skips."""
        current = StageFilter(self.controller.skip_stages)
        self._filling = True
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            checked = 0
            for j in range(top.childCount()):
                item = top.child(j)
                skip = current.skips(item.data(0, STAGE_ROLE))
                checked += skip
                item.setCheckState(0, Qt.CheckState.Checked if skip else Qt.CheckState.Unchecked)
            if checked == 0:
                state = Qt.CheckState.Unchecked
            elif checked == top.childCount():
                state = Qt.CheckState.Checked
            else:
                state = Qt.CheckState.PartiallyChecked
            top.setCheckState(0, state)
        self._filling = False
        self.legacy.setVisible(
            bool(legacy_entries(self.controller.skip_stages, self.known_stages())))

    def stage_item(self, stage_id: str) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, STAGE_ROLE) == stage_id:
                    return top.child(j)
        return None

    # -- changes -----------------------------------------------------------------------------------
    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._filling or column != 0:
            return
        skip = item.checkState(0) == Qt.CheckState.Checked
        stage_id = item.data(0, STAGE_ROLE)
        if stage_id is not None:
            changes = {stage_id: skip}
        else:
            changes = {item.child(j).data(0, STAGE_ROLE): skip for j in range(item.childCount())}
        self.set_skipped(changes)

    def set_skipped(self, changes: dict[str, bool]) -> list[str]:
        """Apply a change at once; returns the new filter entries."""
        entries, _expanded = toggle_stages(
            self.controller.skip_stages, self.known_stages(), changes)
        released = self.controller.set_skip_stages(entries)
        self.refresh_checks()
        self.released = released
        if released:
            self.released_bar.show_message("info", self.tr(
                "%n deal(s) skipped so far now pass the filter.", "", len(released)),
                self.tr("Sync them now"))
        else:
            self.released_bar.dismiss()
        return entries

    def sync_released(self) -> None:
        count = self.controller.resync(self.released)
        self.released = []
        self.released_bar.show_message("success", self.tr(
            "%n deal(s) will be read from the portal and written to production.", "", count),
            timeout_ms=8000)


__all__ = ["StageFilterDialog", "legacy_entries", "stage_entry", "toggle_stages"]
