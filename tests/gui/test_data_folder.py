"""The data folder's lock follows the folder: Settings moving it takes the new folder's lock and
releases the old one, or refuses when another instance works there; a demo keeps to a throw-away
folder of its own."""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path

import pytest

from deal_monitor import config, paths
from deal_monitor.gui.app import DesktopApp, make_application
from deal_monitor.instance import InstanceLock
from tests.e2e.harness import HeadlessApp

from .conftest import WAIT_MS, make_settings
from .test_instance_lock import headless

pytestmark = pytest.mark.gui


def _window(qtbot, tmp_path: Path, sim) -> DesktopApp:
    path = tmp_path / "deal-monitor.toml"
    path.write_text(config.to_toml(make_settings(tmp_path, sim)), encoding="utf-8")
    args = argparse.Namespace(config=path, demo=False, lang="en", verbose=False)
    shell = DesktopApp(make_application(), args, tray_available=False, interactive=False)
    assert shell.prepare() is None
    qtbot.waitUntil(lambda: shell.controller.running, timeout=WAIT_MS)
    return shell


def _held_by_someone(folder: Path) -> bool:
    """Whether another handle holds the folder's lock (a second flock on a fresh handle)."""
    probe = InstanceLock(folder)
    if probe.acquire():
        probe.release()
        return False
    return True


def _log_files() -> list[str]:
    """The app's log files (its handlers are marked by deal_monitor.logs.setup)."""
    return [h.baseFilename for h in logging.getLogger().handlers
            if getattr(h, "_deal_monitor", False) and hasattr(h, "baseFilename")]


def _saved(tmp_path: Path) -> dict:
    return tomllib.loads((tmp_path / "deal-monitor.toml").read_text(encoding="utf-8"))


def test_moving_the_data_folder_moves_the_lock(qtbot, sim, tmp_path):
    old, new = tmp_path / "data", tmp_path / "moved"
    shell = _window(qtbot, tmp_path, sim)
    try:
        controller, first = shell.controller, shell.controller.monitor
        assert _held_by_someone(old) and not _held_by_someone(new)
        dialog = shell.open_settings()
        assert dialog.data_dir.text() == str(old)
        dialog.data_dir.setText("relative/folder")
        dialog.save()
        assert dialog.isVisible() and "full path" in dialog.data_dir_msg.text()
        dialog.data_dir.setText(str(new))
        dialog.save()
        assert dialog.result() == dialog.DialogCode.Accepted
        qtbot.waitUntil(lambda: controller.running and controller.monitor is not first
                        and not controller.loading, timeout=WAIT_MS)
        assert _held_by_someone(new)
        assert not _held_by_someone(old)  # released once the old core stopped
        assert _saved(tmp_path)["storage"]["data_dir"] == str(new)
        assert (new / "state.db").exists()  # the new core works there
        assert _log_files() == [str(new / "logs" / "deal-monitor.log")]
        # a second instance on the new folder is refused: the lock is real, across processes
        config_b = tmp_path / "b.toml"
        config_b.write_text(config.to_toml(make_settings(tmp_path, sim).replace(
            "storage", data_dir=str(new))), encoding="utf-8")
        refused = headless(config_b)
        assert refused.returncode == 4, refused.stderr
        assert f"already running on the data folder {new}" in refused.stderr
    finally:
        shell.quit()
    assert not _held_by_someone(new)


def test_a_data_folder_another_instance_uses_is_refused(qtbot, sim, tmp_path):
    old = tmp_path / "data"
    service = HeadlessApp(tmp_path / "service", sim).start()
    busy = service.workdir / "data"
    try:
        qtbot.waitUntil(lambda: _held_by_someone(busy), timeout=WAIT_MS)
        shell = _window(qtbot, tmp_path, sim)
        try:
            controller, first = shell.controller, shell.controller.monitor
            saved_before = _saved(tmp_path)
            dialog = shell.open_settings()
            dialog.data_dir.setText(str(busy))
            dialog.save()
            assert dialog.isVisible() and dialog.result() != dialog.DialogCode.Accepted
            message = dialog.data_dir_msg.text()
            assert "Another Deal Monitor" in message and str(busy) in message
            assert "was not changed" in message
            # the old folder is kept: same core, same lock, same settings file
            assert controller.monitor is first and controller.running
            assert controller.settings.storage.data_dir == str(old)
            assert _saved(tmp_path) == saved_before
            assert _held_by_someone(old)
            dialog.reject()
        finally:
            shell.quit()
        assert _held_by_someone(busy)  # the service's lock was never touched
    finally:
        assert service.stop() == 0


def test_the_demo_keeps_to_a_folder_of_its_own(qtbot, tmp_path, monkeypatch):
    import deal_monitor.gui.demo as demo_module

    monkeypatch.setattr(demo_module, "SEED_DEALS", 3)
    real = paths.data_dir("")  # the user's default data folder (isolated for the test)
    service = InstanceLock(real)
    assert service.acquire()  # a real instance works there
    args = argparse.Namespace(config=tmp_path / "deal-monitor.toml", demo=True, lang="en",
                              verbose=False)
    shell = DesktopApp(make_application(), args, tray_available=False, interactive=False)
    try:
        assert shell.prepare() is None  # not refused: the demo does not need that folder
        controller = shell.controller
        demo_dir = controller.demo.data_dir
        assert Path(controller.settings.storage.data_dir) == demo_dir != real
        qtbot.waitUntil(lambda: controller.deals_model.rowCount() >= 3, timeout=WAIT_MS)
        assert _held_by_someone(demo_dir)
        assert _log_files() == [str(demo_dir / "logs" / "deal-monitor.log")]
        assert sorted(p.name for p in real.iterdir()) == ["instance.lock"]  # nothing written
        # nor can Settings move the demo into a real folder
        dialog = shell.open_settings()
        assert dialog.data_dir.text() == str(demo_dir) and not dialog.data_dir.isEnabled()
        dialog.reject()
    finally:
        shell.quit()
        service.release()
    assert not demo_dir.exists()  # thrown away at the end


def test_the_demo_chosen_in_the_wizard_moves_the_log_to_its_folder(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    import deal_monitor.gui.demo as demo_module
    from deal_monitor.credentials import MemoryStore
    from deal_monitor.gui.wizard import FirstRunDialog

    monkeypatch.setattr(demo_module, "SEED_DEALS", 2)
    tries = [0]

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, FirstRunDialog):
            dialog.demo_button.click()
        elif tries[0] < 250:  # bounded: about 5 s
            tries[0] += 1
            QTimer.singleShot(20, answer)
        elif dialog is not None:  # never hang on another dialog
            dialog.reject()

    QTimer.singleShot(0, answer)
    real = paths.data_dir("")
    args = argparse.Namespace(config=tmp_path / "fresh.toml", demo=False, lang="en")
    shell = DesktopApp(make_application(), args, tray_available=False, interactive=True,
                       secret_store=MemoryStore())
    try:
        assert shell.prepare() is None
        qtbot.waitUntil(lambda: shell.controller.running, timeout=WAIT_MS)
        demo_dir = shell.controller.demo.data_dir
        assert _log_files() == [str(demo_dir / "logs" / "deal-monitor.log")]
        assert _held_by_someone(demo_dir)
        assert not _held_by_someone(real)  # the real folder's lock was given back
    finally:
        shell.quit()
