"""First run: connect to a Bitrix24 portal, or try the demo.

Shown when nothing is configured yet (no settings file, no webhook in the keyring). The
connect page takes the inbound webhook URL (tested on the spot) and the outgoing webhook's
application token, and tells where Bitrix24 must send the events.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCommandLinkButton,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .. import config, service
from ..config import ConfigError
from . import icons, texts
from .settingsdialog import SecretEdit, check_application_token
from .tasks import run_in_background
from .widgets import InlineMessage, bold, field_row


class FirstRunDialog(QDialog):
    """``choice`` is ``demo`` or ``connect`` after ``exec()`` returns Accepted."""

    def __init__(self, parent: QWidget | None = None, default_port: int = 8765) -> None:
        super().__init__(parent)
        self.choice = ""
        self.setWindowTitle(self.tr("Welcome to Deal Monitor"))
        self.setWindowIcon(icons.app_icon())
        self.resize(620, 480)
        self.pages = QStackedWidget(self)

        # page 1: choose
        start = QWidget(self)
        logo = QLabel(start)
        logo.setPixmap(icons.app_icon().pixmap(56, 56))
        heading = QLabel(self.tr("Welcome to Deal Monitor"), start)
        heading.setFont(bold(self.font(), 5))
        intro = QLabel(self.tr(
            "Deal Monitor keeps the production database in step with the deals of Bitrix24: "
            "every deal that leaves the start stage is written there within seconds."), start)
        intro.setWordWrap(True)
        self.connect_button = QCommandLinkButton(
            self.tr("Connect to my Bitrix24 portal"),
            self.tr("You need an inbound webhook with CRM access and an outgoing webhook for "
                    "deal events."), start)
        self.connect_button.clicked.connect(lambda: self.pages.setCurrentIndex(1))
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

        # page 2: connect
        page = QWidget(self)
        heading2 = QLabel(self.tr("Connect to your portal"), page)
        heading2.setFont(bold(self.font(), 3))
        self.webhook = SecretEdit(page)
        self.webhook.edit.setPlaceholderText("https://example.bitrix24.ru/rest/1/abcdef123456/")
        self.webhook_msg = InlineMessage(page)
        self.webhook_test = QPushButton(self.tr("Test"), page)
        self.webhook_test.clicked.connect(self.test_webhook)
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
        back = QPushButton(self.tr("Back"), page)
        back.clicked.connect(lambda: self.pages.setCurrentIndex(0))
        self.finish_button = QPushButton(self.tr("Connect"), page)
        self.finish_button.setDefault(True)
        self.finish_button.clicked.connect(self.finish_connect)
        buttons = QHBoxLayout()
        buttons.addWidget(back)
        buttons.addStretch(1)
        buttons.addWidget(self.finish_button)
        layout = QVBoxLayout(page)
        layout.addWidget(heading2)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addLayout(buttons)

        self.pages.addWidget(start)
        self.pages.addWidget(page)
        outer = QVBoxLayout(self)
        outer.addWidget(self.pages)
        self._update_handler_hint()

    def _update_handler_hint(self) -> None:
        self.handler_hint.setText(self.tr(
            "In Bitrix24 create an outgoing webhook for the events ONCRMDEALADD, ONCRMDEALUPDATE "
            "and ONCRMDEALDELETE with the handler address http://<this computer>:%1/bitrix24/events "
            "(or your public URL), and paste its application token above.").replace(
                "%1", str(self.port.value())))

    def choose_demo(self) -> None:
        self.choice = "demo"
        self.accept()

    def test_webhook(self) -> None:
        url = self.webhook.text()
        if not url:
            self.webhook_msg.show_error(self.tr("Enter the inbound webhook URL first."))
            return
        self.webhook_msg.show_busy(self.tr("Checking…"))
        self.webhook_test.setEnabled(False)

        def done(problem: str) -> None:
            self.webhook_test.setEnabled(True)
            if problem:
                self.webhook_msg.show_error(texts.error_text(problem))
            else:
                self.webhook_msg.show_ok(self.tr("The portal answered: the webhook works."))

        run_in_background(lambda: service.check_webhook_url(url), done,
                          lambda exc: done(str(exc)), name="wizard-check", owner=self)

    def finish_connect(self) -> None:
        ok = True
        try:
            config.from_mapping({"portal": {"webhook_url": self.webhook.text()}}, env={})
            if not self.webhook.text():
                raise ConfigError("portal.webhook_url", self.tr("Enter the inbound webhook URL."))
        except ConfigError as exc:
            self.webhook_msg.show_error(texts.config_problem_text(exc.key, exc.problem))
            ok = False
        problem = check_application_token(self.token.text())
        if problem:
            self.token_msg.show_error(problem)
            ok = False
        else:
            self.token_msg.clear_message()
        if ok:
            self.choice = "connect"
            self.accept()

    @property
    def webhook_url(self) -> str:
        return self.webhook.text()

    @property
    def application_token(self) -> str:
        return self.token.text()

    @property
    def listen_port(self) -> int:
        return self.port.value()


__all__ = ["FirstRunDialog"]
