"""Table models for live data: deals and events, with a keyed index and sort/filter proxies.

Both models keep their rows in a Python list plus a dict from key (deal ID, event ID) to
position, so an update from the core is one ``dataChanged`` and a new row one
``beginInsertRows`` — never a reset per change. A whole snapshot (start-up, reload) is the
only reset.

Sorting 100,000 rows through ``QSortFilterProxyModel.lessThan`` calls back into Python about
two million times (seconds); the deals model sorts its own list with precomputed keys instead
(tens of milliseconds) and the proxy only filters. Header clicks reach the model through the
proxy's ``sort``. While sorted, changed rows are put back in order by one layout change per
batch of updates (throttled for very large tables).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)
from PySide6.QtGui import QBrush, QColor

from ..bitrix.stages import Pipeline, Stage
from ..model import DealState, DealView, EventRecord, EventStatus, Source
from . import formatting, icons, texts

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2

_ALIGN_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_ALIGN_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_GREY = QBrush(QColor("#7A8591"))
_RED = QBrush(QColor("#C62828"))

AnyIndex = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


class StageCatalog:
    """Names, colours and order of the portal's pipelines and stages (from ``pipelines()``)."""

    def __init__(self, pipelines: Iterable[Pipeline] = ()) -> None:
        self.set(pipelines)

    def set(self, pipelines: Iterable[Pipeline]) -> None:
        self.pipelines: list[Pipeline] = list(pipelines)
        self._pipeline = {p.id: (rank, p) for rank, p in enumerate(self.pipelines)}
        self._stage: dict[str, tuple[int, int, Pipeline, Stage]] = {}
        for p_rank, pipeline in enumerate(self.pipelines):
            for s_rank, stage in enumerate(pipeline.stages):
                self._stage[stage.id] = (p_rank, s_rank, pipeline, stage)

    @property
    def loaded(self) -> bool:
        return bool(self.pipelines)

    def pipeline_name(self, category_id: int) -> str:
        found = self._pipeline.get(category_id)
        return found[1].name if found else f"#{category_id}"

    def stage(self, stage_id: str) -> Stage | None:
        found = self._stage.get(stage_id)
        return found[3] if found else None

    def stage_name(self, stage_id: str) -> str:
        stage = self.stage(stage_id)
        return stage.name if stage else stage_id

    def stage_color(self, stage_id: str) -> str:
        stage = self.stage(stage_id)
        return stage.color if stage else ""

    def pipeline_rank(self, category_id: int) -> tuple[int, int]:
        found = self._pipeline.get(category_id)
        return (found[0], category_id) if found else (1_000_000, category_id)

    def stage_rank(self, stage_id: str) -> tuple[int, int, str]:
        found = self._stage.get(stage_id)
        return (found[0], found[1], stage_id) if found else (1_000_000, 0, stage_id)


# -- deals ------------------------------------------------------------------------------------


class DealsModel(QAbstractTableModel):
    """Every synced deal, keyed by deal ID; sorts and filters itself (see the module docstring).

    ``_all`` holds every deal in sort order; the view sees ``_rows``, the ones the filter lets
    through, in the same order. Filtering here, in one list comprehension, costs a few
    milliseconds for 100,000 deals; a proxy's per-row Python callback costs hundreds.
    """

    ID, TITLE, PIPELINE, STAGE, AMOUNT, CLOSE_DATE, MODIFIED, SYNCED, STATE = range(9)
    COLUMN_COUNT = 9
    RESORT_THROTTLE_ROWS = 20_000  # above this, re-sort at most once a second

    def __init__(self, catalog: StageCatalog | None = None, parent=None) -> None:
        super().__init__(parent)
        self.catalog = catalog or StageCatalog()
        self._all: list[DealView] = []
        self._all_pos: dict[int, int] = {}
        self._known: dict[int, DealView] = {}
        self._rows: list[DealView] = []
        self._index: dict[int, int] = {}
        self._search: dict[int, str] = {}
        self._needle = ""
        self._state_filter: DealState | None = None
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._resort_timer = QTimer(self)
        self._resort_timer.setSingleShot(True)
        self._resort_timer.timeout.connect(self.resort)

    # -- access ------------------------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else self.COLUMN_COUNT

    def deal_at(self, row: int) -> DealView:
        return self._rows[row]

    def row_of(self, deal_id: int) -> int | None:
        """The deal's row as the view sees it (None if unknown or filtered out)."""
        return self._index.get(deal_id)

    def deal(self, deal_id: int) -> DealView | None:
        return self._known.get(deal_id)

    def deals(self) -> list[DealView]:
        """Every deal, filtered out or not, in sort order."""
        return list(self._all)

    @property
    def total(self) -> int:
        return len(self._all)

    # -- changes -------------------------------------------------------------------------------
    def load(self, deals: Sequence[DealView]) -> None:
        """Replace everything with a snapshot (one reset; start-up and reloads only)."""
        self.beginResetModel()
        self._all = []  # let the old list go before the new one is built
        self._rows = []
        self._search.clear()
        self._all = list(deals)
        self._known = {d.id: d for d in self._all}
        if self._sort_column >= 0:
            self._all.sort(key=self._key_func(), reverse=self._descending)
        self._all_pos = {d.id: i for i, d in enumerate(self._all)}
        self._rows = self._visible()
        self._reindex()
        self.endResetModel()

    def upsert(self, deal: DealView) -> None:
        self.upsert_many([deal])

    def upsert_many(self, deals: Iterable[DealView]) -> None:
        """Apply new readings: changed rows get ``dataChanged``, new rows are appended,
        rows that stop (or start) matching the filter leave (or join) the view."""
        key = self._key_func() if self._sort_column >= 0 else None
        order_changed = False
        shown: list[DealView] = []
        hidden: list[int] = []
        for deal in deals:
            old = self._known.get(deal.id)
            if old is not None and deal.synced_at < old.synced_at:
                continue  # an older reading arriving late
            self._known[deal.id] = deal
            self._search.pop(deal.id, None)
            if old is None:
                self._all_pos[deal.id] = len(self._all)
                self._all.append(deal)
                order_changed = order_changed or key is not None
            else:
                self._all[self._all_pos[deal.id]] = deal
                if key is not None and key(old) != key(deal):
                    order_changed = True
            row = self._index.get(deal.id)
            matches = self._matches(deal)
            if row is not None and matches:
                self._rows[row] = deal
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.COLUMN_COUNT - 1))
            elif row is not None:
                hidden.append(row)
            elif matches:
                if any(n.id == deal.id for n in shown):
                    shown = [deal if n.id == deal.id else n for n in shown]
                else:
                    shown.append(deal)
        for row in sorted(set(hidden), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()
        if hidden:
            self._reindex()
        if shown:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(shown) - 1)
            for offset, deal in enumerate(shown):
                self._rows.append(deal)
                self._index[deal.id] = first + offset
            self.endInsertRows()
            order_changed = order_changed or key is not None
        if order_changed:
            self._schedule_resort()

    def mark_failed(self, deal_id: int, error: str) -> None:
        """A sync of a deal we show failed: show it as failed until the next good sync."""
        old = self._known.get(deal_id)
        if old is None:
            return
        self.upsert_many([dataclasses.replace(old, state=DealState.FAILED, error=error)])

    def catalog_changed(self) -> None:
        """Pipeline/stage names arrived: repaint those columns (and re-sort if sorted by them)."""
        self._search.clear()
        if self._needle:
            self._refilter()
        elif self._rows:
            self.dataChanged.emit(
                self.index(0, self.PIPELINE), self.index(len(self._rows) - 1, self.STAGE)
            )
        if self._sort_column in (self.PIPELINE, self.STAGE):
            self.resort()

    def retranslate(self) -> None:
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, self.COLUMN_COUNT - 1)
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, self.COLUMN_COUNT - 1)
            )

    def _reindex(self) -> None:
        self._index = {deal.id: row for row, deal in enumerate(self._rows)}

    # -- sorting -------------------------------------------------------------------------------
    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    @property
    def _descending(self) -> bool:
        return self._sort_order == Qt.SortOrder.DescendingOrder

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column = column
        self._sort_order = order
        self.resort()

    def _schedule_resort(self) -> None:
        if self._resort_timer.isActive():
            return
        big = len(self._all) > self.RESORT_THROTTLE_ROWS
        self._resort_timer.start(1000 if big else 0)

    def resort(self) -> None:
        """Put the rows in the current sort order (one layout change; selection kept)."""
        self._resort_timer.stop()
        if self._sort_column < 0 or not self._all:
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        kept = [(self._rows[i.row()].id, i.column()) for i in persistent]
        key = self._key_func()
        self._all.sort(key=key, reverse=self._descending)
        self._all_pos = {d.id: i for i, d in enumerate(self._all)}
        self._rows.sort(key=key, reverse=self._descending)
        self._reindex()
        self.changePersistentIndexList(
            persistent, [self.index(self._index[deal_id], col) for deal_id, col in kept]
        )
        self.layoutChanged.emit()

    def _key_func(self) -> Callable[[DealView], Any]:
        column = self._sort_column
        catalog = self.catalog
        if column == self.TITLE:
            return lambda d: (d.title.casefold(), d.id)
        if column == self.PIPELINE:
            return lambda d: (catalog.pipeline_rank(d.category_id), d.id)
        if column == self.STAGE:
            return lambda d: (catalog.stage_rank(d.stage_id), d.id)
        if column == self.AMOUNT:
            return lambda d: (d.amount, d.id)
        if column == self.CLOSE_DATE:
            return lambda d: (d.close_date or date.min, d.id)
        if column == self.MODIFIED:
            return lambda d: (_stamp(d.date_modify), d.id)
        if column == self.SYNCED:
            return lambda d: (_stamp(d.synced_at), d.id)
        if column == self.STATE:
            order = {s: i for i, s in enumerate(DealState)}
            return lambda d: (order.get(d.state, 99), d.id)
        return lambda d: d.id

    # -- filtering --------------------------------------------------------------------------------
    @property
    def filtering(self) -> bool:
        return bool(self._needle) or self._state_filter is not None

    def set_filter(self, needle: str, state: DealState | None) -> None:
        """Show only deals whose ID, title, pipeline or stage contains ``needle`` (and in
        ``state``); one reset of the view, the selection is the caller's to restore."""
        needle = needle.strip().casefold()
        if (needle, state) == (self._needle, self._state_filter):
            return
        self._needle, self._state_filter = needle, state
        self._refilter()

    def _refilter(self) -> None:
        self.beginResetModel()
        self._rows = self._visible()
        self._reindex()
        self.endResetModel()

    def _visible(self) -> list[DealView]:
        if not self.filtering:
            return list(self._all)
        return [d for d in self._all if self._matches(d)]

    def _matches(self, deal: DealView) -> bool:
        if self._state_filter is not None and deal.state != self._state_filter:
            return False
        return not self._needle or self._needle in self._search_of(deal)

    def _search_of(self, deal: DealView) -> str:
        text = self._search.get(deal.id)
        if text is None:
            text = " ".join(
                (
                    str(deal.id),
                    deal.title,
                    self.catalog.pipeline_name(deal.category_id),
                    self.catalog.stage_name(deal.stage_id),
                    deal.stage_id,
                )
            ).casefold()
            self._search[deal.id] = text
        return text

    def search_text(self, row: int) -> str:
        return self._search_of(self._rows[row])

    # -- presentation -------------------------------------------------------------------------------
    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.column_title(section)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.column_tooltip(section)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _ALIGN_RIGHT if section in (self.ID, self.AMOUNT) else _ALIGN_LEFT
        return None

    def column_tooltip(self, section: int) -> str:
        if section == self.MODIFIED:
            return self.tr("When the deal last changed in Bitrix24")
        if section == self.SYNCED:
            return self.tr("When Deal Monitor last read the deal and decided about it")
        if section == self.STATE:
            return self.tr("What the production database holds for the deal")
        return self.column_title(section)

    def column_title(self, section: int) -> str:
        titles = (
            self.tr("ID"),
            self.tr("Deal"),
            self.tr("Pipeline"),
            self.tr("Stage"),
            self.tr("Amount"),
            self.tr("Close date"),
            self.tr("Changed"),
            self.tr("Synced"),
            self.tr("State"),
        )
        return titles[section] if 0 <= section < len(titles) else ""

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        deal = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(deal, column)
        if role == Qt.ItemDataRole.DecorationRole:
            if column == self.STAGE:
                return icons.swatch(self.catalog.stage_color(deal.stage_id))
            if column == self.STATE:
                return icons.state_icon(deal.state)
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(deal, column)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _ALIGN_RIGHT if column in (self.ID, self.AMOUNT) else _ALIGN_LEFT
        if role == Qt.ItemDataRole.ForegroundRole:
            if deal.state == DealState.FAILED and column == self.STATE:
                return _RED
            if deal.state in (DealState.DELETED, DealState.SKIPPED):
                return _GREY
            return None
        if role == KEY_ROLE:
            return deal.id
        if role == SORT_ROLE:
            return str(self._key_func()(deal))
        return None

    def _display(self, deal: DealView, column: int) -> str:
        if column == self.ID:
            return str(deal.id)
        if column == self.TITLE:
            return deal.title
        if column == self.PIPELINE:
            return self.catalog.pipeline_name(deal.category_id)
        if column == self.STAGE:
            return self.catalog.stage_name(deal.stage_id)
        if column == self.AMOUNT:
            return formatting.amount_text(deal.amount, deal.currency_id)
        if column == self.CLOSE_DATE:
            return formatting.date_text(deal.close_date)
        if column == self.MODIFIED:
            return formatting.datetime_text(deal.date_modify)
        if column == self.SYNCED:
            return formatting.datetime_text(deal.synced_at)
        if column == self.STATE:
            return texts.state_label(deal.state)
        return ""

    def _tooltip(self, deal: DealView, column: int) -> str | None:
        if column == self.TITLE:
            return deal.title
        if column == self.STAGE:
            return f"{self.catalog.stage_name(deal.stage_id)} ({deal.stage_id})"
        if column == self.STATE and deal.error:
            return texts.error_text(deal.error)
        return None


def _stamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else float("-inf")


# -- events ------------------------------------------------------------------------------------


class EventsModel(QAbstractTableModel):
    """Inbox rows and rejected requests, newest first, keyed by event ID.

    Rows are stored oldest first (appending is cheap and keeps the index valid) and shown
    reversed; the oldest rows beyond ``limit`` are dropped from the view (they stay in the DB).
    """

    TIME, EVENT, DEAL, SOURCE, STATUS, ATTEMPTS, ERROR, SENDER = range(8)
    COLUMN_COUNT = 8

    def __init__(self, limit: int = 10_000, parent=None) -> None:
        super().__init__(parent)
        self.limit = limit
        self._rows: list[EventRecord] = []
        self._index: dict[int, int] = {}

    def rowCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = _ROOT) -> int:
        return 0 if parent.isValid() else self.COLUMN_COUNT

    def _pos(self, row: int) -> int:
        return len(self._rows) - 1 - row

    def record_at(self, row: int) -> EventRecord:
        return self._rows[self._pos(row)]

    def row_of(self, event_id: int) -> int | None:
        pos = self._index.get(event_id)
        return None if pos is None else self._pos(pos)

    def record(self, event_id: int) -> EventRecord | None:
        pos = self._index.get(event_id)
        return None if pos is None else self._rows[pos]

    def records(self) -> list[EventRecord]:
        return list(reversed(self._rows))

    def load(self, records: Sequence[EventRecord]) -> None:
        """Replace everything with a snapshot given newest first (as ``Monitor.events``)."""
        self.beginResetModel()
        self._rows = list(reversed(records[: self.limit]))
        self._reindex()
        self.endResetModel()

    def upsert(self, record: EventRecord) -> None:
        self.upsert_many([record])

    def upsert_many(self, records: Iterable[EventRecord]) -> None:
        new: list[EventRecord] = []
        for record in records:
            pos = self._index.get(record.id)
            if pos is None:
                new = [r for r in new if r.id != record.id]
                new.append(record)
                continue
            old = self._rows[pos]
            if _arrived_late(old, record):
                continue
            self._rows[pos] = record
            row = self._pos(pos)
            self.dataChanged.emit(self.index(row, 0), self.index(row, self.COLUMN_COUNT - 1))
        if new:
            new.sort(key=lambda r: r.received_at)
            self.beginInsertRows(QModelIndex(), 0, len(new) - 1)
            for record in new:
                self._index[record.id] = len(self._rows)
                self._rows.append(record)
            self.endInsertRows()
            self._trim()

    def _trim(self) -> None:
        extra = len(self._rows) - self.limit
        if extra <= 0:
            return
        last = len(self._rows) - 1
        self.beginRemoveRows(QModelIndex(), last - extra + 1, last)
        del self._rows[:extra]
        self._reindex()
        self.endRemoveRows()

    def _reindex(self) -> None:
        self._index = {record.id: pos for pos, record in enumerate(self._rows)}

    def retranslate(self) -> None:
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 0, self.COLUMN_COUNT - 1)
        if self._rows:
            self.dataChanged.emit(
                self.index(0, 0), self.index(len(self._rows) - 1, self.COLUMN_COUNT - 1)
            )

    def search_text(self, row: int) -> str:
        r = self.record_at(row)
        return " ".join(
            (
                str(r.deal_id or ""),
                r.event,
                texts.event_label(r.event),
                r.error,
                texts.error_text(r.error),
                r.remote_addr,
            )
        ).casefold()

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self.column_title(section)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _ALIGN_RIGHT if section in (self.DEAL, self.ATTEMPTS) else _ALIGN_LEFT
        return None

    def column_title(self, section: int) -> str:
        titles = (
            self.tr("Time"),
            self.tr("Event"),
            self.tr("Deal"),
            self.tr("Source"),
            self.tr("Status"),
            self.tr("Attempts"),
            self.tr("Error"),
            self.tr("Sender"),
        )
        return titles[section] if 0 <= section < len(titles) else ""

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self._rows[self._pos(index.row())]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(record, column)
        if role == Qt.ItemDataRole.DecorationRole and column == self.STATUS:
            return icons.status_icon(record.status, retrying=is_retrying(record))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.EVENT:
                return record.event
            if column == self.ERROR and record.error:
                return texts.error_text(record.error)
            if column == self.TIME:
                return formatting.datetime_text(record.received_at)
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _ALIGN_RIGHT if column in (self.DEAL, self.ATTEMPTS) else _ALIGN_LEFT
        if role == Qt.ItemDataRole.ForegroundRole:
            if column in (self.STATUS, self.ERROR) and record.status in (
                EventStatus.FAILED,
                EventStatus.REJECTED,
            ):
                return _RED
            if record.status in (EventStatus.IGNORED, EventStatus.SKIPPED):
                return _GREY
            return None
        if role == KEY_ROLE:
            return record.id
        return None

    def _display(self, record: EventRecord, column: int) -> str:
        if column == self.TIME:
            return formatting.time_text(record.received_at)
        if column == self.EVENT:
            return texts.event_label(record.event)
        if column == self.DEAL:
            return str(record.deal_id) if record.deal_id is not None else ""
        if column == self.SOURCE:
            if record.status == EventStatus.REJECTED:
                return ""
            return texts.source_label(record.source)
        if column == self.STATUS:
            if is_retrying(record):
                return texts.retry_label()
            return texts.status_label(record.status)
        if column == self.ATTEMPTS:
            return str(record.attempts) if record.attempts else ""
        if column == self.ERROR:
            return texts.error_text(record.error).replace("\n", " ")
        if column == self.SENDER:
            return record.remote_addr
        return ""


def is_retrying(record: EventRecord) -> bool:
    return record.status == EventStatus.QUEUED and record.attempts > 0


def _arrived_late(old: EventRecord, new: EventRecord) -> bool:
    """The "received" report of a row the worker already handled, delivered after it."""
    fresh = new.status == EventStatus.QUEUED and new.attempts == 0
    return fresh and (old.attempts > 0 or old.status != EventStatus.QUEUED)


# -- proxies -----------------------------------------------------------------------------------


def _refilter(proxy: QSortFilterProxyModel) -> None:
    proxy.beginFilterChange()
    proxy.endFilterChange(QSortFilterProxyModel.Direction.Rows)


class DealsProxy(QSortFilterProxyModel):
    """Hands sorting and filtering to ``DealsModel`` (which does both in bulk); the view and
    its selection work through this proxy as usual."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._needle = ""
        self._state: DealState | None = None

    def set_text(self, text: str) -> None:
        self._needle = text
        self._apply()

    def set_state(self, state: DealState | None) -> None:
        self._state = state
        self._apply()

    def _apply(self) -> None:
        model = self.sourceModel()
        if model is not None:
            model.set_filter(self._needle, self._state)

    @property
    def filtering(self) -> bool:
        model = self.sourceModel()
        return model is not None and model.filtering

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.sourceModel().sort(column, order)


class EventsProxy(QSortFilterProxyModel):
    """Filter by text and by status; ``PROBLEMS`` shows failed, rejected and retrying rows."""

    PROBLEMS = "problems"

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._needle = ""
        self._status: EventStatus | str | None = None

    def set_text(self, text: str) -> None:
        needle = text.strip().casefold()
        if needle != self._needle:
            self._needle = needle
            _refilter(self)

    def set_status(self, status: EventStatus | str | None) -> None:
        if status != self._status:
            self._status = status
            _refilter(self)

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        model = self.sourceModel()
        if self._status is not None:
            record = model.record_at(source_row)
            if self._status == self.PROBLEMS:
                if not (
                    record.status in (EventStatus.FAILED, EventStatus.REJECTED)
                    or is_retrying(record)
                ):
                    return False
            elif record.status != self._status:
                return False
        return not self._needle or self._needle in model.search_text(source_row)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The events table stays newest first."""


__all__ = [
    "KEY_ROLE",
    "SORT_ROLE",
    "DealsModel",
    "DealsProxy",
    "EventsModel",
    "EventsProxy",
    "Source",
    "StageCatalog",
    "is_retrying",
]
