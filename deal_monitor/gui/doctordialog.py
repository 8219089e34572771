"""The connection doctor in a small dialog: one line per check, in the UI language, with what to do.

The checks (``Monitor.diagnose``) ask the portal and the databases, so they run off the GUI
thread; each line shows up as soon as the core knows it. Lines are translated by their code
with the core's parameters filled in; a code this window does not know is shown in English.
"""

from __future__ import annotations

import contextlib
import re

from PySide6.QtCore import QCoreApplication, QLocale, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..model import Source
from . import formatting, icons, texts
from .tasks import run_in_background
from .widgets import InlineMessage

_LEVEL_ICONS = {"ok": "tray_ok", "info": "tray_working", "warning": "tray_paused",
                "problem": "tray_attention"}


def _table() -> dict[str, tuple[str, str]]:
    """code -> (text, action) in the UI language; {placeholders} as in deal_monitor.doctor."""
    return {
        "config.ok": (QCoreApplication.translate("DoctorDialog", "Settings are valid ({mode_text})."), ""),
        "config.none": (QCoreApplication.translate("DoctorDialog", "No portal is configured."), QCoreApplication.translate("DoctorDialog",
            "Enter an inbound webhook URL, or the address, client ID and secret of a local "
            "application.")),
        "config.private_http": (QCoreApplication.translate("DoctorDialog",
            "Events reach this computer over plain http:// at {url} (a private address; allowed "
            "by portal.allow_private_http)."), QCoreApplication.translate("DoctorDialog",
            "Use it only inside a trusted network; anyone on it can read the application token.")),
        "secret.webhook_ok": (QCoreApplication.translate("DoctorDialog", "The inbound webhook address is set."), ""),
        "secret.client_secret_missing": (QCoreApplication.translate("DoctorDialog", "The application's client secret is missing."), QCoreApplication.translate("DoctorDialog",
            "Enter it in the settings.")),
        "secret.client_secret_ok": (QCoreApplication.translate("DoctorDialog", "The application's client secret is set."), ""),
        "secret.token_missing": (QCoreApplication.translate("DoctorDialog",
            "Push mode needs the outgoing webhook's application token."), QCoreApplication.translate("DoctorDialog",
            "Copy the token the portal shows for the outgoing webhook into the settings.")),
        "auth.signed_in": (QCoreApplication.translate("DoctorDialog", "Signed in to the portal; {storage}."), ""),
        "auth.sign_in_needed": (QCoreApplication.translate("DoctorDialog", "Not signed in to the portal ({reason})."), QCoreApplication.translate("DoctorDialog",
            "Press “Sign in with Bitrix24” and approve the application.")),
        "portal.ok": (QCoreApplication.translate("DoctorDialog", "The portal answers at {domain} ({seconds} s)."), ""),
        "portal.unreachable": (QCoreApplication.translate("DoctorDialog", "The portal does not answer: {error}."), QCoreApplication.translate("DoctorDialog",
            "Check the address and this computer's internet connection.")),
        "portal.refused": (QCoreApplication.translate("DoctorDialog", "The portal refused the credentials: {error}."), QCoreApplication.translate("DoctorDialog",
            "Check the webhook address (it changes when the webhook is edited) or sign in "
            "again.")),
        "portal.no_crm": (QCoreApplication.translate("DoctorDialog", "The {who} has no access to CRM (scopes: {scopes})."), QCoreApplication.translate("DoctorDialog",
            "Edit the webhook or application in the portal and tick the CRM scope.")),
        "portal.crm_ok": (QCoreApplication.translate("DoctorDialog", "CRM access is granted (scopes: {scopes})."), ""),
        "handlers.offline_ok": (QCoreApplication.translate("DoctorDialog", "Offline events are bound for {events}."), ""),
        "handlers.offline_missing": (QCoreApplication.translate("DoctorDialog", "Offline events are not bound for {events}."), QCoreApplication.translate("DoctorDialog",
            "Sign in again as a portal administrator (or run: main.py --config FILE bind "
            "--offline).")),
        "handlers.online_ok": (QCoreApplication.translate("DoctorDialog", "Events are bound to {url}."), ""),
        "handlers.online_missing": (QCoreApplication.translate("DoctorDialog", "Events are not bound to {url} for {events}."), QCoreApplication.translate("DoctorDialog",
            "Run: main.py --config FILE bind (the portal must reach that address).")),
        "handlers.unknown": (QCoreApplication.translate("DoctorDialog", "The bound handlers could not be read: {error}."), ""),
        "offline.queue": (QCoreApplication.translate("DoctorDialog", "Changes waiting in the portal's offline queue: {count}."), ""),
        "offline.queue_unknown": (QCoreApplication.translate("DoctorDialog", "The offline queue could not be read: {error}."), ""),
        "event_test.ok": (QCoreApplication.translate("DoctorDialog", "event.test was accepted by the portal."), ""),
        "event_test.failed": (QCoreApplication.translate("DoctorDialog", "event.test failed: {error}."), QCoreApplication.translate("DoctorDialog",
            "Check that the application is installed and active.")),
        "events.last": (QCoreApplication.translate("DoctorDialog", "The last event came {ago} ago, source: {source}{addr}."), ""),
        "events.none": (QCoreApplication.translate("DoctorDialog", "No event has arrived yet."), ""),
        "events.expected_none": (QCoreApplication.translate("DoctorDialog", "No pushed event has arrived yet."), QCoreApplication.translate("DoctorDialog",
            "Check the outgoing webhook's handler address: the portal must reach {url} from the "
            "internet (or your LAN for an on-premise portal).")),
        "poll.last": (QCoreApplication.translate("DoctorDialog", "The last change poll ran at {at} (every {interval} s)."), ""),
        "poll.never": (QCoreApplication.translate("DoctorDialog", "The change poll has not run yet (every {interval} s)."), QCoreApplication.translate("DoctorDialog",
            "The first poll follows the start-up reconciliation.")),
        "poll.off": (QCoreApplication.translate("DoctorDialog",
            "The change poll is off: changes come in only with reconciliation every {minutes} "
            "min."), QCoreApplication.translate("DoctorDialog", "Set sync.poll_seconds (10 is a good start).")),
        "target.ok": (QCoreApplication.translate("DoctorDialog", "The target database answers; table {table} can be written."), ""),
        "target.will_create": (QCoreApplication.translate("DoctorDialog",
            "The target database answers; table {table} does not exist yet and will be "
            "created."), ""),
        "target.unreachable": (QCoreApplication.translate("DoctorDialog", "The target database does not answer: {error}."), QCoreApplication.translate("DoctorDialog",
            "Check the database URL, the server, the user and the password.")),
        "target.no_table": (QCoreApplication.translate("DoctorDialog", "Table {table} does not exist in the target database."), QCoreApplication.translate("DoctorDialog",
            "Create it, or choose the default preset, which creates its own.")),
        "target.mapping": (QCoreApplication.translate("DoctorDialog", "The mapping does not fit table {table}: {error}."), QCoreApplication.translate("DoctorDialog",
            "Fix the mapping on the Production table page.")),
        "target.read_only": (QCoreApplication.translate("DoctorDialog",
            "The target database user cannot write table {table} ({missing})."), QCoreApplication.translate("DoctorDialog",
            "Grant INSERT and UPDATE on it (CREATE where the table is created).")),
        "state.ok": (QCoreApplication.translate("DoctorDialog",
            "The local state database is fine ({queued} queued, {failed} failed)."), ""),
        "state.not_created": (QCoreApplication.translate("DoctorDialog",
            "The local state database does not exist yet (created at the first start)."), ""),
        "state.failed": (QCoreApplication.translate("DoctorDialog", "The local state database has a problem: {error}."), QCoreApplication.translate("DoctorDialog",
            "Check the data folder's disk space and permissions.")),
        "listener.running": (QCoreApplication.translate("DoctorDialog", "The event listener runs at {url}."), ""),
        "listener.port_free": (QCoreApplication.translate("DoctorDialog", "Port {port} on {host} is free for the event listener."), ""),
        "listener.port_busy": (QCoreApplication.translate("DoctorDialog", "The event listener cannot use {host}:{port}: {error}."), QCoreApplication.translate("DoctorDialog",
            "Stop the other program on that port or choose another port.")),
        "listener.off": (QCoreApplication.translate("DoctorDialog", "The event listener is switched off."), ""),
    }


def _mode_text(mode: str) -> str:
    return {
        "pull": QCoreApplication.translate("DoctorDialog", "pull mode: inbound webhook, changes polled"),
        "push": QCoreApplication.translate("DoctorDialog", "push mode: inbound and outgoing webhook"),
        "app": QCoreApplication.translate("DoctorDialog", "local application"),
        "app_offline": QCoreApplication.translate("DoctorDialog", "local application with offline events"),
        "none": QCoreApplication.translate("DoctorDialog", "nothing configured"),
    }.get(mode, mode)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _storage_text(kind: str, place: str) -> str:
    """Where the OAuth tokens are (``doctor.token_place``), in words."""
    if kind == "keyring":
        return QCoreApplication.translate(
            "DoctorDialog", "tokens stored in the system keyring (%1)").replace("%1", place)
    if kind == "file":
        return QCoreApplication.translate(
            "DoctorDialog", "tokens stored in %1 (readable by this user only)").replace("%1", place)
    return QCoreApplication.translate("DoctorDialog", "tokens kept in memory for this session only")


def _who_text(who: str) -> str:
    return {
        "webhook": QCoreApplication.translate("DoctorDialog", "the webhook"),
        "application": QCoreApplication.translate("DoctorDialog", "the application"),
    }.get(who, who)


def _missing_text(kind: str, missing: str) -> str:
    """What stops the writes to the target table (``doctor.MISSING_KINDS``), in words."""
    known = {
        "folder": QCoreApplication.translate("DoctorDialog", "the folder cannot be written"),
        "file": QCoreApplication.translate("DoctorDialog", "the file is read-only"),
        "replica": QCoreApplication.translate("DoctorDialog", "the server is a read-only replica"),
        "server": QCoreApplication.translate("DoctorDialog", "the server is read-only"),
    }
    if kind in known:
        return known[kind]
    return QCoreApplication.translate("DoctorDialog", "missing privileges: %1").replace(
        "%1", missing)


def _ago_text(seconds: int) -> str:
    if seconds < 120:
        return QCoreApplication.translate("DoctorDialog", "%1 s").replace("%1", str(seconds))
    if seconds < 7200:
        return QCoreApplication.translate("DoctorDialog", "%1 min").replace(
            "%1", str(seconds // 60))
    return QCoreApplication.translate("DoctorDialog", "%1 h").replace("%1", str(seconds // 3600))


def _number_text(value: str) -> str:
    """A number of the core ("0.5", "10") with the UI locale's decimal sign."""
    try:
        number = float(value)
    except ValueError:
        return value
    return QLocale().toString(number, "f", len(value.partition(".")[2]))  # as many decimals


def finding_text(finding) -> tuple[str, str]:
    """(text, action) of a doctor's Finding in the UI language: the values too, from the data
    the core puts beside its English words (see deal_monitor.doctor)."""
    translated = _table().get(finding.code)
    if translated is None:
        return finding.text, finding.action
    params: dict[str, str] = dict(finding.params)
    if "mode" in params:
        params["mode_text"] = _mode_text(params["mode"])
    if "source" in params:
        with contextlib.suppress(ValueError):
            params["source"] = texts.source_label(Source(params["source"]))
    if params.get("at"):
        moment = formatting.parse_iso(params["at"])
        if moment is not None:
            params["at"] = formatting.datetime_text(moment)
    if "storage_kind" in params:
        params["storage"] = _storage_text(params["storage_kind"], params.get("storage_place", ""))
    if "who" in params:
        params["who"] = _who_text(params["who"])
    if "missing_kind" in params:
        params["missing"] = _missing_text(params["missing_kind"], params.get("missing", ""))
    if params.get("ago_seconds", "").isdigit():
        params["ago"] = _ago_text(int(params["ago_seconds"]))
    if "public_url" in params:
        params["url"] = params["public_url"] or QCoreApplication.translate(
            "DoctorDialog", "the listener's public address")
    for key in ("seconds", "interval", "minutes"):
        if params.get(key):
            params[key] = _number_text(params[key])
    busy = re.fullmatch(r"cannot listen on \S+: (.*)", params.get("error", ""), re.S)
    if finding.code == "listener.port_busy" and busy:  # the line names the address already
        params["error"] = texts.os_error_text(busy.group(1))
    keys = ["error", "reason"] + (["scopes"] if finding.code == "portal.no_crm" else [])
    for key in keys:
        if params.get(key):
            params[key] = texts.error_text(params[key])
    return tuple(part.format_map(_Blank(params)) for part in translated)  # type: ignore[return-value]


class _Relay(QObject):
    found = Signal(object)


class DoctorDialog(QDialog):
    """Runs ``monitor.diagnose`` when shown and again on "Check again"."""

    def __init__(self, monitor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.monitor = monitor
        self.findings: list = []
        self.setWindowTitle(self.tr("Check connection"))
        self.setWindowIcon(icons.icon("settings"))
        self.resize(680, 460)
        self.summary = InlineMessage(self)
        self.lines = QListWidget(self)
        self.lines.setWordWrap(True)
        self.lines.setAlternatingRowColors(True)
        self.lines.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.again = QPushButton(self.tr("Check again"), self)
        self.again.clicked.connect(self.run)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.addButton(self.again, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        intro = QLabel(self.tr(
            "Each line is one thing that must work; a problem says what to do."), self)
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.lines, 1)
        layout.addWidget(self.summary)
        layout.addWidget(buttons)
        self._relay = _Relay(self)
        self._relay.found.connect(self._add)
        self.running = False

    def run(self) -> None:
        if self.running:
            return
        self.running = True
        self.findings = []
        self.lines.clear()
        self.again.setEnabled(False)
        self.summary.show_busy(self.tr("Checking…"))
        run_in_background(lambda: self.monitor.diagnose(self._relay.found.emit), self._finished,
                          self._failed, name="doctor", owner=self)

    def _add(self, finding) -> None:
        self.findings.append(finding)
        text, action = finding_text(finding)
        if action and finding.level in ("warning", "problem"):
            text = f"{text}\n→ {action}"
        item = QListWidgetItem(icons.icon(_LEVEL_ICONS.get(finding.level, "tray_working")), text)
        item.setData(Qt.ItemDataRole.UserRole, finding.code)
        self.lines.addItem(item)

    def _finished(self, findings: list) -> None:
        self.running = False
        self.again.setEnabled(True)
        problems = sum(1 for f in findings if f.level == "problem")
        if problems:
            self.summary.show_error(self.tr("%n problem(s) found.", "", problems))
        else:
            self.summary.show_ok(self.tr("No problem found."))

    def _failed(self, exc: Exception) -> None:
        self.running = False
        self.again.setEnabled(True)
        self.summary.show_error(texts.error_text(f"{type(exc).__name__}: {exc}"))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        if not self.findings and not self.running:
            self.run()


__all__ = ["DoctorDialog", "finding_text"]
