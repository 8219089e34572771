"""Entry point of the desktop app: ``run_gui(args)`` (from ``python main.py``).

Start-up: one instance per user and settings file; the interface language; the settings
file (a broken one is reported, not fatal); the secret store (the OS keyring, or memory when
there is no secure one); the first-run wizard when nothing is configured, or the demo with
``--demo``; then the window, the tray icon, and the core on a worker thread.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QSystemTrayIcon

from .. import config, instance, logs, paths
from ..bitrix.oauth import CLIENT_SECRET_KEY
from ..cli import EXIT_ALREADY_RUNNING
from ..config import ConfigError, Settings
from ..credentials import KeyringStore, MemoryStore, SecretStoreUnavailable, open_token_store
from ..service import SECRET_APP_TOKEN, SECRET_WEBHOOK
from . import icons, texts
from .controller import AppController, Notice, ui_settings, write_settings_file
from .crash import CrashReporter
from .i18n import Translations, resolve_language
from .mainwindow import MainWindow
from .single import SingleInstance, instance_key
from .tray import TrayIcon

log = logging.getLogger(__name__)

ORGANIZATION = "DealMonitor"
APPLICATION = "DealMonitor"
# Windows groups taskbar buttons and names toast notifications by this ID; the Start-menu
# shortcut made by packaging/windows/deal-monitor.iss carries the same one
APP_USER_MODEL_ID = "DealMonitor.DealMonitor"
DESKTOP_FILE_NAME = "deal-monitor"  # packaging/linux/deal-monitor.desktop (Wayland app id)


def set_windows_app_id() -> bool:
    """Say "Deal Monitor", not "Python", in the taskbar and notifications (Windows only)."""
    if sys.platform != "win32":
        return False
    import ctypes

    try:
        result = ctypes.windll.shell32.SetCurrentProcessExplicitAppUserModelID(APP_USER_MODEL_ID)
    except (AttributeError, OSError) as exc:
        log.warning("cannot set the AppUserModelID: %s", exc)
        return False
    return result == 0  # S_OK


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused if one exists, as under pytest-qt)."""
    app = QApplication.instance()
    if app is None:
        set_windows_app_id()  # before the first window exists
        app = QApplication(argv if argv is not None else sys.argv[:1])
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Deal Monitor")
    app.setDesktopFileName(DESKTOP_FILE_NAME)
    app.setWindowIcon(icons.app_icon())
    return app


def open_secret_store() -> tuple[object, bool, str]:
    """(store, persistent, problem): the OS keyring if it is a secure one, else memory."""
    try:
        return KeyringStore(), True, ""
    except SecretStoreUnavailable as exc:
        log.warning("secrets kept in memory only: %s", exc)
        return MemoryStore(), False, str(exc)


class DesktopApp(QObject):
    """Wires the controller, the window, the tray and the single-instance guard together."""

    def __init__(self, app: QApplication, args: argparse.Namespace, *,
                 tray_available: bool | None = None, interactive: bool = True,
                 secret_store=None) -> None:
        super().__init__()
        self.app = app
        self.args = args
        self.interactive = interactive
        self.tray_available = (QSystemTrayIcon.isSystemTrayAvailable() if tray_available is None
                               else tray_available)
        self.translations = Translations()
        self.config_path = Path(args.config) if getattr(args, "config", None) else (
            paths.default_config_file())
        self.secret_store = secret_store
        self.controller: AppController | None = None
        self.window: MainWindow | None = None
        self.tray: TrayIcon | None = None
        self.single: SingleInstance | None = None
        self.data_lock: instance.DataFolderLock | None = None
        self.log_dir: Path | None = None
        self.demo = None
        self.crash: CrashReporter | None = None
        self._signal_timer: QTimer | None = None
        self._dialogs: dict[str, object] = {}
        self._quitting = False

    # -- start-up ------------------------------------------------------------------------------
    def language(self) -> str:
        requested = getattr(self.args, "lang", None) or str(ui_settings().value("ui/language", "") or "")
        return resolve_language(requested or None)

    def prepare(self) -> int | None:
        """Everything before the event loop; an exit code means: do not run."""
        self.translations.install(self.language())
        self.single = SingleInstance(instance_key(str(self.config_path.resolve())), self)
        if not self.single.claim():
            if self.single.notify_first():
                log.info("Deal Monitor is already running; asked it to show its window")
                return 0
            if not self.single.lock.held:
                log.error("another Deal Monitor window is starting and does not answer")
                return EXIT_ALREADY_RUNNING
        self.single.listen()

        settings = self.load_settings()
        if settings is None:
            return 2
        demo = None
        if getattr(self.args, "demo", False):
            # a throw-away data folder of its own: a demo never writes into a real user's
            # folder (its log included), nor waits for that folder's lock
            demo = self.start_demo()
        # the folder's lock before its log file: a refused start must not write (or rotate)
        # the log of the instance that runs there
        if not self.lock_data_folder(demo.settings() if demo is not None else settings):
            return EXIT_ALREADY_RUNNING
        data_dir = (demo.data_dir if demo is not None
                    else paths.data_dir(settings.storage.data_dir))
        self.use_data_folder(data_dir)

        store, persistent, problem = MemoryStore(), False, ""
        if demo is None and self.secret_store is not None:
            store, persistent = self.secret_store, True
        elif demo is None:
            store, persistent, problem = open_secret_store()
        tokens = store if persistent else open_token_store(data_dir)
        if demo is None and self.nothing_configured(settings, store) and self.interactive:
            choice = self.run_wizard(settings, store, tokens)
            if choice is None:
                return 0
            if choice == "demo":
                demo = self.start_demo()
            else:
                settings, store, persistent, problem = choice
        if demo is not None:
            settings = demo.settings()
            store, persistent, problem = MemoryStore(), False, ""
            tokens = store
            if demo.data_dir != data_dir:  # the wizard chose the demo: its own folder and log
                if self.data_lock is not None:
                    self.data_lock.release()
                if not self.lock_data_folder(settings):
                    return EXIT_ALREADY_RUNNING
                self.use_data_folder(demo.data_dir)

        self.controller = AppController(
            settings, store, config_path=self.config_path, secrets_persistent=persistent,
            secrets_problem=problem, demo=demo, parent=self, tokens=tokens,
            data_lock=self.data_lock)
        self.controller.settings_changed.connect(self._on_settings_changed)
        self.build_ui()
        self.controller.start()
        return None

    def use_data_folder(self, data_dir: Path) -> None:
        """The log file and the crash reports go to this data folder (the one whose lock is
        held); called again when Settings moved the data folder."""
        self.log_dir = data_dir / "logs"
        logs.setup(self.log_dir, level=logging.DEBUG if getattr(self.args, "verbose", False)
                   else logging.INFO, console=sys.stderr is not None)  # pythonw has no console
        if self.crash is None:
            self.crash = CrashReporter(self.log_dir, self, interactive=self.interactive)
            self.crash.install()
        else:
            self.crash.log_dir = self.log_dir

    def _on_settings_changed(self, settings: Settings) -> None:
        controller = self.controller
        if controller is None or controller.demo is not None:
            return
        data_dir = paths.data_dir(settings.storage.data_dir)
        if data_dir / "logs" != self.log_dir:
            log.info("data folder moved to %s; the log continues there", data_dir)
            self.use_data_folder(data_dir)

    def lock_data_folder(self, settings: Settings) -> bool:
        """Hold the data folder's lock (shared with the headless service); say so if taken."""
        lock = instance.for_settings(settings)
        try:
            self.data_lock = lock.acquire_or_raise()
            return True
        except instance.AlreadyRunning as exc:
            log.error("%s", exc)
            if self.interactive:
                QMessageBox.critical(None, self.tr("Deal Monitor"), self.tr(
                    "Deal Monitor is already running on this data folder (as a service, or a "
                    "window with another settings file):\n\n%1\n\nStop it first, or use it."
                ).replace("%1", str(lock.busy.path.parent)))
            return False

    def load_settings(self) -> Settings | None:
        path = self.config_path
        if not path.exists():
            return config.load(None)
        try:
            return config.load(path)
        except ConfigError as exc:
            log.error("settings file %s: %s", path, exc)
            if not self.interactive:
                return config.load(None)
            box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Deal Monitor"), self.tr(
                "The settings file has an error and cannot be used:\n\n%1\n\n%2").replace(
                    "%1", str(path)).replace(
                    "%2", f"{exc.key}: {texts.config_problem_text(exc.key, exc.problem)}"))
            defaults = box.addButton(self.tr("Start with default settings"),
                                     QMessageBox.ButtonRole.AcceptRole)
            box.addButton(self.tr("Quit"), QMessageBox.ButtonRole.RejectRole)
            box.exec()
            if box.clickedButton() is defaults:
                return config.load(None)
            return None

    def nothing_configured(self, settings: Settings, store) -> bool:
        if self.config_path.exists() or settings.portal.webhook_url:
            return False
        try:
            return not store.get(SECRET_WEBHOOK)
        except SecretStoreUnavailable:
            return True

    def run_wizard(self, settings: Settings, store, tokens):
        from .wizard import FirstRunDialog

        dialog = FirstRunDialog(default_port=settings.listener.port, settings=settings,
                                tokens=tokens)
        if dialog.exec() != FirstRunDialog.DialogCode.Accepted:
            return None
        if dialog.choice == "demo":
            return "demo"
        return self.wizard_result(dialog, settings, store)

    def wizard_result(self, dialog, settings: Settings, store):
        """Store what the wizard collected: secrets in the store, the rest in the settings file."""
        secrets = {SECRET_WEBHOOK: dialog.webhook_url, SECRET_APP_TOKEN: dialog.application_token}
        if dialog.choice == "app":
            secrets = {CLIENT_SECRET_KEY: dialog.client_secret.text()}
            settings = dialog.app_settings() or settings
        elif dialog.choice == "push":
            settings = settings.replace("listener", port=dialog.listen_port)
        persistent, problem = isinstance(store, KeyringStore), ""
        try:
            for name, value in secrets.items():
                store.set(name, value)
        except SecretStoreUnavailable as exc:
            problem = str(exc)
            persistent = False
            store = MemoryStore(secrets)
        try:
            write_settings_file(self.config_path, settings)
        except OSError as exc:
            log.error("cannot write %s: %s", self.config_path, exc)
        return settings, store, persistent, problem

    def start_demo(self):
        from .demo import DemoPortal

        demo = DemoPortal()
        demo.start()
        self.demo = demo
        return demo

    def build_ui(self) -> None:
        controller = self.controller
        assert controller is not None
        self.app.setQuitOnLastWindowClosed(not self.tray_available)
        self.window = MainWindow(controller, tray_available=self.tray_available)
        self.window.quit_requested.connect(self.quit)
        self.window.settings_requested.connect(self.open_settings)
        self.window.stage_filter_requested.connect(self.open_stage_filter)
        self.tray = TrayIcon(controller, self, available=lambda: self.tray_available)
        self.tray.open_requested.connect(self.show_window)
        self.tray.quit_requested.connect(self.quit)
        self.tray.problems_requested.connect(self.window.show_problems)
        self.tray.deal_requested.connect(self.window.select_deal)
        self.tray.show()
        controller.notified.connect(self.on_notified)
        if self.single is not None:
            self.single.activated.connect(self.show_window)
        self.app.aboutToQuit.connect(self.shutdown)
        self.window.show()
        if controller.secrets_problem and controller.demo is None and controller.configured:
            self.window.show_notice(Notice("error", self.tr("No secure keyring"), self.tr(
                "The webhook URL and the token are kept only until the app closes (%1).").replace(
                    "%1", controller.secrets_problem)))

    def install_signal_handlers(self) -> None:
        """Ctrl+C in a terminal quits cleanly (Python sees signals only between Qt events)."""
        if sys.platform != "win32":
            signal.signal(signal.SIGTERM, lambda *_a: QTimer.singleShot(0, self.quit))
        signal.signal(signal.SIGINT, lambda *_a: QTimer.singleShot(0, self.quit))
        self._signal_timer = QTimer(self)
        self._signal_timer.start(500)
        self._signal_timer.timeout.connect(lambda: None)

    # -- running -------------------------------------------------------------------------------
    def show_window(self) -> None:
        if self.window is not None:
            self.window.bring_to_front()

    def on_notified(self, notice: Notice) -> None:
        shown = self.tray is not None and self.tray.notify(notice)
        if not shown and self.window is not None:
            self.window.show_notice(notice)

    def _reuse(self, name: str):
        dialog = self._dialogs.get(name)
        try:
            if dialog is not None and dialog.isVisible():
                dialog.raise_()
                dialog.activateWindow()
                return dialog
        except RuntimeError:  # deleted on close
            pass
        return None

    def open_settings(self):
        from .settingsdialog import SettingsDialog

        dialog = self._reuse("settings")
        if dialog is not None:
            return dialog
        dialog = SettingsDialog(self.controller, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.language_chosen.connect(self.set_language)
        dialog.accepted.connect(lambda: self._settings_saved(dialog))
        self._dialogs["settings"] = dialog
        dialog.open()
        return dialog

    def _settings_saved(self, dialog) -> None:
        if dialog.problem and self.window is not None:
            self.window.show_notice(Notice("error", self.tr("Settings"), dialog.problem))
        elif self.window is not None:
            self.window.statusBar().showMessage(self.tr("Settings saved."), 4000)

    def open_stage_filter(self):
        from .stagefilter import StageFilterDialog

        dialog = self._reuse("stage_filter")
        if dialog is not None:
            return dialog
        dialog = StageFilterDialog(self.controller, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._dialogs["stage_filter"] = dialog
        dialog.open()
        return dialog

    def set_language(self, lang: str) -> None:
        self.translations.install(resolve_language(lang or None))
        if self.window is not None:
            self.window.retranslate()
        if self.tray is not None:
            self.tray.retranslate()

    def quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        if self.window is not None:
            self.window.quitting = True
            self.window.save_state()
            self.window.close()
        self.shutdown()
        self.app.quit()

    def shutdown(self) -> None:
        if self.controller is not None:
            self.controller.shutdown()
        elif self.demo is not None:  # refused before the controller took the demo over
            self.demo.stop()
            self.demo.cleanup()
        if self.tray is not None:
            self.tray.dispose()
        if self.single is not None:
            self.single.close()
        for lock in (self.data_lock, getattr(self.controller, "data_lock", None)):
            if lock is not None:
                lock.release()  # after the core stopped
        if self.crash is not None:
            self.crash.uninstall()


def no_display() -> bool:
    """A Linux/BSD session without X11 or Wayland (a server console, SSH without -X)."""
    if not sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return False
    if os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_gui(args: argparse.Namespace) -> int:
    """``python main.py``: open the window; returns the process exit code."""
    if no_display():
        print("error: no graphical display here. Run the service without a window: "
              "python main.py --headless", file=sys.stderr)
        return 2
    app = make_application()
    shell = DesktopApp(app, args)
    code = shell.prepare()
    if code is not None:
        shell.shutdown()
        return code
    shell.install_signal_handlers()
    return app.exec()


__all__ = ["DesktopApp", "make_application", "open_secret_store", "run_gui"]
