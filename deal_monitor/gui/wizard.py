"""First run: connect to a Bitrix24 portal, or try the demo.

Shown when nothing is configured yet (no settings file, no webhook in the keyring). The wizard
asks one question first — can the portal reach this computer? — and offers the three ways in
with what each needs and how fresh the data will be: pull mode (an inbound webhook only), a
local application signed in through the browser with offline events, or a public address for
the portal's outgoing webhook (as before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCommandLinkButton,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .. import config, service
from ..config import ConfigError, Settings
from ..credentials import MemoryStore
from ..errors import DealMonitorError, ListenerError
from . import icons, texts
from .oauthfields import OAuthAdvanced
from .settingsdialog import SecretEdit, check_application_token
from .tasks import run_in_background
from .widgets import InlineMessage, bold, field_row

START, QUESTION, PULL, APP, PUSH = range(5)


class _Relay(QObject):
    """Carries the sign-in result from the sign-in server's thread to the GUI thread."""

    finished = Signal(object)


class FirstRunDialog(QDialog):
    """``choice`` is ``demo``, ``pull``, ``app`` or ``push`` after ``exec()`` returns Accepted.

    ``settings`` are the defaults the chosen connection is added to; ``tokens`` is where the
    browser sign-in stores the OAuth tokens (the store the app then runs with).
    """

    def __init__(self, parent: QWidget | None = None, default_port: int = 8765,
                 settings: Settings | None = None, tokens=None) -> None:
        super().__init__(parent)
        self.choice = ""
        self.base = settings or config.load(None)
        self.tokens = tokens if tokens is not None else MemoryStore()
        self.open_url: Callable[[str], object] = lambda url: QDesktopServices.openUrl(QUrl(url))
        self.signed_in = False
        self._probe: service.Monitor | None = None
        self._relay = _Relay(self)
        self._relay.finished.connect(self._sign_in_finished)
        self.setWindowTitle(self.tr("Welcome to Deal Monitor"))
        self.setWindowIcon(icons.app_icon())
        self.resize(660, 520)
        self.pages = QStackedWidget(self)
        for build in (self._start_page, self._question_page, self._pull_page, self._app_page):
            self.pages.addWidget(build())
        self.pages.addWidget(self._push_page(default_port))
        outer = QVBoxLayout(self)
        outer.addWidget(self.pages)
        self._update_handler_hint()

    # -- pages ---------------------------------------------------------------------------------
    def _start_page(self) -> QWidget:
        start = QWidget(self)
        logo = QLabel(start)
        logo.setPixmap(icons.app_icon().pixmap(56, 56))
        heading = QLabel(self.tr("Welcome to Deal Monitor"), start)
        heading.setFont(bold(self.font(), 5))
        intro = _label(start, self.tr(
            "Deal Monitor keeps the production database in step with the deals of Bitrix24: "
            "every deal that leaves the start stage is written there within seconds."))
        self.connect_button = QCommandLinkButton(
            self.tr("Connect to my Bitrix24 portal"),
            self.tr("Three ways in, whether or not the portal can reach this computer."), start)
        self.connect_button.clicked.connect(lambda: self.pages.setCurrentIndex(QUESTION))
        self.demo_button = QCommandLinkButton(
            self.tr("Try the demo"),
            self.tr("A simulated portal creates and moves deals, so you can see everything "
                    "working at once. Your data is not touched."), start)
        self.demo_button.clicked.connect(self.choose_demo)
        top = QHBoxLayout()
        top.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(heading, 1)
        layout = QVBoxLayout(start)
        layout.addLayout(top)
        layout.addWidget(intro)
        layout.addSpacing(12)
        layout.addWidget(self.connect_button)
        layout.addWidget(self.demo_button)
        layout.addStretch(1)
        return start

    def _question_page(self) -> QWidget:
        page = QWidget(self)
        heading = QLabel(self.tr("Can the portal reach this computer?"), page)
        heading.setFont(bold(self.font(), 3))
        intro = _label(page, self.tr(
            "A cloud portal can send events only to a public address (a tunnel, a reverse proxy, "
            "or this computer in the same network as an on-premise portal). An office computer "
            "behind a router usually has none — then choose one of the first two."))
        self.pull_button = QCommandLinkButton(
            self.tr("No — check the portal for changes (pull mode)"),
            self.tr("Needs: an inbound webhook URL only. Changes arrive within about the poll "
                    "interval (10 s)."), page)
        self.app_button = QCommandLinkButton(
            self.tr("No — local application with offline events"),
            self.tr("Needs: the portal address, client ID and client secret of a local "
                    "application, and a sign-in in the browser (a portal administrator). "
                    "Changes arrive within about 2 s."), page)
        self.push_button = QCommandLinkButton(
            self.tr("Yes — the portal can reach a public address"),
            self.tr("Needs: an inbound webhook, an outgoing webhook's application token and a "
                    "public https address for this computer. Changes arrive within about 1 s."),
            page)
        for button, index in ((self.pull_button, PULL), (self.app_button, APP),
                              (self.push_button, PUSH)):
            button.clicked.connect(lambda _checked=False, i=index: self.pages.setCurrentIndex(i))
        layout = QVBoxLayout(page)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addSpacing(8)
        for button in (self.pull_button, self.app_button, self.push_button):
            layout.addWidget(button)
        layout.addStretch(1)
        layout.addLayout(self._buttons(page, START))
        return page

    def _pull_page(self) -> QWidget:
        page = QWidget(self)
        heading = QLabel(self.tr("Pull mode: an inbound webhook"), page)
        heading.setFont(bold(self.font(), 3))
        intro = _label(page, self.tr(
            "Deal Monitor asks the portal every 10 seconds which deals changed; nothing has to "
            "reach this computer. In Bitrix24 open Developer resources → Other → Inbound "
            "webhook, allow CRM, and copy the URL."))
        self.pull_webhook, self.pull_msg, self.pull_test = self._webhook_field(page)
        form = QFormLayout()
        form.setVerticalSpacing(10)
        form.addRow(self.tr("Inbound webhook URL"),
                    field_row(page, self.pull_webhook, self.pull_test, below=[self.pull_msg]))
        layout = QVBoxLayout(page)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addSpacing(8)
        layout.addLayout(form)
        layout.addStretch(1)
        self.pull_finish = QPushButton(self.tr("Connect"), page)
        self.pull_finish.clicked.connect(self.finish_pull)
        layout.addLayout(self._buttons(page, QUESTION, self.pull_finish))
        return page

    def _app_page(self) -> QWidget:
        page = QWidget(self)
        heading = QLabel(self.tr("Local application, signed in through the browser"), page)
        heading.setFont(bold(self.font(), 3))
        where = _label(page, self.tr(
            "In Bitrix24 open Applications → Developer resources → Other → Local application "
            "(in the Russian interface: Приложения → Разработчикам → Другое → Локальное "
            "приложение). Tick “Uses only API”, allow CRM, save, and copy the application "
            "code (client_id) and key (client_secret) the portal then shows."))
        where.setStyleSheet("color: #5B6675;")
        self.portal_url = QLineEdit(page)
        self.portal_url.setPlaceholderText("https://example.bitrix24.ru")
        self.client_id = QLineEdit(page)
        self.client_id.setPlaceholderText("local.0123456789abcd.01234567")
        self.client_secret = SecretEdit(page)
        self.app_msg = InlineMessage(page)
        self.advanced = OAuthAdvanced(self.base.portal, page)
        self.sign_in_button = QPushButton(self.tr("Sign in with Bitrix24"), page)
        self.sign_in_button.clicked.connect(self.sign_in)
        self.sign_in_msg = InlineMessage(page)
        form = QFormLayout()
        form.setVerticalSpacing(10)
        form.addRow(self.tr("Portal address"), self.portal_url)
        form.addRow(self.tr("Client ID"), self.client_id)
        form.addRow(self.tr("Client secret"),
                    field_row(page, self.client_secret, below=[self.app_msg]))
        form.addRow("", self.advanced)
        form.addRow("", field_row(page, self.sign_in_button, QWidget(page),
                                  below=[self.sign_in_msg], stretch=(0, 1)))
        layout = QVBoxLayout(page)
        layout.addWidget(heading)
        layout.addWidget(where)
        layout.addSpacing(8)
        layout.addLayout(form)
        layout.addStretch(1)
        self.app_finish = QPushButton(self.tr("Connect"), page)
        self.app_finish.setEnabled(False)
        self.app_finish.clicked.connect(self.finish_app)
        layout.addLayout(self._buttons(page, QUESTION, self.app_finish))
        return page

    def _push_page(self, default_port: int) -> QWidget:
        page = QWidget(self)
        heading2 = QLabel(self.tr("Public address: the portal sends events"), page)
        heading2.setFont(bold(self.font(), 3))
        intro = _label(page, self.tr(
            "Bitrix24 must reach this computer: a tunnel or a reverse proxy gives it a public "
            "https address that forwards to the port below (set that address later in Settings → "
            "Public URL); an on-premise portal in the same network can use this computer's "
            "address."))
        self.webhook, self.webhook_msg, self.webhook_test = self._webhook_field(page)
        self.token = SecretEdit(page)
        self.token_msg = InlineMessage(page)
        self.port = QSpinBox(page)
        self.port.setRange(1, 65535)
        self.port.setValue(default_port or 8765)
        self.port.valueChanged.connect(self._update_handler_hint)
        self.handler_hint = QLabel(page)
        self.handler_hint.setWordWrap(True)
        self.handler_hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.handler_hint.setStyleSheet("color: #5B6675;")
        form = QFormLayout()
        form.setVerticalSpacing(10)
        form.addRow(self.tr("Inbound webhook URL"),
                    field_row(page, self.webhook, self.webhook_test, below=[self.webhook_msg]))
        form.addRow(self.tr("Application token"),
                    field_row(page, self.token, below=[self.token_msg]))
        form.addRow(self.tr("Listen on port"),
                    field_row(page, self.port, QWidget(page), below=[self.handler_hint],
                              stretch=(0, 1)))
        self.finish_button = QPushButton(self.tr("Connect"), page)
        self.finish_button.clicked.connect(self.finish_connect)
        layout = QVBoxLayout(page)
        layout.addWidget(heading2)
        layout.addWidget(intro)
        layout.addSpacing(8)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addLayout(self._buttons(page, QUESTION, self.finish_button))
        return page

    def _webhook_field(self, page: QWidget) -> tuple[SecretEdit, InlineMessage, QPushButton]:
        edit = SecretEdit(page)
        edit.edit.setPlaceholderText("https://example.bitrix24.ru/rest/1/abcdef123456/")
        message = InlineMessage(page)
        test = QPushButton(self.tr("Test"), page)
        test.clicked.connect(lambda: self.test_webhook(edit, message, test))
        return edit, message, test

    def _buttons(self, page: QWidget, back_to: int, finish: QPushButton | None = None
                 ) -> QHBoxLayout:
        back = QPushButton(self.tr("Back"), page)
        back.clicked.connect(lambda: self._back(back_to))
        buttons = QHBoxLayout()
        buttons.addWidget(back)
        buttons.addStretch(1)
        if finish is not None:
            finish.setDefault(True)
            buttons.addWidget(finish)
        return buttons

    def _back(self, index: int) -> None:
        self._end_probe()
        self.pages.setCurrentIndex(index)

    def _update_handler_hint(self) -> None:
        self.handler_hint.setText(self.tr(
            "In Bitrix24 create an outgoing webhook for the events ONCRMDEALADD, ONCRMDEALUPDATE "
            "and ONCRMDEALDELETE with the handler address http://<this computer>:%1/bitrix24/events "
            "(or your public URL), and paste its application token above.").replace(
                "%1", str(self.port.value())))

    # -- actions -------------------------------------------------------------------------------
    def choose_demo(self) -> None:
        self.choice = "demo"
        self.accept()

    def test_webhook(self, edit: SecretEdit, message: InlineMessage, button: QPushButton) -> None:
        url = edit.text()
        if not url:
            message.show_error(self.tr("Enter the inbound webhook URL first."))
            return
        message.show_busy(self.tr("Checking…"))
        button.setEnabled(False)

        def done(problem: str) -> None:
            button.setEnabled(True)
            if problem:
                message.show_error(texts.error_text(problem))
            else:
                message.show_ok(self.tr("The portal answered: the webhook works."))

        run_in_background(lambda: service.check_webhook_url(url), done,
                          lambda exc: done(str(exc)), name="wizard-check", owner=self)

    def _webhook_ok(self, edit: SecretEdit, message: InlineMessage) -> bool:
        try:
            config.from_mapping({"portal": {"webhook_url": edit.text()}}, env={})
            if not edit.text():
                raise ConfigError("portal.webhook_url", self.tr("Enter the inbound webhook URL."))
        except ConfigError as exc:
            message.show_error(texts.config_problem_text(exc.key, exc.problem))
            return False
        return True

    def finish_pull(self) -> None:
        if self._webhook_ok(self.pull_webhook, self.pull_msg):
            self.choice = "pull"
            self.accept()

    def finish_connect(self) -> None:
        ok = self._webhook_ok(self.webhook, self.webhook_msg)
        problem = check_application_token(self.token.text())
        if problem:
            self.token_msg.show_error(problem)
            ok = False
        else:
            self.token_msg.clear_message()
        if ok:
            self.choice = "push"
            self.accept()

    def app_settings(self) -> Settings | None:
        """The defaults with the local application entered (None after saying what is missing)."""
        url = self.portal_url.text().strip().rstrip("/")
        if not url.startswith(("https://", "http://")):
            self.app_msg.show_error(self.tr(
                "Enter the portal address, for example https://example.bitrix24.ru."))
            return None
        if not self.client_id.text().strip() or not self.client_secret.text():
            self.app_msg.show_error(self.tr("Enter the client ID and the client secret."))
            return None
        self.app_msg.clear_message()
        self.advanced.clear_problem()
        try:
            return self.base.replace("portal", portal_url=url,
                                     client_id=self.client_id.text().strip(),
                                     offline_events=True, **self.advanced.portal_changes())
        except ConfigError as exc:
            if not self.advanced.show_problem(exc):
                self.app_msg.show_error(texts.config_problem_text(exc.key, exc.problem))
            return None

    def sign_in(self) -> None:
        """Start the loopback sign-in and open the portal's consent page in the browser."""
        settings = self.app_settings()
        if settings is None:
            return
        self._end_probe()
        self.signed_in = False
        self.app_finish.setEnabled(False)
        probe = service.Monitor(
            settings.replace("portal", client_secret=self.client_secret.text()),
            secrets=MemoryStore(), tokens=self.tokens, listen=False)
        try:
            url = probe.start_sign_in(self._relay_result)
        except (ListenerError, DealMonitorError) as exc:
            probe.stop()
            self.sign_in_msg.show_error(texts.error_text(f"{exc} {getattr(exc, 'hint', '')}"))
            return
        self._probe = probe
        self.sign_in_msg.show_busy(texts.sign_in_waiting())
        self.open_url(url)

    def _relay_result(self, result) -> None:
        """From the sign-in server's thread: to the GUI thread, unless the wizard is gone."""
        with contextlib.suppress(RuntimeError):  # the dialog was closed and deleted meanwhile
            self._relay.finished.emit(result)

    def _sign_in_finished(self, result) -> None:
        probe = self._probe
        if probe is None:  # cancelled meanwhile
            return
        if not result.ok:
            self._end_probe()
            self.sign_in_msg.show_error(texts.sign_in_error(result.error))
            return
        self.sign_in_msg.show_busy(self.tr("Signed in. Binding the offline events…"))

        def bind() -> list[str]:
            probe.open_client()
            return probe.bind_handlers(offline=True)

        def bound(_lines: list[str]) -> None:
            self._bound(True, "")

        def failed(exc: Exception) -> None:
            self._bound(False, str(exc))

        run_in_background(bind, bound, failed, name="wizard-bind", owner=self)

    def _bound(self, ok: bool, error: str) -> None:
        self._end_probe()
        self.signed_in = True
        self.app_finish.setEnabled(True)
        if ok:
            self.sign_in_msg.show_ok(self.tr(
                "Signed in; offline events are bound. Press Connect."))
        else:
            self.sign_in_msg.show_error(texts.offline_bind_failed(error))

    def _end_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            run_in_background(probe.stop, name="wizard-stop")

    def finish_app(self) -> None:
        if self.signed_in and self.app_settings() is not None:
            self.choice = "app"
            self.accept()

    def done(self, code: int) -> None:  # noqa: D102 - a sign-in in progress ends with the dialog
        self._end_probe()
        super().done(code)

    @property
    def webhook_url(self) -> str:
        return self.pull_webhook.text() if self.choice == "pull" else self.webhook.text()

    @property
    def application_token(self) -> str:
        return self.token.text() if self.choice == "push" else ""

    @property
    def listen_port(self) -> int:
        return self.port.value()


def _label(parent: QWidget, text: str) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    return label


__all__ = ["FirstRunDialog"]
