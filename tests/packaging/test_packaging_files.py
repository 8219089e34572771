"""The installer files agree with the code, and the generated icons are what Windows and Linux read.

The Windows installer cannot be built here; what can be checked is that it names the same
AppUserModelID the app sets, the same Run value "start at login" writes, and the executable
the spec builds.
"""

from __future__ import annotations

import configparser
import re
import struct
import sys
from pathlib import Path

import pytest

from deal_monitor import autostart

ROOT = Path(__file__).resolve().parents[2]
ISS = ROOT / "packaging" / "windows" / "deal-monitor.iss"
SPEC = ROOT / "packaging" / "deal-monitor.spec"
DESKTOP = ROOT / "packaging" / "linux" / "deal-monitor.desktop"


def iss_defines() -> dict[str, str]:
    text = ISS.read_text(encoding="utf-8")
    return dict(re.findall(r'^#define (\w+) "(.*)"$', text, flags=re.MULTILINE))


def test_the_installer_uses_the_apps_own_ids():
    from deal_monitor.gui import app

    defines = iss_defines()
    assert defines["AppUserModelID"] == app.APP_USER_MODEL_ID
    assert defines["RunValueName"] == autostart.ENTRY_NAME
    assert defines["RunKey"] == autostart.RUN_KEY
    # the spec's executable and folder are what the installer copies and starts
    spec = SPEC.read_text(encoding="utf-8")
    assert re.search(r'EXE\(.*?name="deal-monitor"', spec, re.S)
    assert 'COLLECT(exe, a.binaries, a.datas, name="deal-monitor"' in spec
    assert defines["AppExe"] == "deal-monitor.exe"
    assert 'Source: "{#DistDir}\\deal-monitor\\*"' in ISS.read_text(encoding="utf-8")


def test_the_installer_is_per_user_and_speaks_russian():
    text = ISS.read_text(encoding="utf-8")
    assert "PrivilegesRequired=lowest" in text
    assert 'MessagesFile: "compiler:Languages\\Russian.isl"' in text
    russian = [line for line in text.splitlines() if line.startswith("russian.")]
    english = [line for line in text.splitlines() if line.startswith("english.")]
    assert {line.split("=")[0][8:] for line in russian} == {
        line.split("=")[0][8:] for line in english}, "every custom text in both languages"
    assert all(re.search("[а-яА-Я]", line) for line in russian)


def test_the_linux_menu_entry_matches_the_app():
    from deal_monitor.gui import app

    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(DESKTOP, encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] == "Deal Monitor"
    assert entry["StartupWMClass"] == app.APPLICATION  # Qt's WM_CLASS class is the app name
    assert DESKTOP.stem == app.DESKTOP_FILE_NAME  # the Wayland app id names this file
    assert entry["Icon"] == "deal-monitor" and entry["Exec"] == "deal-monitor"
    autostart_entry = autostart.desktop_entry(["deal-monitor"], autostart=False)
    assert autostart_entry.strip() == DESKTOP.read_text(encoding="utf-8").strip()


@pytest.mark.gui
def test_the_generated_icons(qapp, tmp_path):  # qapp: the suite needs a QApplication, not the
    # QGuiApplication make_icons would create on its own
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_icons import make_icons
    from PySide6.QtGui import QImage

    make_icons(tmp_path)
    ico = (tmp_path / "deal-monitor.ico").read_bytes()
    reserved, kind, count = struct.unpack_from("<HHH", ico)
    assert (reserved, kind) == (0, 1) and count >= 6
    sizes = []
    for index in range(count):
        width, height, _c, _r, _planes, bits, length, offset = struct.unpack_from(
            "<BBBBHHII", ico, 6 + 16 * index)
        side = width or 256
        image = QImage.fromData(ico[offset:offset + length], "PNG")
        assert (image.width(), image.height()) == (side, side) and bits == 32
        assert image.hasAlphaChannel() and image.pixelColor(0, 0).alpha() == 0  # round corners
        sizes.append(side)
    assert {16, 32, 48, 256} <= set(sizes)
    png = QImage(str(tmp_path / "deal-monitor.png"))
    assert (png.width(), png.height()) == (256, 256)
    # inside the rounded tile: the app's blue, not an empty render
    assert png.pixelColor(20, 128).name() == "#2563c9"
