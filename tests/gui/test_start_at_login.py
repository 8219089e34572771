"""Settings → "Start Deal Monitor when I log in": the checkbox writes and removes the real entry."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from deal_monitor.gui.settingsdialog import SettingsDialog

from .conftest import make_settings

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif(sys.platform in ("win32", "darwin"),
                                 reason="the XDG autostart entry is the Linux/BSD mechanism")]


def open_dialog(qtbot, controller) -> SettingsDialog:
    dlg = SettingsDialog(controller)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def entry_file() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "deal-monitor.desktop"


def test_the_checkbox_switches_start_at_login(qtbot, sim, tmp_path, start_controller):
    controller = start_controller(make_settings(tmp_path, sim))
    dlg = open_dialog(qtbot, controller)
    assert not dlg.start_at_login.isChecked() and dlg.start_at_login.isEnabled()
    dlg.start_at_login.setChecked(True)
    dlg.save()
    assert not dlg.isVisible(), dlg.save_msg.text()
    text = entry_file().read_text(encoding="utf-8")
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    # the app runs on a settings file of its own: the login start must use the same one
    assert exec_line.endswith(f"--config {controller.config_path.resolve()}")
    assert "-m deal_monitor" in exec_line

    again = open_dialog(qtbot, controller)
    assert again.start_at_login.isChecked()
    again.start_at_login.setChecked(False)
    again.save()
    assert not entry_file().exists()


def test_a_failure_is_shown_and_the_dialog_stays_open(qtbot, sim, tmp_path, start_controller):
    controller = start_controller(make_settings(tmp_path, sim))
    entry_file().parent.parent.mkdir(parents=True, exist_ok=True)
    entry_file().parent.write_text("not a folder", encoding="utf-8")  # autostart/ is a file
    dlg = open_dialog(qtbot, controller)
    dlg.start_at_login.setChecked(True)
    dlg.save()
    assert dlg.isVisible()
    assert "Could not change the start at login" in dlg.save_msg.text()
