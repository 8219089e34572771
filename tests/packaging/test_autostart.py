"""Start at login: the XDG autostart entry (Linux) and the LaunchAgent (macOS) written for real.

The entry's ``Exec=`` line is read back the way a desktop session reads it (the Desktop Entry
spec's unescaping, then shell-like word splitting) and the command is run: it must start this
app.
"""

from __future__ import annotations

import configparser
import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from deal_monitor.autostart import Autostart, launch_command

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def xdg_config(monkeypatch, tmp_path) -> Path:
    folder = tmp_path / "xdg config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


def read_desktop(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def exec_argv(value: str) -> list[str]:
    """What a desktop session runs for ``Exec=value`` (Desktop Entry spec, "The Exec key")."""
    text = value.replace("\\\\", "\\")  # the string escaping first: \\ -> \
    args: list[str] = []
    current, quoted, i, started = "", False, 0, False
    while i < len(text):
        char = text[i]
        if quoted and char == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            current += text[i + 1]
            i += 2
            continue
        if char == '"':
            quoted, started = not quoted, True
        elif char == " " and not quoted:
            if started:
                args.append(current)
            current, started = "", False
        else:
            current, started = current + char, True
        i += 1
    assert not quoted, value
    if started:
        args.append(current)
    return [arg.replace("%%", "%") for arg in args]


@pytest.mark.skipif(sys.platform == "win32", reason="XDG autostart is the Linux/BSD mechanism")
def test_enabling_writes_an_autostart_entry_that_starts_the_app(xdg_config, tmp_path):
    autostart = Autostart("linux")
    assert autostart.is_enabled() is False
    config_file = tmp_path / "my settings 100% $HOME \"q\".toml"
    autostart.set_enabled(True, launch_command(config_file))

    entry = xdg_config / "autostart" / "deal-monitor.desktop"
    assert entry.is_file()
    assert autostart.is_enabled() is True
    values = read_desktop(entry)
    assert values["Type"] == "Application" and values["Name"] == "Deal Monitor"
    argv = exec_argv(values["Exec"])
    assert argv == [sys.executable, "-m", "deal_monitor", "--config", str(config_file.resolve())]

    # the command line starts this app (asked for its help, so no window opens)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=120,
                            env=env, cwd=tmp_path)  # 120 s: only catches a hang
    assert result.returncode == 0, result.stderr
    assert "usage: deal-monitor" in result.stdout

    autostart.set_enabled(False)
    assert not entry.exists()
    assert autostart.is_enabled() is False
    autostart.set_enabled(False)  # nothing there: still fine


def test_an_entry_switched_off_by_the_desktop_counts_as_off(xdg_config):
    autostart = Autostart("linux")
    autostart.set_enabled(True, ["/opt/deal monitor/deal-monitor"])
    entry = xdg_config / "autostart" / "deal-monitor.desktop"
    assert read_desktop(entry)["Exec"] == '"/opt/deal monitor/deal-monitor"'
    # GNOME's "Startup Applications" switches an entry off by editing it, not deleting it
    entry.write_text(entry.read_text(encoding="utf-8").replace(
        "X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false"), encoding="utf-8")
    assert Autostart("linux").is_enabled() is False
    entry.write_text(entry.read_text(encoding="utf-8") + "Hidden=true\n", encoding="utf-8")
    assert Autostart("linux").is_enabled() is False
    # switching it on again writes a working entry over the edited one
    autostart.set_enabled(True, ["/opt/deal-monitor/deal-monitor"])
    assert autostart.is_enabled() is True
    assert read_desktop(entry)["Exec"] == "/opt/deal-monitor/deal-monitor"


def test_a_backslash_in_the_command_survives_both_escapings(xdg_config):
    command = ["/srv/odd\\dir/deal-monitor", "--config", "/home/u/a`b.toml"]
    Autostart("linux").set_enabled(True, command)
    values = read_desktop(xdg_config / "autostart" / "deal-monitor.desktop")
    assert exec_argv(values["Exec"]) == command


def test_macos_launch_agent(tmp_path):
    autostart = Autostart("darwin", home=tmp_path)
    command = ["/Applications/Deal Monitor.app/Contents/MacOS/deal-monitor"]
    autostart.set_enabled(True, command)
    plist = tmp_path / "Library" / "LaunchAgents" / "com.dealmonitor.DealMonitor.plist"
    data = plistlib.loads(plist.read_bytes())
    assert data["ProgramArguments"] == command and data["RunAtLoad"] is True
    assert data["Label"] == plist.stem
    assert autostart.is_enabled() is True
    autostart.set_enabled(False)
    assert not plist.exists() and autostart.is_enabled() is False


def test_the_windows_entry_is_only_touched_on_windows():
    autostart = Autostart("win32")
    if sys.platform == "win32":
        pytest.skip("the real Run key is not changed by tests")
    assert autostart.supported() is False
    assert autostart.is_enabled() is False
    with pytest.raises(OSError):
        autostart.set_enabled(True, ["C:\\Program Files\\Deal Monitor\\deal-monitor.exe"])
