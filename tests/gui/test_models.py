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

from .conftest import WAIT_MS

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


# -- filtering: the whole search text, as the user types --------------------------------------

MANY_TITLES = ["Steel racks", "Ventilation", "Powder coating", "Steel doors", "Racks, painted",
               "Сделка №5", "СТАЛЬНЫЕ стеллажи", "straße"]
MANY_STAGES = [(1, "C1:EXECUTING"), (1, "C1:NEW"), (0, "NEW"), (0, "WON"), (7, "C7:UNKNOWN")]
MANY_STATES = [DealState.SYNCED, DealState.SYNCED, DealState.SKIPPED, DealState.FAILED]


def many_deals(count: int = 240) -> list[DealView]:
    out = []
    for i in range(1, count + 1):
        category_id, stage_id = MANY_STAGES[i % len(MANY_STAGES)]
        out.append(deal(i, title=f"{MANY_TITLES[i % len(MANY_TITLES)]} {i % 13}",
                        category_id=category_id, stage_id=stage_id,
                        state=MANY_STATES[i % len(MANY_STATES)],
                        synced_at=NOW + timedelta(seconds=i % 17)))
    return out


def expected_ids(deals, catalog: StageCatalog, needle: str, state=None) -> list[int]:
    """What the filter must show, straight from its definition: the needle in
    "<id> <title> <pipeline> <stage name> <stage ID>", casefolded (in the model's order)."""
    needle = needle.strip().casefold()
    return [
        d.id for d in deals
        if (state is None or d.state == state)
        and needle in " ".join((str(d.id), d.title, catalog.pipeline_name(d.category_id),
                                catalog.stage_name(d.stage_id), d.stage_id)).casefold()
    ]


def shown_ids(model: DealsModel) -> list[int]:
    return [model.deal_at(r).id for r in range(model.rowCount())]


def test_search_text_is_id_title_pipeline_and_stage(qapp):
    model = DealsModel(StageCatalog(PIPELINES))
    model.load([deal(31, title="Powder Coating")])
    assert model.search_text(0) == "31 powder coating production in production c1:executing"


def test_typing_and_deleting_match_the_whole_search_text(qapp):
    """Every prefix typed, then deleted again, with and without a state filter: the rows shown
    are exactly those whose search text holds the needle, including needles that run from
    the title into the pipeline name, stage names, stage IDs and IDs."""
    catalog = StageCatalog(PIPELINES)
    model = DealsModel(catalog)
    proxy = DealsProxy()
    proxy.setSourceModel(model)
    model.load(many_deals())
    everything = shown_ids(model)
    queries = ["steel racks 1", "racks 4 production", "3 general won", "in production c1:ex",
               "сделка №5 1", "стальные", "STRASSE", "won", "c7:unknown", "#7", "12 ", " "]
    for state in (None, DealState.SYNCED, DealState.FAILED):
        proxy.set_state(state)
        for query in queries:
            typed = [query[:n] for n in range(1, len(query) + 1)]
            for text in typed + typed[::-1][1:]:
                proxy.set_text(text)
                assert shown_ids(model) == expected_ids(model.deals(), catalog, text, state), text
                assert proxy.rowCount() == model.rowCount()
        proxy.set_text("")
    proxy.set_state(None)
    assert shown_ids(model) == everything and not model.filtering


def test_rows_and_keys_agree_while_filtered(qapp):
    model = DealsModel(StageCatalog(PIPELINES))
    model.load(many_deals())
    model.set_filter("steel", None)
    for row in range(model.rowCount()):
        found = model.deal_at(row)
        assert model.row_of(found.id) == row
        assert "steel" in model.search_text(row)
    hidden = next(d for d in model.deals() if "steel" not in d.title.casefold())
    assert model.row_of(hidden.id) is None and model.deal(hidden.id) == hidden
    assert model.row_of(10_000) is None and model.deal(10_000) is None


def test_stage_names_arriving_refilter(qapp):
    catalog = StageCatalog()
    model = DealsModel(catalog)
    model.load([deal(1, title="Steel racks"), deal(2, stage_id="NEW", category_id=0)])
    model.set_filter("in production", None)
    assert model.rowCount() == 0  # no names yet: the stage is only "C1:EXECUTING"
    catalog.set(PIPELINES)
    model.catalog_changed()
    assert shown_ids(model) == [1]
    model.set_filter("steel racks production", None)  # title, then the pipeline's name
    assert shown_ids(model) == [1]


def test_updates_while_filtered_keep_the_view_consistent(qapp):
    catalog = StageCatalog(PIPELINES)
    model = DealsModel(catalog)
    proxy = DealsProxy()
    proxy.setSourceModel(model)
    model.load(many_deals())
    proxy.set_text("steel")
    later = NOW + timedelta(minutes=1)
    model.upsert_many([
        deal(2, title="Steel beams", synced_at=later),  # joins
        deal(1, title="Wooden racks", synced_at=later),  # leaves
        deal(500, title="Steel, new"),  # a new deal that matches
        deal(501, title="Glass"),  # a new deal that does not
        deal(502, title="Steel wire"),  # joins with this batch...
        deal(502, title="Copper wire", synced_at=later),  # ...and leaves it again
        deal(3, title="Powder", stage_id="C1:NEW", synced_at=later),
        deal(8, title="Glass", synced_at=later),  # leaves with this batch...
        deal(8, title="Steel glass", synced_at=later),  # ...and comes back
    ])
    assert shown_ids(model) == expected_ids(model.deals(), catalog, "steel")
    assert model.total == 243 and 500 in shown_ids(model) and 502 not in shown_ids(model)
    assert 8 in shown_ids(model)
    for text in ("steel ", "steel b", "steel"):  # narrowing (few rows shown) and back
        proxy.set_text(text)
        assert shown_ids(model) == expected_ids(model.deals(), catalog, text)
    proxy.set_text("")
    assert shown_ids(model) == [d.id for d in model.deals()]


def test_sorting_breaks_ties_by_id_both_ways_and_keeps_the_filter(qapp):
    model = DealsModel(StageCatalog(PIPELINES))
    model.load([deal(i, amount=Decimal(i % 3), title=f"Deal {i} {'odd' if i % 2 else 'even'}")
                for i in range(1, 10)])
    model.sort(DealsModel.AMOUNT, Qt.SortOrder.AscendingOrder)
    assert shown_ids(model) == [3, 6, 9, 1, 4, 7, 2, 5, 8]
    model.sort(DealsModel.AMOUNT, Qt.SortOrder.DescendingOrder)
    assert shown_ids(model) == [8, 5, 2, 7, 4, 1, 9, 6, 3]
    model.set_filter("odd", None)
    model.sort(DealsModel.AMOUNT, Qt.SortOrder.AscendingOrder)
    assert shown_ids(model) == [3, 9, 1, 7, 5]
    model.sort(DealsModel.SYNCED, Qt.SortOrder.DescendingOrder)  # all equal: by ID
    assert shown_ids(model) == [9, 7, 5, 3, 1]
    assert [model.row_of(i) for i in (9, 1, 2)] == [0, 4, None]


def test_window_filter_keeps_selection_counts_and_live_rows(qtbot, app_window):
    controller, window = app_window
    model = controller.deals_model
    model.load([deal(i, title=f"Order {i}") for i in range(1, 11)])
    view, selection = window.deals_view, window.deals_view.selectionModel()
    window._reselect([3, 7], 7)  # select as the user would: rows of deals 3 and 7, 7 current
    assert sorted(window.selected_deal_ids()) == [3, 7]

    window.deals_filter.setText("order 7")  # typed: the filter timer applies it
    qtbot.waitUntil(lambda: window.deals_proxy.rowCount() == 1, timeout=WAIT_MS)
    assert window.selected_deal_ids() == [7]
    assert model.deal_at(window.deals_proxy.mapToSource(view.currentIndex()).row()).id == 7
    assert window.deals_count.text() == "1 of 10 deals"
    # a quick refilter is not held back: the timer only gathers keys already typed
    assert window._filter_timer.interval() == 0

    model.upsert(deal(3, title="Order 77", synced_at=NOW + timedelta(seconds=1)))  # joins live
    assert sorted(window.selected_deal_ids()) == [7] and window.deals_proxy.rowCount() == 2
    qtbot.waitUntil(lambda: window.deals_count.text() == "2 of 10 deals", timeout=WAIT_MS)

    window.retranslate()
    assert window.deals_proxy.rowCount() == 2 and window.selected_deal_ids() == [7]

    selection.clearSelection()
    window._reselect(list(range(1, 11)), None)  # every deal: shown ones selected, as one range
    assert sorted(window.selected_deal_ids()) == [3, 7]

    window.deals_filter.clear()
    qtbot.waitUntil(lambda: window.deals_proxy.rowCount() == 10, timeout=WAIT_MS)
    assert sorted(window.selected_deal_ids()) == [3, 7]
    assert window.deals_count.text() == "10 deals"


def test_filter_resets_the_view_only_when_the_rows_change(qapp):
    model = DealsModel(StageCatalog(PIPELINES))
    model.load([deal(i, title=f"Order {i}") for i in range(1, 41)])
    spy = Spy(model)
    for text in ("o", "or", "order"):  # every deal still matches: the view has nothing to redo
        model.set_filter(text, None)
    assert spy.resets == 0 and model.filtering and model.rowCount() == 40
    model.set_filter("order 1", None)
    assert spy.resets == 1 and shown_ids(model) == [1] + list(range(10, 20))
    model.set_filter("order", None)
    assert spy.resets == 2 and model.rowCount() == 40
    model.set_filter("", None)
    assert spy.resets == 2 and not model.filtering and model.row_of(40) == 39


def test_stage_names_arriving_repaint_a_filtered_view(qapp):
    catalog = StageCatalog()
    model = DealsModel(catalog)
    model.load([deal(1, title="Steel racks"), deal(2, title="Steel doors")])
    model.set_filter("steel", None)
    spy = Spy(model)
    catalog.set(PIPELINES)
    model.catalog_changed()  # the same rows stay shown: no reset, but the names repaint
    assert spy.resets == 0 and spy.changed
    assert model.index(0, DealsModel.STAGE).data() == "In production"
