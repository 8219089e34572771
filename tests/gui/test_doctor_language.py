"""The connection doctor in Russian: every line and every value the core fills in (where the
tokens are, who lacks CRM, how long ago, numbers, what stops the writes), with the CLI left in
English."""

from __future__ import annotations

import json
import re
import time

import pytest

from deal_monitor import doctor
from deal_monitor.config import from_mapping
from deal_monitor.credentials import FileStore, MemoryStore
from deal_monitor.gui.doctordialog import DoctorDialog, finding_text
from deal_monitor.service import Monitor

from .conftest import WAIT_MS

pytestmark = pytest.mark.gui

CLIENT_ID, SECRET = "local.doctor01", "doctor-secret"

# Latin words allowed in a Russian line: names of things the user types or finds as they are
TECHNICAL = {"CRM", "crm", "event.test", "main.py", "config", "bind", "offline", "ID", "client",
             "secret", "sync.poll_seconds", "portal.allow_private_http", "INSERT", "UPDATE",
             "CREATE", "http", "https", "user_brief", "Bitrix24"}


@pytest.fixture
def russian(qm_cache):
    from deal_monitor.gui.i18n import Translations

    translations = Translations(cache=qm_cache)
    translations.install("ru")
    yield
    translations.install("en")


def _english_left(text: str, finding) -> list[str]:
    """Latin words of ``text`` that are neither data of the finding nor technical names."""
    for value in sorted(finding.params.values(), key=len, reverse=True):
        if value and len(value) > 2:
            text = text.replace(value, " ")
    text = re.sub(r"\w+://\S+|[\w.-]+\.(?:db|json)\b|\d+\.\d+\.\d+\.\d+(?::\d+)?", " ", text)
    words = re.findall(r"[A-Za-z][A-Za-z_.]*[A-Za-z]|[A-Za-z]", text)
    return [w for w in words if w.strip(".") not in TECHNICAL and w not in finding.params.values()]


def _app_monitor(sim, tmp_path, tokens, **portal) -> Monitor:
    settings = from_mapping({
        "portal": {"client_id": CLIENT_ID, "portal_url": sim.url, "oauth_server": sim.url, "allow_private_http": True,
                   "client_secret": SECRET, "offline_events": True, **portal},
        "listener": {"enabled": False},
        "storage": {"data_dir": str(tmp_path / "data")},
    }, env={})
    return Monitor(settings, secrets=MemoryStore(), tokens=tokens, listen=False)


def _signed_in_tokens(sim, tmp_path) -> FileStore:
    issued = sim.issue_tokens(CLIENT_ID)
    store = FileStore(tmp_path / "tokens.json")
    store.set("oauth_tokens", json.dumps({
        "access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
        "expires": time.time() + 3600, "member_id": sim.member_id}))
    return store


def _assert_russian(findings) -> dict[str, str]:
    lines = {}
    for finding in findings:
        text, action = finding_text(finding)
        line = f"{text} {action}".strip()
        assert re.search("[а-яё]", line, re.I), line
        assert _english_left(line, finding) == [], (finding.code, line)
        lines[finding.code] = line
    return lines


def test_an_app_signed_in_with_a_token_file_in_russian(qtbot, sim, tmp_path, russian):
    sim.register_app(CLIENT_ID, SECRET)
    tokens = _signed_in_tokens(sim, tmp_path)
    monitor = _app_monitor(sim, tmp_path, tokens)
    try:
        findings = monitor.diagnose()
    finally:
        monitor.stop()
    lines = _assert_russian(findings)
    assert {"auth.signed_in", "portal.ok", "handlers.offline_missing"} <= set(lines)
    signed_in = lines["auth.signed_in"]
    assert "токены хранятся в файле" in signed_in and str(tmp_path / "tokens.json") in signed_in
    assert re.search(r"\(\d+,\d с\)", lines["portal.ok"]), lines["portal.ok"]  # decimal comma
    # the CLI keeps printing English (all of the CLI does)
    cli = {f.code: f.line() for f in findings}
    assert f"tokens stored in {tmp_path / 'tokens.json'}" in cli["auth.signed_in"]


def test_an_app_not_signed_in_says_why_in_russian(qtbot, sim, tmp_path, russian):
    sim.register_app(CLIENT_ID, SECRET)
    monitor = _app_monitor(sim, tmp_path, MemoryStore())
    try:
        findings = monitor.diagnose()
    finally:
        monitor.stop()
    lines = _assert_russian(findings)
    assert "вход ещё не выполнен" in lines["auth.sign_in_needed"]


def test_push_mode_with_no_event_and_then_one_in_russian(qtbot, sim, tmp_path, russian, running):
    settings = from_mapping({
        "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
        "listener": {"port": 0},
        "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0},
        "storage": {"data_dir": str(tmp_path / "data")},
    }, env={})
    monitor = running(settings, secrets=MemoryStore())
    lines = _assert_russian(monitor.diagnose())
    assert "публичный адрес приёма событий" in lines["events.expected_none"]
    sim.add_outgoing_webhook(monitor.status().listen_url)
    sim.portal.add_deal({"TITLE": "Doctor", "STAGE_ID": "PREPARATION"})
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline and not monitor.events(10):
        time.sleep(0.05)
    findings = monitor.diagnose()
    lines = _assert_russian(findings)
    assert re.search(r"пришло \d+ с назад, источник: [а-яё]+", lines["events.last"]), \
        lines["events.last"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"table": "deal", "missing": "folder", "missing_kind": "folder"}, "в папку нельзя писать"),
    ({"table": "deal", "missing": "file is read-only", "missing_kind": "file"},
     "файл только для чтения"),
    ({"table": "deal", "missing": "the server is a read-only replica", "missing_kind": "replica"},
     "реплика только для чтения"),
    ({"table": "deal", "missing": "INSERT, UPDATE", "missing_kind": "privileges"},
     "не хватает прав: INSERT, UPDATE"),
])
def test_what_stops_the_writes_in_russian(params, expected, russian):
    finding = doctor.Finding("target.read_only", doctor.PROBLEM, params)
    assert expected in finding_text(finding)[0]
    assert _english_left(" ".join(finding_text(finding)), finding) == []


def test_every_core_text_has_a_window_translation(russian):
    """A new doctor code must get its Russian line too (else the window shows English)."""
    from deal_monitor.gui.doctordialog import _table

    assert set(doctor.TEXTS) == set(_table())
    for code, (text, action) in _table().items():
        assert re.search("[а-яё]", text, re.I), code
        assert not action or re.search("[а-яё]", action, re.I), code


def test_the_dialog_in_russian_has_no_english_line(qtbot, sim, tmp_path, russian):
    sim.register_app(CLIENT_ID, SECRET)
    monitor = _app_monitor(sim, tmp_path, _signed_in_tokens(sim, tmp_path))
    try:
        dialog = DoctorDialog(monitor)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: not dialog.running and bool(dialog.findings), timeout=WAIT_MS)
        shown = [dialog.lines.item(i).text() for i in range(dialog.lines.count())]
        assert len(shown) == len(dialog.findings) > 5
        for finding, text in zip(dialog.findings, shown, strict=True):
            assert _english_left(text.replace("→", " "), finding) == [], text
        assert re.search("[а-яё]", dialog.summary.text(), re.I)
    finally:
        monitor.stop()


def test_a_taken_listener_port_in_russian(qtbot, sim, tmp_path, russian):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = from_mapping({
            "portal": {"webhook_url": sim.webhook_url},
            "listener": {"port": port},
            "storage": {"data_dir": str(tmp_path / "data")},
        }, env={})
        monitor = Monitor(settings, secrets=MemoryStore(), listen=False)
        try:
            findings = monitor.diagnose()
        finally:
            monitor.stop()
    finding = next(f for f in findings if f.code == "listener.port_busy")
    text, action = finding_text(finding)
    assert text == (f"Приём событий не может использовать 127.0.0.1:{port}: "
                    "порт уже занят другой программой.")
    assert _english_left(f"{text} {action}", finding) == []
    assert "Address already in use" in finding.line()  # the CLI: English, the OS's words
