"""Fixtures for the GUI suite: offscreen Qt, isolated settings, a simulator and a started app.

``QT_QPA_PLATFORM=offscreen`` is set here, before anything imports Qt. Every test gets its own
QSettings folder, user folders and a keyring that refuses everything, so nothing touches the
developer's real settings, keychain, cache or data.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything loads Qt

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QCoreApplication, QSettings  # noqa: E402

from deal_monitor import config  # noqa: E402
from deal_monitor.credentials import MemoryStore  # noqa: E402
from deal_monitor.simulator import PortalSimulator  # noqa: E402

WAIT_MS = 15_000


@pytest.fixture(autouse=True)
def isolated_user_dirs(monkeypatch, tmp_path: Path) -> Iterator[Path]:
    """User folders, the keyring and QSettings of each test are its own, never the real ones."""
    home = tmp_path / "home"
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(home / name.lower()))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    yield home


@pytest.fixture(autouse=True)
def isolated_qsettings(qapp, tmp_path: Path) -> Iterator[Path]:
    """Window cosmetics go to a fresh folder per test."""
    QCoreApplication.setOrganizationName("DealMonitorTests")
    QCoreApplication.setApplicationName("DealMonitorTests")
    folder = tmp_path / "qsettings"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(scope="session")
def qm_cache(tmp_path_factory) -> Path:
    """Translations compiled once per session."""
    return tmp_path_factory.mktemp("qm")


@pytest.fixture(autouse=True)
def english(qapp, qm_cache: Path) -> Iterator[None]:
    """Tests read English labels unless they switch the language themselves."""
    from deal_monitor.gui.i18n import Translations

    translations = Translations(cache=qm_cache)
    translations.install("en")
    yield
    translations.install("en")


@pytest.fixture
def sim() -> Iterator[PortalSimulator]:
    simulator = PortalSimulator(plan="standard", rate_limit=True)
    simulator.start("127.0.0.1", 0)
    yield simulator
    simulator.stop()


def make_settings(tmp_path: Path, sim: PortalSimulator | None = None, **sections):
    data = {
        "storage": {"data_dir": str(tmp_path / "data")},
        "listener": {"port": 0},
        "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0.0},
    }
    if sim is not None:
        data["portal"] = {"webhook_url": sim.webhook_url, "application_token": sim.application_token}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config.from_mapping(data, env={})


@pytest.fixture
def start_controller(qtbot, tmp_path: Path):
    """A function that builds and starts an AppController; stopped after the test."""
    from deal_monitor.gui.controller import AppController

    made: list[AppController] = []

    def start(settings, *, secrets=None, wait: bool = True, register: PortalSimulator | None = None,
              demo=None):
        controller = AppController(
            settings, secrets or MemoryStore(), config_path=tmp_path / "deal-monitor.toml",
            secrets_persistent=False, demo=demo)
        made.append(controller)
        controller.start()
        if wait:
            qtbot.waitUntil(lambda: controller.running and not controller.loading, timeout=WAIT_MS)
            if register is not None:
                register.add_outgoing_webhook(controller.monitor.status().listen_url)
        return controller

    yield start
    for controller in made:
        controller.shutdown()


@pytest.fixture
def app_window(qtbot, sim, tmp_path, start_controller):
    """A started controller against the simulator, and its main window (no tray)."""
    from deal_monitor.gui.mainwindow import MainWindow

    controller = start_controller(make_settings(tmp_path, sim), register=sim)
    window = MainWindow(controller, tray_available=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: controller.catalog.loaded, timeout=WAIT_MS)
    return controller, window
