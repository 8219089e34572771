"""The settings' mapping page and the dry-run window, on a real SQLite table and the simulator."""

from __future__ import annotations

import sqlite3
import tomllib

import pytest
from sqlalchemy import create_engine, inspect

from deal_monitor.gui.dryrundialog import DryRunDialog, parse_ids
from deal_monitor.gui.mappingpage import COL_CHECK, COL_CONVERT, COL_KIND, COL_NAME, COL_VALUE
from deal_monitor.gui.settingsdialog import SettingsDialog

from .conftest import WAIT_MS, make_settings

pytestmark = pytest.mark.gui

WAREHOUSE = ("CREATE TABLE warehouse_order (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, "
             "amount DECIMAL(12,2), closed DATE, manager VARCHAR(80), workshop INTEGER NOT NULL)")


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.execute(WAREHOUSE)
    return path


@pytest.fixture
def mapping_dialog(qtbot, sim, tmp_path, start_controller, warehouse):
    controller = start_controller(make_settings(tmp_path, sim), register=sim)
    dialog = SettingsDialog(controller)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.target_url.setText(f"sqlite:///{warehouse.as_posix()}")
    dialog.target_table.setText("warehouse_order")
    page = dialog.mapping_page
    dialog.tabs.setCurrentWidget(page)
    page.preset.setCurrentIndex(page.preset.findData("custom"))
    qtbot.waitUntil(lambda: page.table_read, timeout=WAIT_MS)
    return controller, dialog, page


def rows_of(page) -> dict[str, int]:
    return {page.columns.item(r, COL_NAME).text(): r for r in range(page.columns.rowCount())}


def set_source(page, column: str, kind: str, value: str = "", convert: str | None = None) -> None:
    row = rows_of(page)[column]
    kinds = page.columns.cellWidget(row, COL_KIND)
    kinds.setCurrentIndex(kinds.findData(kind))
    editor = page.columns.cellWidget(row, COL_VALUE)
    if kind in ("field", "lookup"):
        index = editor.findData(value)
        assert index >= 0, f"{value} is not offered"
        editor.setCurrentIndex(index)
    elif kind in ("template", "const"):
        editor.setText(value)
    if convert is not None:
        converts = page.columns.cellWidget(row, COL_CONVERT)
        converts.setCurrentIndex(converts.findData(convert))


def check_text(page, column: str) -> str:
    return page.columns.item(rows_of(page)[column], COL_CHECK).text()


def test_page_offers_the_tables_columns_and_the_portals_fields_with_labels(qtbot, mapping_dialog):
    _controller, _dialog, page = mapping_dialog
    assert list(rows_of(page)) == ["id", "name", "amount", "closed", "manager", "workshop"]
    qtbot.waitUntil(lambda: page.columns.fields[0][1] != "", timeout=WAIT_MS)
    set_source(page, "amount", "field", "OPPORTUNITY")
    editor = page.columns.cellWidget(rows_of(page)["amount"], COL_VALUE)
    labels = [editor.itemText(i) for i in range(editor.count())]
    assert "Сумма (OPPORTUNITY)" in labels  # the portal's own label, with the code
    # the portal's custom fields are offered too, under their own labels
    assert any(label.endswith("(UF_CRM_1721244482250)") and not label.startswith("UF_")
               for label in labels)
    # picking a field for a decimal column suggests the exact-decimal conversion
    converts = page.columns.cellWidget(rows_of(page)["amount"], COL_CONVERT)
    assert converts.currentData() == "decimal"


def test_a_mapping_the_table_cannot_take_blocks_save(qtbot, mapping_dialog, tmp_path):
    controller, dialog, page = mapping_dialog
    set_source(page, "name", "template", "Сделка №{ID} — {TITLE}")
    set_source(page, "closed", "field", "OPPORTUNITY", "decimal")  # a number into a date column
    assert "requires a value" in check_text(page, "workshop")  # NOT NULL, no source yet
    assert "cannot be written into a date column" in check_text(page, "closed")
    dialog.save()
    assert dialog.isVisible() and dialog.result() != SettingsDialog.DialogCode.Accepted
    assert "workshop" in dialog.save_msg.text()
    assert controller.settings.mapping.preset == "default"  # nothing applied
    assert not (tmp_path / "deal-monitor.toml").exists()

    set_source(page, "closed", "field", "CLOSEDATE", "date")
    set_source(page, "workshop", "const", "2", "int")
    assert page.blocking_problem(changed=True) == ""
    dialog.save()
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    saved = tomllib.loads((tmp_path / "deal-monitor.toml").read_text(encoding="utf-8"))
    assert saved["mapping"]["preset"] == "custom" and "key_column" not in saved["mapping"]  # the default ""
    assert saved["mapping"]["columns"] == {
        "name": "template:Сделка №{ID} — {TITLE}",
        "closed": "field:CLOSEDATE|date",
        "workshop": "const:2|int",
    }
    assert controller.settings.target.table == "warehouse_order"


def test_a_saved_column_the_table_lacks_stays_listed_and_marked(qtbot, sim, tmp_path, start_controller,
                                                                  warehouse):
    settings = make_settings(
        tmp_path, sim, target={"url": f"sqlite:///{warehouse.as_posix()}", "table": "warehouse_order"},
        mapping={"preset": "custom", "columns": {"name": "field:TITLE", "colour": "field:UF_CRM_1",
                                                  "workshop": "const:1|int"}})
    controller = start_controller(settings, wait=False)
    qtbot.waitUntil(lambda: bool(controller.start_error), timeout=WAIT_MS)
    assert "colour" in controller.start_error  # the app says why it cannot write
    dialog = SettingsDialog(controller)
    qtbot.addWidget(dialog)
    dialog.show()
    page = dialog.mapping_page
    dialog.tabs.setCurrentWidget(page)
    qtbot.waitUntil(lambda: page.table_read, timeout=WAIT_MS)
    assert "colour" in rows_of(page)
    assert "no such column" in check_text(page, "colour")
    set_source(page, "colour", "")  # "not written"
    assert page.blocking_problem(changed=True) == ""
    dialog.save()  # the fixed mapping starts the core that could not start before
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    qtbot.waitUntil(lambda: controller.running, timeout=WAIT_MS)
    assert "colour" not in controller.settings.mapping.columns


def test_seed_preset_turns_custom_when_a_column_is_changed(qtbot, mapping_dialog):
    _controller, _dialog, page = mapping_dialog
    page.preset.setCurrentIndex(page.preset.findData("seed"))
    kinds = page.columns.cellWidget(rows_of(page)["name"], COL_KIND)
    assert kinds.currentData() == "template"  # the seed's "Сделка №{ID} — {TITLE}"
    set_source(page, "manager", "lookup", "user_name:CREATED_BY_ID")  # who created the deal
    assert page.preset_name == "custom"
    edited = page.mapping_settings(_controller.settings.mapping)
    assert edited.columns["manager"] == "lookup:user_name:CREATED_BY_ID"
    assert edited.columns["name"] == "template:Сделка №{ID} — {TITLE}"


def test_dry_run_of_the_edited_mapping_writes_nothing(qtbot, sim, mapping_dialog, warehouse):
    controller, dialog, page = mapping_dialog
    deal_id = sim.portal.add_deal({"TITLE": "Стеллаж складской усиленный, 12 секций, RAL 5005",
                                   "STAGE_ID": "PREPARATION", "OPPORTUNITY": "1500.50"})
    set_source(page, "name", "field", "TITLE", "text")
    set_source(page, "amount", "field", "OPPORTUNITY", "decimal")
    set_source(page, "workshop", "const", "3", "int")
    dialog.open_dry_run()
    runner: DryRunDialog = dialog._dry_run
    qtbot.addWidget(runner)
    runner.ids.setText(str(deal_id))
    runner.run()
    qtbot.waitUntil(lambda: bool(runner.results), timeout=WAIT_MS)
    [result] = runner.results
    assert result.decision == "insert"
    assert result.refused  # 48 characters into VARCHAR(40)
    assert "48 characters, the column holds 40" in runner.problems.text()
    cells = {runner.rows.item(r, 0).text(): runner.rows.item(r, 2).text()
             for r in range(runner.rows.rowCount())}
    assert cells["amount"] == "1500.50" and cells["workshop"] == "3"
    engine = create_engine(f"sqlite:///{warehouse.as_posix()}")
    try:
        assert "warehouse_order_link" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM warehouse_order").scalar() == 0
    finally:
        engine.dispose()
    assert controller.settings.mapping.preset == "default"


def test_dry_run_button_in_the_main_window(qtbot, sim, app_window):
    controller, window = app_window
    deal_id = sim.portal.add_deal({"TITLE": "Шкаф", "STAGE_ID": "PREPARATION", "OPPORTUNITY": "900"})
    qtbot.waitUntil(lambda: controller.deal(deal_id) is not None, timeout=WAIT_MS)
    controller.pause()
    sim.portal.update_deal(deal_id, {"TITLE": "Шкаф-купе"})
    assert window.select_deal(deal_id)
    window.detail.dry_run_button.click()
    runner = window.dry_run_dialog
    qtbot.waitUntil(lambda: bool(runner.results), timeout=WAIT_MS)
    [result] = runner.results
    assert result.decision == "update"
    assert runner.deals.item(0, 1).text() == "update"
    changed = {runner.rows.item(r, 0).text(): (runner.rows.item(r, 1).text(), runner.rows.item(r, 2).text())
               for r in range(runner.rows.rowCount())}
    assert changed["title"] == ("Шкаф", "Шкаф-купе")
    assert controller.deal(deal_id).title == "Шкаф"  # nothing was written
    runner.close()


def test_dry_run_of_the_next_queued_events(qtbot, sim, app_window):
    controller, window = app_window
    controller.pause()
    first = sim.portal.add_deal({"TITLE": "Первый", "STAGE_ID": "PREPARATION"})
    second = sim.portal.add_deal({"TITLE": "Второй", "STAGE_ID": "NEW"})
    qtbot.waitUntil(lambda: controller.monitor.status().inbox_depth >= 2, timeout=WAIT_MS)
    runner = window.open_dry_run([])
    runner.next_button.click()
    qtbot.waitUntil(lambda: len(runner.results) == 2, timeout=WAIT_MS)
    assert {r.deal_id: r.decision for r in runner.results} == {first: "insert", second: "skip_stage"}
    assert controller.monitor.status().inbox_depth >= 2  # still queued: nothing was taken
    runner.close()


def test_parse_ids():
    assert parse_ids("12, 15 20;12") == [12, 15, 20]
    assert parse_ids("сделка 7") == [7]
    assert parse_ids("") == []


ORDER_LINES = ("CREATE TABLE order_line (row_id BIGINT PRIMARY KEY, deal_id BIGINT NOT NULL, "
               "item VARCHAR(80), qty DECIMAL(12,3), unit_price DECIMAL(12,2), "
               "line_no INTEGER NOT NULL)")


def open_order_lines(qtbot, page) -> None:
    """A valid deal mapping, then product rows into the warehouse's order_line table."""
    set_source(page, "name", "field", "TITLE", "text")
    set_source(page, "workshop", "const", "1", "int")
    page.product_table.setText("order_line")
    page.products.setChecked(True)
    page.product_table.editingFinished.emit()
    qtbot.waitUntil(lambda: page.product_columns.shapes is not None, timeout=WAIT_MS)


def product_rows_of(page) -> dict[str, int]:
    return page.product_columns.row_of()


def set_product_source(page, column: str, field: str, convert: str) -> None:
    table = page.product_columns
    row = product_rows_of(page)[column]
    kinds = table.cellWidget(row, COL_KIND)
    kinds.setCurrentIndex(kinds.findData("field"))
    editor = table.cellWidget(row, COL_VALUE)
    editor.setCurrentIndex(editor.findData(field))
    converts = table.cellWidget(row, COL_CONVERT)
    converts.setCurrentIndex(converts.findData(convert))


def test_product_rows_into_the_warehouses_own_table(qtbot, sim, mapping_dialog, warehouse, tmp_path):
    controller, dialog, page = mapping_dialog
    with sqlite3.connect(warehouse) as db:
        db.execute(ORDER_LINES)
    open_order_lines(qtbot, page)
    rows = product_rows_of(page)
    assert list(rows) == ["row_id", "deal_id", "item", "qty", "unit_price", "line_no"]
    # the app fills the keys; the planner cannot give them a source
    assert page.product_columns.cellWidget(rows["deal_id"], COL_KIND) is None
    assert "requires a value" in page.product_columns.item(rows["line_no"], COL_CHECK).text()
    set_product_source(page, "item", "PRODUCT_NAME", "text")
    set_product_source(page, "qty", "QUANTITY", "decimal")
    set_product_source(page, "unit_price", "PRICE", "decimal")
    dialog.save()
    assert dialog.isVisible() and "line_no" in dialog.save_msg.text()
    set_product_source(page, "line_no", "SORT", "int")
    assert page.blocking_problem(changed=True) == ""

    deal_id = sim.portal.add_deal({"TITLE": "Стеллаж", "STAGE_ID": "PREPARATION"})
    sim.portal.set_product_rows(deal_id, [
        {"PRODUCT_NAME": "Полка 1200", "PRICE": 1500, "QUANTITY": 4},
        {"PRODUCT_NAME": "Стойка", "PRICE": 800, "QUANTITY": 2}])
    dialog.open_dry_run()
    runner = dialog._dry_run
    qtbot.addWidget(runner)
    runner.ids.setText(str(deal_id))
    runner.run()
    qtbot.waitUntil(lambda: bool(runner.results), timeout=WAIT_MS)
    preview = runner.results[0].preview
    assert [(p["item"], str(p["qty"])) for p in preview.products] == [("Полка 1200", "4"), ("Стойка", "2")]
    assert "Product rows: 0 now → 2" in runner.products.text()
    runner.close()

    dialog.save()
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    saved = tomllib.loads((tmp_path / "deal-monitor.toml").read_text(encoding="utf-8"))["mapping"]
    assert saved["products"] is True and saved["product_table"] == "order_line"
    assert saved["product_columns"] == {
        "item": "field:PRODUCT_NAME|text", "qty": "field:QUANTITY|decimal",
        "unit_price": "field:PRICE|decimal", "line_no": "field:SORT|int"}


def test_the_product_tables_own_key_columns_are_chosen(qtbot, mapping_dialog, warehouse, tmp_path):
    _controller, dialog, page = mapping_dialog
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE order_line (line_id BIGINT PRIMARY KEY, order_deal BIGINT NOT NULL, "
                   "item VARCHAR(80))")
    open_order_lines(qtbot, page)
    # the table has neither deal_id nor row_id: the keys must be chosen
    assert any(p.code in ("missing_key", "keys_equal") and p.error for p in page.product_problems)
    page.product_deal_key.setCurrentIndex(page.product_deal_key.findData("order_deal"))
    page.product_row_key.setCurrentIndex(page.product_row_key.findData("line_id"))
    rows = product_rows_of(page)
    assert page.product_columns.cellWidget(rows["order_deal"], COL_KIND) is None  # filled by the app
    set_product_source(page, "item", "PRODUCT_NAME", "text")
    assert [p for p in page.product_problems if p.error] == []
    dialog.save()
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    saved = tomllib.loads((tmp_path / "deal-monitor.toml").read_text(encoding="utf-8"))["mapping"]
    assert (saved["product_deal_column"], saved["product_row_column"]) == ("order_deal", "line_id")
    assert saved["product_columns"] == {"item": "field:PRODUCT_NAME|text"}
