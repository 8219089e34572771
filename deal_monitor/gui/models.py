"""Table models for live data: deals and events, with a keyed index and sort/filter proxies.

Both models keep their rows in a Python list plus a dict from key (deal ID, event ID) to
position, so an update from the core is one ``dataChanged`` and a new row one
``beginInsertRows`` — never a reset per change. A whole snapshot (start-up, reload) and a
change of the deals filter are the only resets.

Sorting 100,000 rows through ``QSortFilterProxyModel.lessThan`` calls back into Python about
two million times (seconds), and filtering them through ``filterAcceptsRow`` 100,000 times
(hundreds of milliseconds); the deals model does both itself, in bulk (tens of milliseconds
to sort, a few to filter), behind an identity proxy. Header clicks reach the model through
the proxy's ``sort``. While sorted, changed rows are put back in order by one layout change
per batch of updates (throttled for very large tables).
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from itertools import compress, groupby, repeat
from operator import and_, attrgetter, contains, eq, itemgetter, or_
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractTableModel,
    QIdentityProxyModel,
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

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_DEAL_ROLES = frozenset(
    (_DISPLAY, _DECORATION, _TOOLTIP, _ALIGNMENT, _FOREGROUND, int(KEY_ROLE), int(SORT_ROLE))
)


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

    Storage, all in sort order and aligned by position: ``_all`` the deals, ``_texts`` the
    search key of each (``"<id> <title> "``, casefolded, built once when the row is stored)
    and ``_stages`` its (pipeline, stage) pair, one shared tuple per stage. ``_pos`` maps a
    deal ID to its position; ``_rows`` lists the positions the view shows, ascending (a
    ``range`` while nothing is filtered out), so a deal's row is found by bisection and a
    filter change builds no per-row index. Positions are the int objects of ``_ints`` (one
    per row, shared by ``_pos`` and ``_rows``), not fresh ones per filter.

    The search text of a deal is ``"<id> <title> <pipeline> <stage name> <stage ID>"``,
    casefolded and matched as one string (a needle may run from the title into the pipeline
    name), but the part after the title is kept once per stage: names arriving from the
    portal rebuild a handful of strings, not 100,000. A filter is a few C-level passes
    (``map``/``compress``) over the keys, a few milliseconds for 100,000 deals; a needle
    that extends the previous one looks only at the rows already shown.
    """

    ID, TITLE, PIPELINE, STAGE, AMOUNT, CLOSE_DATE, MODIFIED, SYNCED, STATE = range(9)
    COLUMN_COUNT = 9
    RESORT_THROTTLE_ROWS = 20_000  # above this, re-sort at most once a second

    def __init__(self, catalog: StageCatalog | None = None, parent=None) -> None:
        super().__init__(parent)
        self.catalog = catalog or StageCatalog()
        self._all: list[DealView] = []
        self._texts: list[str] = []
        self._stages: list[tuple[int, str]] = []
        self._pos: dict[int, int] = {}
        self._ints: list[int] = []
        self._rows: range | list[int] = range(0)
        self._stage_keys: dict[tuple[int, str], tuple[int, str]] = {}
        self._stage_texts: dict[tuple[int, str], str] = {}
        self._plan: _NeedlePlan | None = None
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
        return self._all[self._rows[row]]

    def row_of(self, deal_id: int) -> int | None:
        """The deal's row as the view sees it (None if unknown or filtered out)."""
        pos = self._pos.get(deal_id)
        if pos is None:
            return None
        rows = self._rows
        if isinstance(rows, range):
            return pos if pos < len(rows) else None
        row = bisect_left(rows, pos)
        return row if row < len(rows) and rows[row] == pos else None

    def deal(self, deal_id: int) -> DealView | None:
        pos = self._pos.get(deal_id)
        return None if pos is None else self._all[pos]

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
        # let the old rows go before the new ones are built
        self._all, self._texts, self._stages, self._pos = [], [], [], {}
        self._rows = range(0)
        self._stage_keys.clear()
        self._plan = None
        rows = list(deals)
        if self._sort_column >= 0:
            self._sort_deals(rows)
        self._all = rows
        self._texts = list(map(_deal_text, rows))
        self._stages = list(map(self._stage_key, rows))
        self._grow_ints(len(rows))
        self._pos = dict(zip(map(_DEAL_ID, rows), self._ints, strict=False))
        self._rows = self._select(range(len(rows)))
        self.endResetModel()

    def upsert(self, deal: DealView) -> None:
        self.upsert_many([deal])

    def upsert_many(self, deals: Iterable[DealView]) -> None:
        """Apply new readings: changed rows get ``dataChanged``, new rows are appended,
        rows that stop (or start) matching the filter leave (or join) the view."""
        key = self._key_func() if self._sort_column >= 0 else None
        order_changed = False
        shown: dict[int, None] = {}  # positions of deals joining the view, in arrival order
        hidden: set[int] = set()
        for deal in deals:
            pos = self._pos.get(deal.id)
            if pos is None:
                self._grow_ints(len(self._all) + 1)
                pos = self._pos[deal.id] = self._ints[len(self._all)]
                self._all.append(deal)
                self._texts.append(_deal_text(deal))
                self._stages.append(self._stage_key(deal))
                order_changed = order_changed or key is not None
                if self._matches_at(pos):
                    shown[pos] = None
                continue
            old = self._all[pos]
            if deal.synced_at < old.synced_at:
                continue  # an older reading arriving late
            self._all[pos] = deal
            if deal.title != old.title:
                self._texts[pos] = _deal_text(deal)
            if (deal.category_id, deal.stage_id) != self._stages[pos]:
                self._stages[pos] = self._stage_key(deal)
            if key is not None and key(old) != key(deal):
                order_changed = True
            matches = self._matches_at(pos)
            row = self.row_of(deal.id)
            if row is not None and matches:
                hidden.discard(row)  # (left earlier in this batch, and came back)
                self.dataChanged.emit(self.index(row, 0), self.index(row, self.COLUMN_COUNT - 1))
            elif row is not None:
                hidden.add(row)
            elif matches:
                shown[pos] = None
            else:
                shown.pop(pos, None)  # joined earlier in this batch, and left again
        if hidden:
            rows = self._rows
            assert isinstance(rows, list)  # nothing is hidden while nothing is filtered out
            for row in sorted(hidden, reverse=True):
                self.beginRemoveRows(QModelIndex(), row, row)
                del rows[row]
                self.endRemoveRows()
        if shown:
            self._show(sorted(shown))
            order_changed = order_changed or key is not None
        if order_changed:
            self._schedule_resort()

    def _show(self, positions: list[int]) -> None:
        """Insert rows for these positions (ascending), each run at its place in the view."""
        rows = self._rows
        if isinstance(rows, range):  # nothing filtered out: only new deals join, at the end
            self.beginInsertRows(QModelIndex(), len(rows), len(rows) + len(positions) - 1)
            self._rows = range(len(self._all))
            self.endInsertRows()
            return
        inserted = 0
        places = [bisect_left(rows, pos) for pos in positions]  # before any insertion
        for place, run in groupby(zip(places, positions, strict=True), key=itemgetter(0)):
            run_positions = [pos for _place, pos in run]
            first = place + inserted
            self.beginInsertRows(QModelIndex(), first, first + len(run_positions) - 1)
            rows[first:first] = run_positions
            self.endInsertRows()
            inserted += len(run_positions)

    def mark_failed(self, deal_id: int, error: str) -> None:
        """A sync of a deal we show failed: show it as failed until the next good sync."""
        old = self.deal(deal_id)
        if old is None:
            return
        self.upsert_many([dataclasses.replace(old, state=DealState.FAILED, error=error)])

    def catalog_changed(self) -> None:
        """Pipeline/stage names arrived: repaint those columns (and re-sort if sorted by them)."""
        self._stage_texts.clear()
        self._plan = None
        reset = bool(self._needle) and self._refilter(self._select(range(len(self._all))))
        if not reset and self._rows:
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

    def _stage_key(self, deal: DealView) -> tuple[int, str]:
        """The deal's (pipeline, stage): one shared tuple per stage."""
        key = (deal.category_id, deal.stage_id)
        found = self._stage_keys.get(key)
        if found is None:
            found = self._stage_keys[key] = key
            self._plan = None  # a stage the current needle was not matched against
        return found

    def _grow_ints(self, count: int) -> None:
        have = len(self._ints)
        if have < count:
            self._ints.extend(range(have, max(count, have + have // 8 + 16)))

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
        kept = [(self.deal_at(i.row()).id, i.column()) for i in persistent]
        order = self._ints[: len(self._all)]  # old positions, to be put in the new order
        self._sort_deals(order, self._all.__getitem__)
        shown = None if isinstance(self._rows, range) else set(self._rows)
        self._all = list(map(self._all.__getitem__, order))
        self._texts = list(map(self._texts.__getitem__, order))
        self._stages = list(map(self._stages.__getitem__, order))
        self._pos = dict(zip(map(_DEAL_ID, self._all), self._ints, strict=False))
        if shown is not None:
            self._rows = list(compress(self._ints, map(shown.__contains__, order)))
        self.changePersistentIndexList(
            persistent, [self.index(self.row_of(deal_id), col) for deal_id, col in kept]
        )
        self.layoutChanged.emit()

    def _sort_deals(self, items: list, deal_of: Callable[[Any], DealView] | None = None) -> None:
        """Sort ``items`` (deals, or what ``deal_of`` turns into deals) by the sort column,
        ties by deal ID: two stable passes on plain keys, not one on a tuple per row (the
        tuples would be tens of megabytes for 100,000 rows, and the heap keeps them)."""
        def by(key: Callable[[DealView], Any]) -> Callable[[Any], Any]:
            return key if deal_of is None else lambda item: key(deal_of(item))

        items.sort(key=by(_DEAL_ID), reverse=self._descending)
        primary = self._primary_key()
        if primary is not None:
            items.sort(key=by(primary), reverse=self._descending)

    def _primary_key(self) -> Callable[[DealView], Any] | None:
        """The sort column's key without the deal ID (None when sorted by the ID itself)."""
        column = self._sort_column
        catalog = self.catalog
        if column == self.TITLE:
            return lambda d: d.title.casefold()
        if column == self.PIPELINE:
            pipelines: dict[int, tuple[int, int]] = {}
            return lambda d: pipelines.get(d.category_id) or pipelines.setdefault(
                d.category_id, catalog.pipeline_rank(d.category_id))
        if column == self.STAGE:
            stages: dict[str, tuple[int, int, str]] = {}
            return lambda d: stages.get(d.stage_id) or stages.setdefault(
                d.stage_id, catalog.stage_rank(d.stage_id))
        if column == self.AMOUNT:
            return attrgetter("amount")
        if column == self.CLOSE_DATE:
            return lambda d: d.close_date or date.min
        if column == self.MODIFIED:
            return lambda d: _stamp(d.date_modify)
        if column == self.SYNCED:
            return _SYNCED_AT  # always set and timezone-aware (upserts compare it, too)
        if column == self.STATE:
            order = {s: i for i, s in enumerate(DealState)}
            return lambda d: order.get(d.state, 99)
        return None

    def _key_func(self) -> Callable[[DealView], Any]:
        """The full sort key of a deal: (the column's key, deal ID)."""
        primary = self._primary_key()
        if primary is None:
            return _DEAL_ID
        return lambda d: (primary(d), d.id)

    # -- filtering --------------------------------------------------------------------------------
    @property
    def filtering(self) -> bool:
        return bool(self._needle) or self._state_filter is not None

    def set_filter(self, needle: str, state: DealState | None) -> None:
        """Show only deals whose ID, title, pipeline or stage contains ``needle`` (and in
        ``state``); one reset of the view at most, the selection is the caller's to restore."""
        needle = needle.strip().casefold()
        if (needle, state) == (self._needle, self._state_filter):
            return
        # the new filter lets through a subset of the shown rows when its needle contains the
        # old one and the state filter did not widen; looking only at those pays off when
        # they are few (picking them out costs more than it saves while most are shown)
        narrower = self._needle in needle and self._state_filter in (None, state)
        few = len(self._rows) <= len(self._all) // 2
        candidates = self._rows if narrower and few else range(len(self._all))
        self._needle, self._state_filter = needle, state
        self._plan = None
        self._refilter(self._select(candidates))

    def _refilter(self, rows: range | list[int]) -> bool:
        """Show these rows: one reset, or none when the same rows stay shown (typing into a
        filter that still lets everything through changes nothing the view shows, and a reset
        costs the view work in proportion to the rows). Returns whether the view was reset."""
        old = self._rows
        if len(rows) == len(old) and (
            isinstance(rows, range) or isinstance(old, range) or rows == old
        ):  # (a range is every row, and so is any list as long as every row)
            self._rows = rows
            return False
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()
        return True

    def _select(self, candidates: range | list[int]) -> range | list[int]:
        """The positions among ``candidates`` (ascending) that the filter lets through."""
        if not self.filtering:
            return range(len(self._all))
        everything = isinstance(candidates, range) and len(candidates) == len(self._all)
        positions = self._ints if everything else candidates

        def column(values: list) -> list:
            return values if everything else list(map(values.__getitem__, candidates))

        mask: Iterable[Any] | None = None
        if self._needle:
            plan = self._needle_plan()
            if not plan.everywhere:
                texts = column(self._texts)
                mask = map(contains, texts, repeat(self._needle))
                if plan.stages or plan.spans:
                    stages = column(self._stages)
                    if plan.stages:
                        mask = map(or_, mask, map(plan.stages.__contains__, stages))
                    for head, across in plan.spans:
                        mask = map(or_, mask, map(and_, map(str.endswith, texts, repeat(head)),
                                                  map(across.__contains__, stages)))
        if self._state_filter is not None:
            states = map(_DEAL_STATE, column(self._all))
            in_state = map(eq, states, repeat(self._state_filter))
            mask = in_state if mask is None else map(and_, mask, in_state)
        if mask is None:
            return list(positions[: len(self._all)])
        return list(compress(positions, mask))

    def _matches_at(self, pos: int) -> bool:
        if self._state_filter is not None and self._all[pos].state != self._state_filter:
            return False
        if not self._needle:
            return True
        plan = self._needle_plan()
        text, stage = self._texts[pos], self._stages[pos]
        return (
            plan.everywhere
            or self._needle in text
            or stage in plan.stages
            or any(text.endswith(head) and stage in across for head, across in plan.spans)
        )

    def _needle_plan(self) -> _NeedlePlan:
        """Where the needle meets the per-stage part of the search text (worked out once per
        needle, catalog and set of stages)."""
        if self._plan is None:
            needle = self._needle
            texts = {key: self._stage_text(key) for key in self._stage_keys}
            stages = {key for key, text in texts.items() if needle in text}
            spans = []
            for cut in range(1, len(needle)):
                if needle[cut - 1] != " ":
                    continue  # a deal's part ends with a space: so must the needle's head
                tail = needle[cut:]
                across = {key for key, text in texts.items() if text.startswith(tail)} - stages
                if across:
                    spans.append((needle[:cut], frozenset(across)))
            everywhere = bool(texts) and len(stages) == len(texts)
            self._plan = _NeedlePlan(frozenset(stages), tuple(spans), everywhere)
        return self._plan

    def _stage_text(self, key: tuple[int, str]) -> str:
        text = self._stage_texts.get(key)
        if text is None:
            category_id, stage_id = key
            text = " ".join(
                (self.catalog.pipeline_name(category_id), self.catalog.stage_name(stage_id),
                 stage_id)
            ).casefold()
            self._stage_texts[key] = text
        return text

    def search_text(self, row: int) -> str:
        """What the filter looks in for this row: ID, title, pipeline, stage name and ID."""
        pos = self._rows[row]
        return self._texts[pos] + self._stage_text(self._stages[pos])

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
        # called for every role of every painted cell: plain int roles, the unused ones first
        role = int(role)
        if role not in _DEAL_ROLES or not index.isValid():
            return None
        deal = self._all[self._rows[index.row()]]
        column = index.column()
        if role == _DISPLAY:
            return self._display(deal, column)
        if role == _ALIGNMENT:
            return _ALIGN_RIGHT if column in (self.ID, self.AMOUNT) else _ALIGN_LEFT
        if role == _FOREGROUND:
            if deal.state == DealState.FAILED and column == self.STATE:
                return _RED
            if deal.state in (DealState.DELETED, DealState.SKIPPED):
                return _GREY
            return None
        if role == _DECORATION:
            if column == self.STAGE:
                return icons.swatch(self.catalog.stage_color(deal.stage_id))
            if column == self.STATE:
                return icons.state_icon(deal.state)
            return None
        if role == _TOOLTIP:
            return self._tooltip(deal, column)
        if role == KEY_ROLE:
            return deal.id
        return str(self._key_func()(deal))  # SORT_ROLE

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


_DEAL_ID = attrgetter("id")
_DEAL_STATE = attrgetter("state")
_SYNCED_AT = attrgetter("synced_at")


def _deal_text(deal: DealView) -> str:
    """The per-deal part of the search text; the stage's part follows it."""
    return f"{deal.id} {deal.title} ".casefold()


class _NeedlePlan(NamedTuple):
    """Where a needle meets the per-stage part of the search text ``"<id> <title> " + stage``:
    ``stages`` hold it in their own part; for ``(head, stages)`` in ``spans`` it starts in the
    deal's part (which ends with ``head``) and runs on into the stage's; ``everywhere``: every
    known stage holds it, so every deal matches."""

    stages: frozenset[tuple[int, str]]
    spans: tuple[tuple[str, frozenset[tuple[int, str]]], ...]
    everywhere: bool


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


class DealsProxy(QIdentityProxyModel):
    """Hands sorting and filtering to ``DealsModel`` (which does both in bulk); the view and
    its selection work through this proxy as usual.

    An identity proxy, not a ``QSortFilterProxyModel``: with nothing left for the proxy to
    sort or filter, the latter would still rebuild a row mapping of every row on each filter
    change and, for every cell painted, ask the model for its row and column counts (Python
    calls from C++)."""

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
