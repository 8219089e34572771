"""Start the desktop app at login: the Windows Run key, an XDG autostart entry, a LaunchAgent.

Qt-free, so the settings dialog and tests share it. ``Autostart()`` works on the running
platform; ``Autostart(platform, home)`` lets tests drive another platform's file-based entry
(Linux, macOS) in a temporary folder. The Windows Run key lives in the registry and is only
touched on Windows.

The command written is the one that started this app (``launch_command()``): the frozen
executable, or the interpreter with ``-m deal_monitor`` (``pythonw`` on Windows: no console),
plus ``--config`` when the app runs on a settings file other than the default one.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import platformdirs

ENTRY_NAME = "Deal Monitor"  # the Run value's name: packaging/windows/deal-monitor.iss removes it
DESKTOP_FILE = "deal-monitor.desktop"
LAUNCH_AGENT = "com.dealmonitor.DealMonitor"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"


def launch_command(config_file: Path | None = None) -> list[str]:
    """The command line that starts this same app with a window."""
    if getattr(sys, "frozen", False):  # PyInstaller bundle
        command = [sys.executable]
    else:
        python = Path(sys.executable)
        windowless = python.with_name("pythonw.exe")
        if sys.platform == "win32" and windowless.exists():
            python = windowless
        command = [str(python), "-m", "deal_monitor"]
    if config_file is not None:
        command += ["--config", str(Path(config_file).resolve())]
    return command


def desktop_exec(command: Sequence[str]) -> str:
    """``Exec=`` value per the Desktop Entry spec: quote arguments, escape ``"`$\\`` and ``%``."""
    parts = []
    for arg in command:
        arg = arg.replace("%", "%%")
        if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
            parts.append(arg)
            continue
        quoted = "".join("\\" + c if c in '"`$\\' else c for c in arg)
        parts.append(f'"{quoted}"')
    # the spec's string escaping comes on top of the quoting: a backslash is written twice
    return " ".join(parts).replace("\\", "\\\\")


def desktop_entry(command: Sequence[str], *, autostart: bool) -> str:
    """A ``.desktop`` file for the app (the menu entry, or the autostart one)."""
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Name=Deal Monitor",
        "Comment=Keeps the production database in step with Bitrix24 deals",
        "Comment[ru]=Переносит сделки Битрикс24 в базу данных производства",
        f"Exec={desktop_exec(command)}",
        "Icon=deal-monitor",
        "Terminal=false",
        "Categories=Office;",
        "StartupWMClass=DealMonitor",  # Qt: WM_CLASS is the application name
    ]
    if autostart:
        lines.append("X-GNOME-Autostart-enabled=true")
    return "\n".join(lines) + "\n"


class Autostart:
    """Whether the app starts at login, and switching it on or off for the current user."""

    def __init__(self, platform: str | None = None, home: Path | None = None) -> None:
        self.platform = platform or sys.platform
        self.home = home

    # -- where -----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        if self.platform == "win32":
            return "windows"
        if self.platform == "darwin":
            return "macos"
        return "xdg"

    def entry_path(self) -> Path | None:
        """The file that holds the entry (None on Windows: a registry value)."""
        if self.kind == "xdg":
            base = self.home / ".config" if self.home else Path(platformdirs.user_config_dir())
            return base / "autostart" / DESKTOP_FILE
        if self.kind == "macos":
            return (self.home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT}.plist"
        return None

    def supported(self) -> bool:
        return self.kind != "windows" or sys.platform == "win32"

    # -- reading ---------------------------------------------------------------------------------
    def is_enabled(self) -> bool:
        """True when an entry exists and is not switched off (``Hidden=true`` and the like)."""
        if self.kind == "windows":
            return self._read_run_value() is not None
        path = self.entry_path()
        assert path is not None
        try:
            raw = path.read_bytes()
        except OSError:
            return False
        if self.kind == "macos":
            try:
                return not plistlib.loads(raw).get("Disabled", False)
            except Exception:  # noqa: BLE001 - a damaged file is no working entry
                return False
        values = _desktop_values(raw.decode("utf-8", "replace"))
        return (values.get("Hidden", "false") != "true"
                and values.get("X-GNOME-Autostart-enabled", "true") != "false")

    # -- writing ---------------------------------------------------------------------------------
    def set_enabled(self, enabled: bool, command: Sequence[str] | None = None) -> None:
        """Write (with ``command``, default ``launch_command()``) or remove the entry.

        Raises OSError when the entry cannot be written or removed.
        """
        if not enabled:
            self._remove()
            return
        command = list(command or launch_command())
        if self.kind == "windows":
            self._write_run_value(subprocess.list2cmdline(command))
            return
        path = self.entry_path()
        assert path is not None
        if self.kind == "macos":
            data = plistlib.dumps({"Label": LAUNCH_AGENT, "ProgramArguments": command,
                                   "RunAtLoad": True, "ProcessType": "Interactive"})
        else:
            data = desktop_entry(command, autostart=True).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _remove(self) -> None:
        if self.kind == "windows":
            import winreg

            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0,
                                    winreg.KEY_SET_VALUE) as key:
                    winreg.DeleteValue(key, ENTRY_NAME)
            except FileNotFoundError:
                pass
            return
        path = self.entry_path()
        assert path is not None
        path.unlink(missing_ok=True)

    def _read_run_value(self) -> str | None:
        if sys.platform != "win32":
            return None
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                value, _kind = winreg.QueryValueEx(key, ENTRY_NAME)
        except OSError:
            return None
        return str(value) or None

    def _write_run_value(self, command_line: str) -> None:
        if sys.platform != "win32":
            raise OSError("the Windows Run key exists only on Windows")
        import winreg

        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            winreg.SetValueEx(key, ENTRY_NAME, 0, winreg.REG_SZ, command_line)


def _desktop_values(text: str) -> dict[str, str]:
    """The keys of the ``[Desktop Entry]`` group (no locale handling: only flags are read)."""
    values: dict[str, str] = {}
    group = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            group = line
            continue
        if group == "[Desktop Entry]" and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


__all__ = ["Autostart", "desktop_entry", "desktop_exec", "launch_command"]
