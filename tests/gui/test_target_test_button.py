"""The Settings "Test" button for the target database follows the mapping and writes nothing
(the doctor's inspection); checked with plain SQL on every real engine."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from deal_monitor.gui.settingsdialog import SettingsDialog

from .conftest import WAIT_MS, make_settings

pytestmark = pytest.mark.gui

SEED_SHAPED = ("CREATE TABLE {table} ({id}, name VARCHAR(255), date DATE, "
               "amount NUMERIC(18,2), comment TEXT, accounting INTEGER)")
# a key the database fills itself, as in the seed's MySQL table
SERIAL = {"sqlite": "id INTEGER PRIMARY KEY", "postgresql": "id SERIAL PRIMARY KEY",
          "mysql": "id INTEGER AUTO_INCREMENT PRIMARY KEY"}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _test(qtbot, dlg) -> str:
    dlg.target_test.click()
    qtbot.waitUntil(lambda: dlg.target_test.isEnabled()
                    and "Checking" not in dlg.target_msg.text(), timeout=WAIT_MS)
    return dlg.target_msg.text()


def _dialog(qtbot, controller) -> SettingsDialog:
    dlg = SettingsDialog(controller)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def test_the_default_table_is_not_created_by_testing(qtbot, sim, tmp_path, start_controller,
                                                     target_url, table_name):
    controller = start_controller(make_settings(tmp_path, sim), wait=False)
    dlg = _dialog(qtbot, controller)
    dlg.target_url.setText(target_url)
    dlg.target_table.setText(table_name)
    before = _tables(target_url)
    message = _test(qtbot, dlg)
    assert dlg.target_msg.ok, message
    assert f"table {table_name} does not exist yet and will be created" in message
    assert _tables(target_url) == before  # nothing created, not even the link table


def test_a_seed_shaped_table_passes_with_the_seed_mapping_and_is_left_alone(
        qtbot, sim, tmp_path, start_controller, target_url, table_name):
    engine = create_engine(target_url)
    with engine.begin() as conn:
        conn.execute(text(SEED_SHAPED.format(table=table_name,
                                             id=SERIAL[engine.dialect.name])))
    engine.dispose()
    settings = make_settings(tmp_path, sim, target={"url": target_url, "table": table_name},
                             mapping={"preset": "seed"})
    controller = start_controller(settings)  # the running core may add its link table first
    dlg = _dialog(qtbot, controller)
    before = _tables(target_url)
    message = _test(qtbot, dlg)
    assert dlg.target_msg.ok, message
    assert f"table {table_name} can be written" in message
    assert _tables(target_url) == before
    engine = create_engine(target_url)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT COUNT(*) FROM {table_name}")).scalar() == 0
    engine.dispose()
    # the same mapping against a database without the table: said, and still nothing created
    other = f"sqlite:///{tmp_path / 'empty.db'}"
    dlg.target_url.setText(other)
    message = _test(qtbot, dlg)
    assert not dlg.target_msg.ok and f"Table {table_name} does not exist" in message
    assert _tables(other) == set()


def test_an_unusable_url_says_so(qtbot, sim, tmp_path, start_controller):
    controller = start_controller(make_settings(tmp_path, sim), wait=False)
    dlg = _dialog(qtbot, controller)
    dlg.target_url.setText("nonsense-driver://x")
    message = _test(qtbot, dlg)
    assert not dlg.target_msg.ok and message
