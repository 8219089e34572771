"""Folders by platformdirs without the "app author" level, and the move of an earlier one."""

from __future__ import annotations

import logging

import platformdirs.windows
import pytest

from deal_monitor import paths
from deal_monitor.instance import InstanceLock


@pytest.fixture
def windows(tmp_path, monkeypatch):
    """Windows' folder rules (platformdirs' own), with AppData under tmp_path."""
    local = tmp_path / "AppData" / "Local"
    folders = {"CSIDL_LOCAL_APPDATA": str(local), "CSIDL_APPDATA": str(tmp_path / "Roaming")}
    monkeypatch.setattr(platformdirs.windows, "get_win_folder", lambda name: folders[name])
    monkeypatch.setattr(paths, "PLATFORM_DIRS", platformdirs.windows.Windows)
    return local


def earlier_release(local) -> dict[str, bytes]:
    legacy = local / "DealMonitor" / "DealMonitor"
    files = {"state.db": b"SQLite format 3\x00state", "target.db": b"SQLite format 3\x00target",
             "deal-monitor.toml": b"[listener]\nport = 9000\n", "logs/deal-monitor.log": b"log\n"}
    for name, content in files.items():
        (legacy / name).parent.mkdir(parents=True, exist_ok=True)
        (legacy / name).write_bytes(content)
    return files


def test_windows_folder_has_no_author_level_and_earlier_files_move_up(windows):
    files = earlier_release(windows)
    data = paths.data_dir()
    assert data == windows / "DealMonitor"
    assert {name: (data / name).read_bytes() for name in files} == files
    assert not (windows / "DealMonitor" / "DealMonitor").exists()
    assert paths.default_config_file() == windows / "DealMonitor" / "deal-monitor.toml"
    assert paths.default_config_file().read_bytes() == files["deal-monitor.toml"]


def test_files_of_a_running_earlier_release_are_left_in_place(windows, caplog):
    files = earlier_release(windows)
    legacy = windows / "DealMonitor" / "DealMonitor"
    running = InstanceLock(legacy)
    assert running.acquire()
    try:
        with caplog.at_level(logging.WARNING, logger="deal_monitor.paths"):
            data = paths.data_dir()
        assert data == windows / "DealMonitor"
        assert "an earlier Deal Monitor is running" in caplog.text
        assert all((legacy / name).read_bytes() == content for name, content in files.items())
        assert not (data / "state.db").exists()
    finally:
        running.release()
    paths.data_dir()  # the next start, after the earlier one stopped, moves them
    assert (windows / "DealMonitor" / "state.db").read_bytes() == files["state.db"]


def test_a_name_in_both_places_is_not_overwritten(windows):
    files = earlier_release(windows)
    newer = windows / "DealMonitor" / "state.db"
    newer.write_bytes(b"newer")
    paths.data_dir()
    assert newer.read_bytes() == b"newer"
    legacy = windows / "DealMonitor" / "DealMonitor"
    assert (legacy / "state.db").read_bytes() == files["state.db"]  # kept, not lost
    assert (windows / "DealMonitor" / "target.db").read_bytes() == files["target.db"]
