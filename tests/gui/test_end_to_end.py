"""The real window, the real Monitor and the simulator over real HTTP."""

from __future__ import annotations

import tomllib

import pytest
from PySide6.QtCore import Qt

from deal_monitor.gui.mainwindow import MainWindow
from deal_monitor.gui.models import DealsModel, EventsModel
from deal_monitor.gui.stagefilter import StageFilterDialog
from deal_monitor.model import DealState, EventStatus

from .conftest import WAIT_MS, make_settings

pytestmark = pytest.mark.gui


def deal_row(controller, deal_id):
    return controller.deals_model.row_of(deal_id)


def test_an_event_shows_in_both_tables(qtbot, sim, app_window):
    controller, window = app_window
    deal_id = sim.portal.add_deal(
        {"TITLE": "Стеллажи для склада", "CATEGORY_ID": 1, "STAGE_ID": "C1:EXECUTING",
         "OPPORTUNITY": 275000, "CURRENCY_ID": "RUB"})
    qtbot.waitUntil(lambda: deal_row(controller, deal_id) is not None, timeout=WAIT_MS)
    deals = controller.deals_model
    row = deal_row(controller, deal_id)
    assert deals.index(row, DealsModel.TITLE).data() == "Стеллажи для склада"
    assert deals.index(row, DealsModel.STAGE).data() == "В производстве"
    assert deals.index(row, DealsModel.PIPELINE).data() == "Производство"
    assert "275,000.00" in deals.index(row, DealsModel.AMOUNT).data()
    assert deals.index(row, DealsModel.STATE).data() == "sent to production"

    events = controller.events_model
    pushed = [r for r in events.records() if r.deal_id == deal_id and r.event == "ONCRMDEALADD"]
    assert pushed, "the pushed event is listed"
    qtbot.waitUntil(lambda: events.record(pushed[0].id).status == EventStatus.SYNCED,
                    timeout=WAIT_MS)
    row = events.row_of(pushed[0].id)
    assert events.index(row, EventsModel.SOURCE).data() == "push"
    assert events.index(row, EventsModel.SENDER).data() == "127.0.0.1"
    assert events.index(row, EventsModel.STATUS).data() == "synced"

    # the window shows it too, through the proxies
    assert window.deals_proxy.rowCount() >= 1
    assert window.tabs.tabText(0).startswith("Deals (")
    qtbot.waitUntil(lambda: "Last event" in window.last_event_field.text(), timeout=WAIT_MS)
    assert window.listen_field.text().startswith("Receiving events at http://127.0.0.1:")


def test_selecting_a_deal_shows_its_timeline_and_changes(qtbot, sim, app_window):
    controller, window = app_window
    deal_id = sim.portal.add_deal({"TITLE": "Order", "CATEGORY_ID": 1, "STAGE_ID": "C1:PREPARATION",
                                   "OPPORTUNITY": 1000})
    qtbot.waitUntil(lambda: deal_row(controller, deal_id) is not None, timeout=WAIT_MS)
    sim.portal.update_deal(deal_id, {"STAGE_ID": "C1:EXECUTING", "OPPORTUNITY": 2500})
    qtbot.waitUntil(
        lambda: controller.deal(deal_id).stage_id == "C1:EXECUTING", timeout=WAIT_MS)
    assert window.select_deal(deal_id)
    qtbot.waitUntil(lambda: window.detail.deal_id == deal_id, timeout=WAIT_MS)
    assert window.detail.title.text() == "Order"
    model = window.detail.timeline_model
    steps = [model.index(r, 1).data() for r in range(model.rowCount())]
    assert "Written" in steps and "Read" in steps and "Events" in steps
    written = [r for r in range(model.rowCount()) if model.index(r, 1).data() == "Written"]
    changes = {}
    for r in written:
        parent = model.index(r, 0)
        for c in range(model.rowCount(parent)):
            changes[model.index(c, 1, parent).data()] = model.index(c, 2, parent).data()
    assert changes["Stage"] == "Согласование ТЗ  →  В производстве"
    assert changes["Amount"] == "₽1,000.00  →  ₽2,500.00"


def test_resync_button_reads_the_deal_again(qtbot, sim, app_window):
    controller, window = app_window
    deal_id = sim.portal.add_deal({"TITLE": "Resync me", "CATEGORY_ID": 1,
                                   "STAGE_ID": "C1:EXECUTING"})
    qtbot.waitUntil(lambda: deal_row(controller, deal_id) is not None, timeout=WAIT_MS)
    synced_at = controller.deal(deal_id).synced_at
    before = sim.stats.calls_by_method["crm.deal.get"] + sim.stats.calls_by_method["batch"]
    window.select_deal(deal_id)
    assert window.selected_deal_ids() == [deal_id]
    qtbot.keyClick(window.deals_view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(
        lambda: sim.stats.calls_by_method["crm.deal.get"] + sim.stats.calls_by_method["batch"]
        > before, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: controller.deal(deal_id).synced_at > synced_at, timeout=WAIT_MS)
    manual = [r for r in controller.events_model.records()
              if r.deal_id == deal_id and r.event == "RESYNC"]
    assert manual and manual[0].source.value == "manual"


def test_stage_filter_change_takes_effect(qtbot, sim, app_window, tmp_path):
    controller, window = app_window
    deal_id = sim.portal.add_deal({"TITLE": "New one", "CATEGORY_ID": 1, "STAGE_ID": "C1:NEW"})
    qtbot.waitUntil(lambda: deal_row(controller, deal_id) is not None, timeout=WAIT_MS)
    assert controller.deal(deal_id).state == DealState.SKIPPED

    dialog = StageFilterDialog(controller, window)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.stage_item("C1:NEW") is not None, timeout=WAIT_MS)
    item = dialog.stage_item("C1:NEW")
    assert item.text(0) == "Заявка получена"
    assert item.checkState(0) == Qt.CheckState.Checked
    item.setCheckState(0, Qt.CheckState.Unchecked)  # as a click does
    assert not controller.monitor.stage_filter.skips("C1:NEW")
    assert dialog.released == [deal_id]
    assert dialog.released_bar.isVisible()
    saved = tomllib.loads((tmp_path / "deal-monitor.toml").read_text(encoding="utf-8"))
    assert "C1:NEW" not in saved["sync"]["skip_stages"]
    assert "webhook_url" not in saved.get("portal", {})  # never a secret in the file

    dialog.released_bar.action.click()
    qtbot.waitUntil(lambda: controller.deal(deal_id).state == DealState.SYNCED, timeout=WAIT_MS)

    # skipping a stage again applies at once to new deals
    item = dialog.stage_item("C1:EXECUTING")
    item.setCheckState(0, Qt.CheckState.Checked)
    other = sim.portal.add_deal({"TITLE": "Held back", "CATEGORY_ID": 1,
                                 "STAGE_ID": "C1:EXECUTING"})
    qtbot.waitUntil(lambda: deal_row(controller, other) is not None, timeout=WAIT_MS)
    assert controller.deal(other).state == DealState.SKIPPED


def test_failure_shows_in_status_bar_and_as_notification(qtbot, sim, tmp_path, start_controller):
    settings = make_settings(tmp_path, sim, sync={"max_attempts": 1})
    controller = start_controller(settings, register=sim)
    window = MainWindow(controller, tray_available=False)
    qtbot.addWidget(window)
    window.show()
    controller.notified.connect(window.show_notice)
    sim.faults.fail_next(1, status=400, method="crm.deal.get",
                         body={"error": "ERROR_CORE", "error_description": "Deal is locked"})
    deal_id = sim.portal.add_deal({"TITLE": "Broken", "CATEGORY_ID": 1,
                                   "STAGE_ID": "C1:EXECUTING"})
    qtbot.waitUntil(lambda: window.problem_field.isVisible(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "1 failed" in window.problem_field.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.notice_bar.isVisible(), timeout=WAIT_MS)
    assert "Sync failed" in window.notice_text()
    assert f"Deal {deal_id}" in window.notice_text()
    assert "Deal is locked" in window.notice_text()
    failed = [r for r in controller.events_model.records()
              if r.deal_id == deal_id and r.status == EventStatus.FAILED]
    assert failed and "Deal is locked" in failed[0].error
    assert controller.health() == "attention"
    assert window.retry_action.isEnabled()
    qtbot.waitUntil(lambda: window.tabs.tabText(1) == "Events (1 failed)", timeout=WAIT_MS)

    # the notification's button leads to the problems; Retry failed then fixes it
    window.notice_bar.action.click()
    assert window.tabs.currentIndex() == 1
    assert window.events_proxy.rowCount() >= 1
    assert window.retry_failed() == 1
    qtbot.waitUntil(lambda: controller.deal(deal_id) is not None
                    and controller.deal(deal_id).state == DealState.SYNCED, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.problem_field.isVisible(), timeout=WAIT_MS)


def test_target_that_cannot_be_written_is_reported(qtbot, sim, tmp_path, start_controller):
    target = tmp_path / "target.db"
    settings = make_settings(tmp_path, sim, target={"url": f"sqlite:///{target}"})
    controller = start_controller(settings, register=sim)
    window = MainWindow(controller, tray_available=False)
    qtbot.addWidget(window)
    window.show()
    controller.notified.connect(window.show_notice)
    import sqlite3

    with sqlite3.connect(target) as db:  # a trigger makes every write fail for good
        db.execute("CREATE TRIGGER no_writes BEFORE INSERT ON deal "
                   "BEGIN SELECT RAISE(ABORT, 'read-only replica'); END")
    sim.portal.add_deal({"TITLE": "Nowhere to go", "CATEGORY_ID": 1, "STAGE_ID": "C1:EXECUTING"})
    qtbot.waitUntil(lambda: window.problem_field.isVisible(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.notice_bar.isVisible(), timeout=WAIT_MS)
    assert "read-only replica" in window.problem_field.toolTip() + window.notice_text()


def test_pause_keeps_events_and_resume_syncs_them(qtbot, sim, app_window):
    controller, window = app_window
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: controller.status.paused, timeout=WAIT_MS)
    assert window.pause_action.text() == "Resume processing"
    deal_id = sim.portal.add_deal({"TITLE": "Wait", "CATEGORY_ID": 1, "STAGE_ID": "C1:EXECUTING"})
    qtbot.waitUntil(
        lambda: any(r.deal_id == deal_id for r in controller.events_model.records()),
        timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "paused" in window.queue_field.text(), timeout=WAIT_MS)
    assert controller.health() == "paused"
    assert deal_row(controller, deal_id) is None
    window.pause_action.trigger()
    qtbot.waitUntil(lambda: deal_row(controller, deal_id) is not None, timeout=WAIT_MS)
    assert window.pause_action.text() == "Pause processing"


def test_resync_all_shows_progress_and_finishes(qtbot, sim, app_window):
    controller, window = app_window
    sim.portal.bulk_add(120)
    seen = []
    controller.progress_updated.connect(seen.append)
    controller.notified.connect(window.show_notice)
    window.ask = lambda title, question: True  # the confirmation, answered
    shown = []
    controller.progress_updated.connect(lambda p: shown.append(window.progress_widget.isVisible()))
    assert window.resync_all()
    qtbot.waitUntil(lambda: any(p.finished for p in seen), timeout=WAIT_MS)
    assert any(shown), "the progress bar was shown while it ran"
    assert any(p.total == 120 and not p.finished for p in seen)
    assert not window.progress_widget.isVisible()
    qtbot.waitUntil(lambda: "Resync finished" in window.notice_text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: controller.deals_model.rowCount() >= 120, timeout=WAIT_MS)


def test_resync_all_can_be_cancelled(qtbot, sim, app_window):
    controller, window = app_window
    sim.portal.bulk_add(400)
    sim.latency = 0.2
    seen = []
    controller.progress_updated.connect(seen.append)
    assert window.resync_all(confirm=False)
    qtbot.waitUntil(lambda: window.progress_widget.isVisible(), timeout=WAIT_MS)
    window.progress_cancel.click()
    qtbot.waitUntil(lambda: any(p.finished for p in seen), timeout=WAIT_MS)
    assert any(p.cancelled for p in seen if p.finished)
    sim.latency = 0.0
