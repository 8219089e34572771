"""The window and the headless service share the data folder's lock; windows decide which is
first by a lock file, then hand over on the local socket."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

import pytest

from deal_monitor import config
from deal_monitor.gui.app import DesktopApp, make_application
from deal_monitor.gui.single import SingleInstance
from tests.e2e.harness import ROOT, HeadlessApp

from .conftest import WAIT_MS, make_settings

pytestmark = pytest.mark.gui


def headless(config_path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return subprocess.run(
        [sys.executable, "-m", "deal_monitor", "--headless", "--config", str(config_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def window(config_path) -> DesktopApp:
    args = argparse.Namespace(config=config_path, demo=False, lang="en", verbose=False)
    return DesktopApp(make_application(), args, tray_available=False, interactive=False)


def test_window_then_headless_on_one_data_folder_the_second_refuses(qtbot, sim, tmp_path):
    path = tmp_path / "deal-monitor.toml"
    path.write_text(config.to_toml(make_settings(tmp_path, sim)), encoding="utf-8")
    shell = window(path)
    try:
        assert shell.prepare() is None
        qtbot.waitUntil(lambda: shell.controller.running, timeout=WAIT_MS)
        result = headless(path)
        assert result.returncode == 4
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1
        assert f"already running on the data folder {tmp_path / 'data'}" in lines[0]
        assert f"process {os.getpid()}" in lines[0]
    finally:
        shell.quit()


def test_headless_then_window_on_one_data_folder_the_window_refuses(qtbot, sim, tmp_path):
    service = HeadlessApp(tmp_path / "service", sim).start()
    try:
        shell = window(service.config_path)
        try:
            assert shell.prepare() == 4
            assert shell.controller is None and shell.window is None
            # the refused window never opened the service's log file (it could rotate it)
            data = str(service.workdir / "data")
            assert not [h for h in logging.getLogger().handlers
                        if getattr(h, "baseFilename", "").startswith(data)]
        finally:
            shell.shutdown()
    finally:
        assert service.stop() == 0


def test_a_slow_first_window_is_not_displaced_and_is_raised(qtbot, tmp_path):
    key = f"DealMonitorTest-{tmp_path.name}"
    first = SingleInstance(key)
    assert first.claim()  # the first start got this far and is still busy (not listening)
    second = SingleInstance(key)
    assert not second.claim()
    assert not second.notify_first(wait_s=0.5)  # no answer yet, and it does not take over
    assert not second.lock.held
    assert first.listen()
    shown = []
    first.activated.connect(lambda: shown.append(True))
    assert second.notify_first(wait_s=5)
    qtbot.waitUntil(lambda: shown == [True], timeout=WAIT_MS)
    first.close()
    third = SingleInstance(key)
    assert third.claim()  # the first window is gone: the next start is the first
    third.close()
