"""The table models: keyed updates, inserts, sorting, filtering, 100,000 rows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableView

from deal_monitor.bitrix.stages import Pipeline, Stage
from deal_monitor.gui.models import (
    DealsModel,
    DealsProxy,
    EventsModel,
    EventsProxy,
    StageCatalog,
)
from deal_monitor.model import DealState, DealView, EventRecord, EventStatus, Source

pytestmark = pytest.mark.gui

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)

PIPELINES = [
    Pipeline(0, "General", (
        Stage("NEW", "New", "#39A8EF", 10, "process"),
        Stage("WON", "Won", "#7BD500", 20, "success"),
    )),
    Pipeline(1, "Production", (
        Stage("C1:NEW", "Order received", "#39A8EF", 10, "process"),
        Stage("C1:EXECUTING", "In production", "#47E4C2", 20, "process"),
    )),
]


def deal(deal_id: int, **changes) -> DealView:
    values = dict(
        id=deal_id, title=f"Deal {deal_id}", stage_id="C1:EXECUTING", category_id=1,
        amount=Decimal("1000.50"), currency_id="RUB", close_date=date(2026, 4, 1),
        date_modify=NOW, synced_at=NOW, state=DealState.SYNCED,
    )
    values.update(changes)
    return DealView(**values)


def record(event_id: int, **changes) -> EventRecord:
    values = dict(id=event_id, received_at=NOW + timedelta(seconds=event_id),
                  event="ONCRMDEALUPDATE", deal_id=event_id, source=Source.PUSH,
                  status=EventStatus.QUEUED)
    values.update(changes)
    return EventRecord(**values)


class Spy:
    """Counts the model's change signals."""

    def __init__(self, model) -> None:
        self.resets = 0
        self.changed: list[tuple[int, int]] = []
        self.inserted: list[tuple[int, int]] = []
        self.layouts = 0
        model.modelReset.connect(self._reset)
        model.dataChanged.connect(lambda a, b, *_r: self.changed.append((a.row(), b.row())))
        model.rowsInserted.connect(lambda _p, a, b: self.inserted.append((a, b)))
        model.layoutChanged.connect(self._layout)

    def _reset(self) -> None:
        self.resets += 1

    def _layout(self, *_args) -> None:
        self.layouts += 1


def test_deal_update_is_data_changed_not_reset(qapp):
    model = DealsModel(StageCatalog(PIPELINES))
    model.load([deal(i) for i in range(1, 6)])
    spy = Spy(model)
    model.upsert(deal(3, title="Renamed", synced_at=NOW + timedelta(seconds=5)))
    assert spy.resets == 0
    assert spy.changed == [(2, 2)]
    assert model.index(2, DealsModel.TITLE).data() == "Renamed"
    assert model.rowCount() == 5


def test_new_deal_is_inserted_and_indexed(qapp):
    model = DealsModel()
    model.load([deal(1), deal(2)])
    spy = Spy(model)
    model.upsert_many([deal(7), deal(8), deal(7, title="again")])
    assert spy.resets == 0
    assert spy.inserted == [(2, 3)]
    assert model.row_of(7) == 2 and model.row_of(8) == 3
    assert model.deal(7).title == "again"


def test_late_older_reading_is_ignored(qapp):
    model = DealsModel()
    model.load([deal(1, title="new", synced_at=NOW + timedelta(seconds=10))])
    model.upsert(deal(1, title="old", synced_at=NOW))
    assert model.deal(1).title == "new"


def test_names_come_from_the_catalog(qapp):
    catalog = StageCatalog()
    model = DealsModel(catalog)
    model.load([deal(1)])
    assert model.index(0, DealsModel.STAGE).data() == "C1:EXECUTING"
    spy = Spy(model)
    catalog.set(PIPELINES)
    model.catalog_changed()
    assert spy.resets == 0 and spy.changed
    assert model.index(0, DealsModel.STAGE).data() == "In production"
    assert model.index(0, DealsModel.PIPELINE).data() == "Production"
    swatch = model.index(0, DealsModel.STAGE).data(Qt.ItemDataRole.DecorationRole)
    assert not swatch.isNull()


def test_amount_and_dates_are_formatted(qapp):
    model = DealsModel()
    model.load([deal(1, amount=Decimal("1234567.5"))])
    amount = model.index(0, DealsModel.AMOUNT).data()
    assert "1,234,567.50" in amount and "₽" in amount
    assert model.index(0, DealsModel.CLOSE_DATE).data()


def test_sort_through_the_proxy_sorts_the_model(qapp):
    model = DealsModel(StageCatalog(PIPELINES))
    model.load([deal(1, title="banana"), deal(2, title="apple"), deal(3, title="cherry")])
    proxy = DealsProxy()
    proxy.setSourceModel(model)
    proxy.sort(DealsModel.TITLE, Qt.SortOrder.AscendingOrder)
    titles = [proxy.index(r, DealsModel.TITLE).data() for r in range(3)]
    assert titles == ["apple", "banana", "cherry"]
    assert model.row_of(2) == 0  # the keyed index follows the order
    proxy.sort(DealsModel.TITLE, Qt.SortOrder.DescendingOrder)
    assert [proxy.index(r, DealsModel.TITLE).data() for r in range(3)] == [
        "cherry", "banana", "apple"]


def test_sorted_model_puts_changed_rows_in_place(qtbot):
    model = DealsModel()
    model.load([deal(i, amount=Decimal(i)) for i in range(1, 5)])
    model.sort(DealsModel.AMOUNT, Qt.SortOrder.DescendingOrder)
    assert model.deal_at(0).id == 4
    spy = Spy(model)
    model.upsert(deal(1, amount=Decimal(100), synced_at=NOW + timedelta(seconds=1)))
    model.upsert(deal(9, amount=Decimal(50)))
    qtbot.waitUntil(lambda: spy.layouts > 0, timeout=2000)
    assert [model.deal_at(r).id for r in range(5)] == [1, 9, 4, 3, 2]
    assert spy.resets == 0


def test_selection_survives_a_resort(qtbot):
    model = DealsModel()
    model.load([deal(i, amount=Decimal(i)) for i in range(1, 5)])
    proxy = DealsProxy()
    proxy.setSourceModel(model)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.selectRow(model.row_of(2))
    model.sort(DealsModel.AMOUNT, Qt.SortOrder.DescendingOrder)
    selected = view.selectionModel().selectedRows()
    assert [model.deal_at(proxy.mapToSource(i).row()).id for i in selected] == [2]


def test_filter_as_you_type_and_by_state(qapp):
    model = DealsModel(StageCatalog(PIPELINES))
    model.load([
        deal(1, title="Steel racks"), deal(2, title="Ventilation", stage_id="NEW", category_id=0,
                                            state=DealState.SKIPPED),
        deal(31, title="Powder coating"),
    ])
    proxy = DealsProxy()
    proxy.setSourceModel(model)
    proxy.set_text("steel")
    assert proxy.rowCount() == 1
    proxy.set_text("in production")  # a stage name
    assert proxy.rowCount() == 2
    proxy.set_text("31")
    assert proxy.rowCount() == 1
    proxy.set_text("")
    proxy.set_state(DealState.SKIPPED)
    assert proxy.rowCount() == 1
    assert proxy.index(0, DealsModel.TITLE).data() == "Ventilation"


def test_filter_follows_updates(qapp):
    model = DealsModel()
    model.load([deal(1, title="alpha"), deal(2, title="beta")])
    proxy = DealsProxy()
    proxy.setSourceModel(model)
    proxy.set_text("gamma")
    assert proxy.rowCount() == 0
    model.upsert(deal(2, title="gamma", synced_at=NOW + timedelta(seconds=1)))
    assert proxy.rowCount() == 1
    model.upsert(deal(3, title="gamma two"))  # a new deal that matches joins the view
    assert proxy.rowCount() == 2
    model.upsert(deal(2, title="delta", synced_at=NOW + timedelta(seconds=2)))  # and leaves it
    assert proxy.rowCount() == 1 and model.row_of(2) is None and model.deal(2).title == "delta"
    assert model.total == 3
    proxy.set_text("")
    assert proxy.rowCount() == 3


def test_failed_mark_shows_state_and_error(qapp):
    model = DealsModel()
    model.load([deal(1)])
    model.mark_failed(1, "ERROR_CORE: boom")
    assert model.deal(1).state == DealState.FAILED
    assert model.index(0, DealsModel.STATE).data() == "sync failed"
    assert "boom" in model.index(0, DealsModel.STATE).data(Qt.ItemDataRole.ToolTipRole)


def test_hundred_thousand_deals(qtbot):
    deals = [
        deal(i, title=f"Deal number {i}", amount=Decimal(i % 977),
             synced_at=NOW - timedelta(seconds=i))
        for i in range(1, 100_001)
    ]
    model = DealsModel(StageCatalog(PIPELINES))
    proxy = DealsProxy()
    proxy.setSourceModel(model)
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.resize(900, 500)
    view.show()
    # (how fast this is lives in bench/: tests check behaviour only)
    model.load(deals)
    view.sortByColumn(DealsModel.AMOUNT, Qt.SortOrder.DescendingOrder)
    qtbot.wait(1)
    assert proxy.rowCount() == 100_000
    assert proxy.index(0, DealsModel.AMOUNT).data().startswith("₽976")

    spy = Spy(model)
    model.upsert_many(
        deal(i, title=f"Changed {i}", synced_at=NOW + timedelta(seconds=1)) for i in range(1, 1001)
    )
    assert spy.resets == 0 and len(spy.changed) == 1000

    proxy.set_text("number 99999")
    assert proxy.rowCount() == 1
    assert proxy.index(0, DealsModel.ID).data() == "99999"
    proxy.set_text("changed 10")  # updated titles are searched, not the old ones
    assert {proxy.index(r, DealsModel.ID).data() for r in range(proxy.rowCount())} == (
        {"10", "1000"} | {str(i) for i in range(100, 110)})
    proxy.set_text("")
    assert proxy.rowCount() == 100_000


def test_events_newest_first_and_updates_in_place(qapp):
    model = EventsModel()
    model.load([record(3), record(2), record(1)])
    assert model.index(0, EventsModel.DEAL).data() == "3"
    spy = Spy(model)
    model.upsert(record(4))
    assert spy.inserted == [(0, 0)] and spy.resets == 0
    assert model.index(0, EventsModel.DEAL).data() == "4"
    model.upsert(record(2, status=EventStatus.SYNCED, attempts=1))
    assert spy.changed == [(2, 2)]
    assert model.index(2, EventsModel.STATUS).data() == "synced"


def test_received_report_arriving_after_the_update_is_ignored(qapp):
    model = EventsModel()
    model.upsert(record(1, status=EventStatus.SYNCED, attempts=1))
    model.upsert(record(1))
    assert model.record(1).status == EventStatus.SYNCED


def test_rejected_request_lists_reason_and_sender(qapp):
    model = EventsModel()
    model.upsert(record(-1, event="HTTP 401", deal_id=None, status=EventStatus.REJECTED,
                        error="wrong application token", remote_addr="203.0.113.9"))
    assert model.index(0, EventsModel.EVENT).data() == "Request refused (HTTP 401)"
    assert model.index(0, EventsModel.ERROR).data() == "wrong application token"
    assert model.index(0, EventsModel.SENDER).data() == "203.0.113.9"


def test_events_model_keeps_a_bounded_window(qapp):
    model = EventsModel(limit=5)
    model.upsert_many([record(i) for i in range(1, 9)])
    assert model.rowCount() == 5
    assert model.record(1) is None and model.record(8) is not None
    model.upsert(record(8, status=EventStatus.SYNCED, attempts=1))
    assert model.index(0, EventsModel.STATUS).data() == "synced"


def test_events_filter_by_status_and_problems(qapp):
    model = EventsModel()
    model.load([
        record(1, status=EventStatus.SYNCED, attempts=1),
        record(2, status=EventStatus.FAILED, attempts=3, error="boom"),
        record(3, attempts=2, error="QUERY_LIMIT_EXCEEDED: slow down"),
        record(-4, event="HTTP 401", deal_id=None, status=EventStatus.REJECTED),
    ])
    proxy = EventsProxy()
    proxy.setSourceModel(model)
    proxy.set_status(EventsProxy.PROBLEMS)
    assert proxy.rowCount() == 3
    proxy.set_status(EventStatus.SYNCED)
    assert proxy.rowCount() == 1
    proxy.set_status(None)
    proxy.set_text("slow down")
    assert proxy.rowCount() == 1
    assert model.index(model.row_of(3), EventsModel.STATUS).data() == "waiting to retry"


def test_deal_view_copy_is_a_new_reading(qapp):
    model = DealsModel()
    original = deal(1)
    model.load([original])
    model.upsert(dataclasses.replace(original, state=DealState.DELETED))
    assert model.index(0, DealsModel.STATE).data() == "deleted in the portal"
