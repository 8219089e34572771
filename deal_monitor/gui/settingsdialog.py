"""The settings dialog: portal connection, listener, production database, notifications, language.

Every group has a "Test" button that runs its check off the GUI thread and says in plain words
what is wrong. Wrong input is shown under the field it belongs to. The webhook URL and the
application token are secrets: they go to the system keyring, never to the settings file;
when there is no secure keyring the dialog says so and keeps them for this session only.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from urllib.parse import urlsplit

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .. import config, paths, service
from ..autostart import Autostart, launch_command
from ..bitrix.oauth import CLIENT_SECRET_KEY
from ..config import ConfigError, Settings
from ..credentials import SecretStoreUnavailable
from . import icons, texts
from .controller import AppController, ui_settings
from .mappingpage import MappingPage
from .oauthfields import OAuthAdvanced
from .tasks import run_in_background
from .widgets import InlineMessage, field_row

_TOKEN = re.compile(r"[A-Za-z0-9]{16,64}")


def check_application_token(token: str) -> str:
    """Shape check of the outgoing webhook's token ("" when it looks right)."""
    from PySide6.QtCore import QCoreApplication

    token = token.strip()
    if not token:
        return QCoreApplication.translate(
            "SettingsDialog",
            "The token is empty. Copy it from the outgoing webhook's page in Bitrix24 "
            "(“Application token”).")
    if " " in token:
        return QCoreApplication.translate("SettingsDialog", "The token must not contain spaces.")
    if not _TOKEN.fullmatch(token):
        return QCoreApplication.translate(
            "SettingsDialog",
            "This does not look like a Bitrix24 application token (16–64 letters and digits).")
    return ""


class SecretEdit(QWidget):
    """A line edit for a secret with a show/hide toggle."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit(self)
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.toggle = QPushButton(self)
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._toggled)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.toggle)
        self._toggled(False)

    def _toggled(self, shown: bool) -> None:
        self.edit.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        self.toggle.setText(self.tr("Hide") if shown else self.tr("Show"))

    def text(self) -> str:
        return self.edit.text().strip()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming
        self.edit.setText(text)


class SettingsDialog(QDialog):
    """Edit and test the settings; Save applies them to the running app."""

    language_chosen = Signal(str)

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle(self.tr("Settings"))
        self.setWindowIcon(icons.icon("settings"))
        self.resize(720, 760)
        self._tasks = []
        self._forms: list[QFormLayout] = []
        self.problem = ""
        settings = controller.settings
        runtime = controller.monitor.settings

        # portal
        self.webhook = SecretEdit(self)
        self.webhook.edit.setPlaceholderText("https://example.bitrix24.ru/rest/1/abcdef123456/")
        self.webhook.setText(runtime.portal.webhook_url)
        self.webhook_msg = InlineMessage(self)
        self.webhook_test = QPushButton(self.tr("Test"), self)
        self.webhook_test.clicked.connect(self.test_webhook)
        self.token = SecretEdit(self)
        self.token.setText(runtime.portal.application_token)
        self.token_msg = InlineMessage(self)
        self.token_test = QPushButton(self.tr("Test"), self)
        self.token_test.clicked.connect(self.test_token)
        self.plan = QComboBox(self)
        self.plan.addItem(self.tr("Standard (2 requests per second)"), "standard")
        self.plan.addItem(self.tr("Enterprise (5 requests per second)"), "enterprise")
        self.plan.setCurrentIndex(max(0, self.plan.findData(settings.portal.plan)))
        self.keyring_note = QLabel(self)
        self.keyring_note.setWordWrap(True)
        if controller.demo is not None:
            self.keyring_note.setText(self.tr(
                "Demo mode: the simulated portal's address and token are shown; changes here "
                "last until the app closes."))
            self.keyring_note.setStyleSheet("color: #5B6675;")
        elif controller.secrets_persistent:
            self.keyring_note.setText(self.tr(
                "The webhook URL and the token are kept in the system keyring, not in the "
                "settings file."))
            self.keyring_note.setStyleSheet("color: #17803D;")
        else:
            self.keyring_note.setText(self.tr(
                "This computer has no secure keyring, so the webhook URL and the token are kept "
                "only until the app closes; they are never written to disk. You will be asked "
                "for them at the next start."))
            self.keyring_note.setStyleSheet("color: #8A5A00;")
        portal = QGroupBox(self.tr("Bitrix24 portal"), self)
        form = self._form(portal)
        form.addRow(self.tr("Inbound webhook URL"),
                    self._field(self.webhook, self.webhook_test, below=[self.webhook_msg]))
        form.addRow(self.tr("Application token"),
                    self._field(self.token, self.token_test, below=[self.token_msg]))
        form.addRow(self.tr("Portal plan"), self._field(self.plan, below=[self.keyring_note]))
        app_group = self._app_group(settings)

        # listener
        ls = settings.listener
        self.host = QLineEdit(ls.host, self)
        self.port = QSpinBox(self)
        self.port.setRange(0, 65535)
        self.port.setValue(ls.port)
        self.path = QLineEdit(ls.path, self)
        self.public_url = QLineEdit(ls.public_url, self)
        self.public_url.setPlaceholderText("https://deals.example.com/bitrix24/events")
        self.listen_msg = InlineMessage(self)
        self.listen_test = QPushButton(self.tr("Test"), self)
        self.listen_test.clicked.connect(self.test_listener)
        self.public_msg = InlineMessage(self)
        self.public_test = QPushButton(self.tr("Test"), self)
        self.public_test.clicked.connect(self.test_public_url)
        colon = QLabel(":", self)
        hint = self._hint(self.tr(
            "Bitrix24 sends events to the public URL (a tunnel or reverse proxy in front of this "
            "computer). Without one the app still finds every change by reconciliation, only "
            "later."))
        listener = QGroupBox(self.tr("Event listener"), self)
        form = self._form(listener)
        form.addRow(self.tr("Address and port"),
                    self._field(self.host, colon, self.port, self.listen_test,
                                below=[self.listen_msg], stretch=(2, 0, 1, 0)))
        form.addRow(self.tr("Path"), self.path)
        form.addRow(self.tr("Public URL"),
                    self._field(self.public_url, self.public_test, below=[self.public_msg, hint]))

        # target
        default_target = service.locations(settings).target_url
        self.target_url = QLineEdit(settings.target.url, self)
        self.target_url.setPlaceholderText(default_target)
        self.target_table = QLineEdit(settings.target.table, self)
        self.target_msg = InlineMessage(self)
        self.target_test = QPushButton(self.tr("Test"), self)
        self.target_test.clicked.connect(self.test_target)
        hint = self._hint(self.tr(
            "Empty: a SQLite file in the app's data folder. For PostgreSQL: "
            "postgresql+psycopg://user:password@host/database"))
        target = QGroupBox(self.tr("Production database"), self)
        form = self._form(target)
        form.addRow(self.tr("Database URL"),
                    self._field(self.target_url, self.target_test, below=[self.target_msg, hint]))
        form.addRow(self.tr("Table"), self.target_table)
        self.data_dir = QLineEdit(settings.storage.data_dir, self)
        # the standard folder, named without creating it
        self.data_dir.setPlaceholderText(
            paths.PLATFORM_DIRS(paths.APP_NAME, paths.APP_AUTHOR).user_data_dir)
        self.data_dir_choose = QPushButton(self.tr("Choose…"), self)
        self.data_dir_choose.clicked.connect(self.choose_data_dir)
        self.data_dir_msg = InlineMessage(self)
        if controller.demo is not None:  # the demo keeps to its throw-away folder
            self.data_dir.setEnabled(False)
            self.data_dir_choose.setEnabled(False)
        hint = self._hint(self.tr(
            "Empty: the standard folder shown. It holds the local state database (the event "
            "inbox), the default production database file and the logs. Another folder starts "
            "the app there with what that folder holds; the old folder is left as it is."))
        form.addRow(self.tr("Data folder"),
                    self._field(self.data_dir, self.data_dir_choose,
                                below=[self.data_dir_msg, hint]))

        # notifications and language
        self.notify_failures = QCheckBox(self.tr("When a deal cannot be synced"), self)
        self.notify_failures.setChecked(controller.notify_failures)
        self.notify_production = QCheckBox(
            self.tr("When a deal reaches the production database for the first time"), self)
        self.notify_production.setChecked(controller.notify_production)
        self.language = QComboBox(self)
        self.language.addItem(self.tr("As the system"), "")
        self.language.addItem("Русский", "ru")
        self.language.addItem("English", "en")
        current_language = str(ui_settings().value("ui/language", "") or "")
        self.language.setCurrentIndex(max(0, self.language.findData(current_language)))
        self.autostart = Autostart()
        self.start_at_login = QCheckBox(self.tr("Start Deal Monitor when I log in"), self)
        self.start_at_login.setChecked(self.autostart.is_enabled())
        self.start_at_login.setEnabled(self.autostart.supported())
        interface = QGroupBox(self.tr("Notifications and language"), self)
        form = self._form(interface)
        self.notify_test = QPushButton(self.tr("Test"), self)
        self.notify_test.clicked.connect(self.test_notification)
        form.addRow(self.tr("Notify"), self._field(self.notify_failures, self.notify_test,
                                                    below=[self.notify_production]))
        form.addRow(self.tr("Language"), self.language)
        form.addRow(self.tr("Start"), self.start_at_login)
        self._align_labels()

        self.save_msg = InlineMessage(self)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

        body = QWidget(self)
        body_layout = QVBoxLayout(body)
        for group in (portal, app_group, listener, target, interface):
            body_layout.addWidget(group)
        body_layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(body)

        # mapping: which deal data goes into which column
        self.mapping_page = MappingPage(settings.mapping, settings.target.table or "deal", self)
        self.mapping_page.set_reader(self._column_reader)
        self.mapping_page.dry_run_requested.connect(self.open_dry_run)
        self.mapping_page.preset.currentIndexChanged.connect(self._mapping_tab_shown)
        self.target_table.textChanged.connect(
            lambda text: self.mapping_page.set_table(text.strip() or "deal"))
        self.target_url.textChanged.connect(lambda _text: self.mapping_page.set_table(
            self.target_table.text().strip() or "deal", force=True))
        self._fields_loaded = False

        self.tabs = QTabWidget(self)
        self.tabs.addTab(scroll, icons.icon("settings"), self.tr("Connection"))
        self.tabs.addTab(self.mapping_page, icons.icon("deals"), self.tr("Production table"))
        self.tabs.currentChanged.connect(self._mapping_tab_shown)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.save_msg)
        layout.addWidget(self.buttons)

    def _app_group(self, settings: Settings) -> QGroupBox:
        """A local application signed in through the browser: used when no webhook is set."""
        portal = settings.portal
        self.app_portal = QLineEdit(portal.portal_url, self)
        self.app_portal.setPlaceholderText("https://example.bitrix24.ru")
        self.app_client_id = QLineEdit(portal.client_id, self)
        self.app_secret = SecretEdit(self)
        self.app_secret.edit.setPlaceholderText(self.tr("unchanged"))
        self.app_offline = QCheckBox(self.tr("Offline events (changes within about 2 s)"), self)
        self.app_offline.setChecked(portal.offline_events)
        hint = self._hint(self.tr(
            "Used when the inbound webhook URL above is empty. The portal shows the client ID "
            "and secret under Applications → Developer resources → Other → Local application. "
            "After saving, sign in from the main window (a portal administrator, for offline "
            "events)."))
        self.app_advanced = OAuthAdvanced(portal, self)
        group = QGroupBox(self.tr("Local application"), self)
        form = self._form(group)
        form.addRow(self.tr("Portal address"), self.app_portal)
        form.addRow(self.tr("Client ID"), self.app_client_id)
        form.addRow(self.tr("Client secret"), self._field(self.app_secret))
        form.addRow("", self._field(self.app_offline, below=[hint]))
        form.addRow("", self.app_advanced)
        return group

    def choose_data_dir(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        start = self.data_dir.text().strip() or self.data_dir.placeholderText()
        folder = QFileDialog.getExistingDirectory(self, self.tr("Data folder"), start)
        if folder:
            self.data_dir.setText(folder)

    # -- the mapping page -----------------------------------------------------------------------
    def _target_choice(self) -> tuple[str, str]:
        url = self.target_url.text().strip() or self.target_url.placeholderText()
        return url, self.target_table.text().strip() or "deal"

    def _column_reader(self, table: str):
        url, _table = self._target_choice()
        return lambda: service.read_target_columns(url, table)

    def _mapping_tab_shown(self, *_args) -> None:
        """On the mapping tab: read the table's columns and the portal's deal fields once."""
        if self.tabs.currentWidget() is not self.mapping_page:
            return
        page = self.mapping_page
        if self.width() < 1060:  # the column table needs the room
            self.resize(1060, max(self.height(), 700))
        if page.preset_name != "default" and not page.table_read and not page.read_error:
            page.read_table()
        if not self._fields_loaded and self.controller.running:
            self._fields_loaded = True
            monitor = self.controller.monitor
            self._tasks.append(run_in_background(
                monitor.deal_fields, page.set_fields, lambda _exc: None, name="fields",
                owner=self))

    def open_dry_run(self) -> None:
        from .dryrundialog import DryRunDialog

        try:
            settings = self._edited_settings()
        except ConfigError as exc:
            self._show_config_error(exc)
            return
        if not self.controller.running:
            self.mapping_page.summary.show_error(self.tr(
                "The dry run reads deals from the portal: connect to the portal first."))
            return
        selected = []
        window = self.parent()
        if window is not None and hasattr(window, "selected_deal_ids"):
            selected = window.selected_deal_ids()[:20]
        dialog = DryRunDialog(self.controller, selected, settings, self)
        dialog.show()
        self._dry_run = dialog

    def _form(self, group: QGroupBox) -> QFormLayout:
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setVerticalSpacing(10)
        self._forms.append(form)
        return form

    def _hint(self, text: str) -> QLabel:
        hint = QLabel(text, self)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #5B6675;")
        return hint

    def _field(self, *widgets: QWidget, below: list[QWidget] | tuple = (),
               stretch: tuple[int, ...] = ()) -> QWidget:
        return field_row(self, *widgets, below=below, stretch=stretch)

    def _align_labels(self) -> None:
        """The same label width in every group, so the fields line up."""
        labels = []
        for form in self._forms:
            for row in range(form.rowCount()):
                item = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
                if item is not None and item.widget() is not None:
                    labels.append(item.widget())
        width = max((label.sizeHint().width() for label in labels), default=0)
        for label in labels:
            label.setMinimumWidth(width)

    # -- tests -------------------------------------------------------------------------------------
    def _run_check(self, fn, message: InlineMessage, button: QPushButton, ok_text: str) -> None:
        message.show_busy(self.tr("Checking…"))
        button.setEnabled(False)

        def done(problem: str) -> None:
            button.setEnabled(True)
            if problem:
                message.show_error(texts.error_text(problem))
            else:
                message.show_ok(ok_text)

        def failed(exc: Exception) -> None:
            button.setEnabled(True)
            message.show_error(f"{type(exc).__name__}: {exc}")

        self._tasks.append(run_in_background(fn, done, failed, name="check", owner=self))

    def test_webhook(self) -> None:
        url = self.webhook.text()
        if not url:
            self.webhook_msg.show_error(self.tr(
                "Enter the inbound webhook URL: in Bitrix24 open Developer resources → Other → "
                "Inbound webhook, allow CRM, and copy the URL."))
            return
        self._run_check(lambda: service.check_webhook_url(url), self.webhook_msg,
                        self.webhook_test, self.tr("The portal answered: the webhook works."))

    def test_token(self) -> None:
        problem = check_application_token(self.token.text())
        if problem:
            self.token_msg.show_error(problem)
        else:
            self.token_msg.show_ok(self.tr(
                "The token looks right. Events signed with another token are rejected and listed "
                "in the Events tab."))

    def _own_listener(self, host: str, port: int) -> bool:
        listener = self.controller.monitor.listener
        current = self.controller.monitor.settings.listener
        if listener is None or not listener.running or host != current.host:
            return False
        try:
            actual = int(listener.port)  # waitress reports the bound port as text
        except (TypeError, ValueError):
            actual = -1
        return port in (current.port, actual)

    def test_listener(self) -> None:
        host, port = self.host.text().strip(), self.port.value()
        if self._own_listener(host, port):
            self.listen_msg.show_ok(self.tr("Deal Monitor is listening there now."))
            return
        if port == 0:
            self.listen_msg.show_ok(self.tr("Port 0 picks a free port at every start; Bitrix24 "
                                            "then needs a tunnel that follows it."))
            return
        self._run_check(lambda: service.check_listen(host, port), self.listen_msg,
                        self.listen_test, self.tr("This address is free: the app can listen there."))

    def test_public_url(self) -> None:
        url = self.public_url.text().strip()
        if not url:
            self.public_msg.show_error(self.tr(
                "No public URL: Bitrix24 cannot send events to this computer directly; "
                "changes are still found by reconciliation."))
            return
        try:
            config.from_mapping({"listener": {"public_url": url}}, env={})
        except ConfigError as exc:
            self.public_msg.show_error(texts.config_problem_text(exc.key, exc.problem))
            return
        self._run_check(lambda: check_public_url(url), self.public_msg, self.public_test,
                        self.tr("The public URL reaches this app."))

    def test_target(self) -> None:
        """Reachable, the table there and fitting the mapping, writable — and nothing written
        (the doctor's reflection and privilege queries)."""
        from ..doctor import PROBLEM, Finding, inspect_target
        from .doctordialog import finding_text

        try:
            settings = self._edited_settings()
        except ConfigError as exc:
            self._show_config_error(exc)
            return
        secrets = self.controller.secrets
        message, button = self.target_msg, self.target_test
        message.show_busy(self.tr("Checking…"))
        button.setEnabled(False)

        def inspect():
            probe = None
            try:
                probe = service.Monitor(settings, secrets=secrets, listen=False)
                return inspect_target(probe)
            except Exception as exc:  # e.g. a URL SQLAlchemy cannot parse
                return Finding("target.unreachable", PROBLEM, {
                    "table": settings.target.table, "error": f"{type(exc).__name__}: {exc}"})
            finally:
                if probe is not None:
                    probe.stop()

        def done(finding) -> None:
            button.setEnabled(True)
            text, action = finding_text(finding)
            if finding.level in ("ok", "info"):
                message.show_ok(text)
            else:
                message.show_error(f"{text} {action}".strip())

        def failed(exc: Exception) -> None:
            button.setEnabled(True)
            message.show_error(texts.error_text(f"{type(exc).__name__}: {exc}"))

        self._tasks.append(run_in_background(inspect, done, failed, name="check", owner=self))

    def test_notification(self) -> None:
        from .controller import Notice

        self.controller.notified.emit(Notice("info", self.tr("Deal Monitor"), self.tr(
            "This is how Deal Monitor tells you about failed syncs and new deals in "
            "production.")))

    # -- saving ------------------------------------------------------------------------------------
    def _edited_settings(self) -> Settings:
        """The settings as entered; raises ConfigError naming the wrong key."""
        base = self.controller.settings
        settings = base.replace(
            "portal", webhook_url=self.webhook.text(),
            application_token=self.token.text(), plan=self.plan.currentData())
        settings = settings.replace(
            "portal", portal_url=self.app_portal.text().strip().rstrip("/"),
            client_id=self.app_client_id.text().strip(),
            offline_events=self.app_offline.isChecked(), **self.app_advanced.portal_changes())
        settings = settings.replace(
            "listener", host=self.host.text().strip(), port=self.port.value(),
            path=self.path.text().strip() or "/bitrix24/events",
            public_url=self.public_url.text().strip())
        settings = settings.replace(
            "target", url=self.target_url.text().strip(),
            table=self.target_table.text().strip() or "deal")
        data_dir = self.data_dir.text().strip()
        if data_dir and not Path(data_dir).expanduser().is_absolute():
            raise ConfigError("storage.data_dir", self.tr(
                "Enter the folder's full path (or choose it), or leave it empty."))
        settings = settings.replace("storage", data_dir=data_dir)
        mapping = self.mapping_page.mapping_settings(base.mapping)
        return settings.replace("mapping", **{
            f.name: getattr(mapping, f.name) for f in dataclasses.fields(mapping)})

    def _show_config_error(self, exc: ConfigError) -> None:
        if exc.key.startswith("mapping"):
            self.tabs.setCurrentWidget(self.mapping_page)
            self.mapping_page.show_config_error(exc)
            return
        if self.app_advanced.show_problem(exc):
            self.tabs.setCurrentIndex(0)
            return
        field = {
            "portal.webhook_url": self.webhook_msg,
            "listener.port": self.listen_msg,
            "listener.path": self.listen_msg,
            "listener.public_url": self.public_msg,
            "target.table": self.target_msg,
            "target.url": self.target_msg,
            "storage.data_dir": self.data_dir_msg,
        }.get(exc.key, self.save_msg)
        field.show_error(texts.config_problem_text(exc.key, exc.problem))

    def build_settings(self) -> Settings | None:
        """The settings as entered, or None after showing what is wrong under its field."""
        for message in (self.webhook_msg, self.token_msg, self.listen_msg, self.public_msg,
                        self.target_msg, self.data_dir_msg, self.save_msg):
            if not message.ok:
                message.clear_message()
        self.app_advanced.clear_problem()
        try:
            settings = self._edited_settings()
        except ConfigError as exc:
            self._show_config_error(exc)
            return None
        base = self.controller.settings
        changed = settings.mapping != base.mapping or settings.target != base.target
        problem = self.mapping_page.blocking_problem(changed)
        if problem:
            self.tabs.setCurrentWidget(self.mapping_page)
            if not self.mapping_page.table_read and not self.mapping_page.read_error:
                self.mapping_page.read_table()
            self.save_msg.show_error(problem)
            return None
        return settings

    def save(self) -> None:
        settings = self.build_settings()
        if settings is None or not self._save_autostart():
            return
        if self.app_secret.text():
            try:
                self.controller.secrets.set(CLIENT_SECRET_KEY, self.app_secret.text())
            except SecretStoreUnavailable as exc:
                self.save_msg.show_error(texts.error_text(str(exc)))
                return
        refused = self.controller.claim_data_folder(settings)
        if refused:  # another instance works there: keep the old folder, say why
            self.tabs.setCurrentIndex(0)
            self.data_dir_msg.show_error(refused)
            return
        store = ui_settings()
        store.setValue("notifications/failures", self.notify_failures.isChecked())
        store.setValue("notifications/production", self.notify_production.isChecked())
        language = self.language.currentData()
        changed_language = language != str(store.value("ui/language", "") or "")
        store.setValue("ui/language", language)
        store.sync()
        self.problem = self.controller.apply_settings(
            settings, settings.portal.webhook_url, settings.portal.application_token)
        if changed_language:
            self.language_chosen.emit(language)
        self.accept()

    def _save_autostart(self) -> bool:
        """Switch "start at login" if it was changed; False (and why, shown) if that failed."""
        wanted = self.start_at_login.isChecked()
        if wanted == self.autostart.is_enabled():
            return True
        config_path = self.controller.config_path
        if config_path is not None and config_path == paths.default_config_file():
            config_path = None  # the app finds the default file by itself
        try:
            self.autostart.set_enabled(wanted, launch_command(config_path))
        except OSError as exc:
            self.save_msg.show_error(self.tr("Could not change the start at login: %1").replace(
                "%1", str(exc)))
            return False
        return True


def check_public_url(url: str) -> str:
    """GET the public URL: our listener answers 405 "use POST" there (or JSON at /healthz)."""
    import requests
    from PySide6.QtCore import QCoreApplication

    try:
        response = requests.get(url, timeout=(5, 10), allow_redirects=False)
    except requests.RequestException as exc:
        return QCoreApplication.translate(
            "SettingsDialog", "Nothing answers at this address (%1). Check the tunnel or proxy."
        ).replace("%1", type(exc).__name__)
    body = response.text[:200]
    response.close()
    if response.status_code == 405 and "POST" in body:
        return ""
    parts = urlsplit(url)
    return QCoreApplication.translate(
        "SettingsDialog",
        "%1 answered HTTP %2, not Deal Monitor: check that it forwards to this computer's "
        "listener.",
    ).replace("%1", parts.netloc).replace("%2", str(response.status_code))


__all__ = ["SettingsDialog", "check_application_token", "check_public_url"]
