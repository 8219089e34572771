"""Settings, first-run wizard, stage filter logic and the crash dialog."""

from __future__ import annotations

import socket
import threading
import tomllib

import pytest
from PySide6.QtCore import QTimer

from deal_monitor.credentials import MemoryStore
from deal_monitor.gui.crash import CrashDialog, CrashReporter
from deal_monitor.gui.settingsdialog import SettingsDialog, check_application_token
from deal_monitor.gui.stagefilter import toggle_stages
from deal_monitor.gui.wizard import FirstRunDialog

from .conftest import WAIT_MS, make_settings

pytestmark = pytest.mark.gui

KNOWN = ["NEW", "PREPARATION", "WON", "C1:NEW", "C1:EXECUTING", "C1:WON"]


@pytest.fixture
def dialog(qtbot, sim, tmp_path, start_controller):
    controller = start_controller(make_settings(tmp_path, sim))
    dlg = SettingsDialog(controller)
    qtbot.addWidget(dlg)
    dlg.show()
    return controller, dlg


def test_wrong_webhook_url_is_shown_under_the_field(qtbot, dialog):
    controller, dlg = dialog
    dlg.webhook.setText("http://portal.example/not-a-webhook")
    dlg.save()
    assert dlg.isVisible(), "the dialog stays open"
    assert dlg.webhook_msg.isVisible()
    assert "/rest/<user id>/<secret>/" in dlg.webhook_msg.text()


def test_webhook_test_button_says_what_is_wrong(qtbot, sim, dialog):
    _controller, dlg = dialog
    dlg.webhook.setText(sim.webhook_url)
    dlg.webhook_test.click()
    qtbot.waitUntil(lambda: dlg.webhook_msg.ok, timeout=WAIT_MS)
    assert "webhook works" in dlg.webhook_msg.text()
    dlg.webhook.setText(sim.webhook_url.replace(sim.webhook_secret, "wrongsecret"))
    dlg.webhook_test.click()
    qtbot.waitUntil(lambda: dlg.webhook_test.isEnabled() and not dlg.webhook_msg.ok
                    and "Checking" not in dlg.webhook_msg.text(), timeout=WAIT_MS)
    assert "wrong or was revoked" in dlg.webhook_msg.text()


def test_listener_test_accepts_our_own_port_and_names_a_busy_one(qtbot, dialog):
    controller, dlg = dialog
    dlg.port.setValue(int(controller.monitor.listener.port))
    dlg.listen_test.click()
    assert "listening there now" in dlg.listen_msg.text()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        dlg.port.setValue(busy.getsockname()[1])
        dlg.listen_test.click()
        qtbot.waitUntil(lambda: dlg.listen_test.isEnabled()
                        and "Checking" not in dlg.listen_msg.text(), timeout=WAIT_MS)
    assert "cannot listen on 127.0.0.1" in dlg.listen_msg.text()


def test_target_test_and_token_test(qtbot, dialog, tmp_path):
    _controller, dlg = dialog
    dlg.target_url.setText("nonsense-driver://x")
    dlg.target_test.click()
    qtbot.waitUntil(lambda: dlg.target_test.isEnabled()
                    and "Checking" not in dlg.target_msg.text(), timeout=WAIT_MS)
    assert "does not answer" in dlg.target_msg.text() and not dlg.target_msg.ok
    dlg.target_url.setText(f"sqlite:///{tmp_path / 'prod.db'}")
    dlg.target_test.click()
    qtbot.waitUntil(lambda: dlg.target_msg.ok, timeout=WAIT_MS)
    dlg.token.setText("has space")
    dlg.token_test.click()
    assert "spaces" in dlg.token_msg.text()
    assert check_application_token("") and not check_application_token("a" * 32)


def test_notification_test_button(qtbot, dialog):
    controller, dlg = dialog
    notices = []
    controller.notified.connect(notices.append)
    dlg.notify_test.click()
    assert notices and "This is how Deal Monitor tells you" in notices[0].text


def test_public_url_test(qtbot, dialog, sim):
    controller, dlg = dialog
    dlg.public_url.setText("localhost")
    dlg.public_test.click()
    assert "public https:// URL" in dlg.public_msg.text()
    from deal_monitor.gui.settingsdialog import check_public_url

    listen_url = controller.monitor.status().listen_url
    # our own listener counts as reachable, by address and under a host name
    assert check_public_url(listen_url) == ""
    assert check_public_url(listen_url.replace("127.0.0.1", "localhost")) == ""
    # another server on that address is named as not being Deal Monitor
    other = check_public_url(f"{sim.url}/bitrix24/events")
    assert "answered HTTP" in other and "not Deal Monitor" in other, other
    # and a closed port is reported as such
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert "Nothing answers at this address" in check_public_url(f"http://127.0.0.1:{closed}/x")


def test_save_keeps_secrets_out_of_the_file(qtbot, sim, tmp_path, start_controller):
    store = MemoryStore()
    controller = start_controller(make_settings(tmp_path), secrets=store)
    dlg = SettingsDialog(controller)
    qtbot.addWidget(dlg)
    assert "only until the app closes" in dlg.keyring_note.text()
    dlg.webhook.setText(sim.webhook_url)
    dlg.token.setText(sim.application_token)
    dlg.plan.setCurrentIndex(dlg.plan.findData("enterprise"))
    dlg.notify_production.setChecked(True)
    dlg.save()
    assert dlg.result() == SettingsDialog.DialogCode.Accepted
    saved = (tmp_path / "deal-monitor.toml").read_text(encoding="utf-8")
    data = tomllib.loads(saved)
    # secrets are kept out; the desktop writes only keys that differ from their defaults
    assert "webhook_url" not in data["portal"] and "application_token" not in data["portal"]
    assert sim.webhook_secret not in saved and sim.application_token not in saved
    assert data["portal"]["plan"] == "enterprise"
    assert store.get("webhook_url") == sim.webhook_url
    assert store.get("application_token") == sim.application_token
    assert controller.monitor.webhook_url == sim.webhook_url
    assert controller.notify_production
    # the running core took the new connection: it can read the portal now
    qtbot.waitUntil(lambda: controller.catalog.loaded, timeout=WAIT_MS)


def test_keyring_failure_keeps_secrets_in_memory(qtbot, tmp_path, start_controller):
    class BrokenKeyring(MemoryStore):
        def set(self, name, value):
            from deal_monitor.credentials import SecretStoreUnavailable

            raise SecretStoreUnavailable("the keyring did not answer (locked?)")

    controller = start_controller(make_settings(tmp_path), secrets=BrokenKeyring())
    problem = controller.store_secrets("https://p.example/rest/1/abc/", "0123456789abcdef")
    assert "locked" in problem and "not written to disk" in problem
    assert controller.secrets.get("webhook_url") == "https://p.example/rest/1/abc/"
    assert not controller.secrets_persistent


def test_wizard_demo(qtbot):
    """The connection paths are in test_connect_wizard.py."""
    wizard = FirstRunDialog()
    qtbot.addWidget(wizard)
    wizard.demo_button.click()
    assert wizard.choice == "demo" and wizard.result() == FirstRunDialog.DialogCode.Accepted


def test_toggle_stages_keeps_the_core_semantics():
    # unchecking a stage of pipeline 1 keeps the others
    entries, _ = toggle_stages(["C1:NEW", "C1:EXECUTING"], KNOWN, {"C1:NEW": False})
    assert entries == ["C1:EXECUTING"]
    # a general-pipeline stage is skipped there alone (C0:), C1:WON stays written
    entries, _ = toggle_stages([], KNOWN, {"WON": True})
    assert entries == ["C0:WON"]
    # unchecking the general NEW of the bare default keeps C1:NEW skipped
    entries, expanded = toggle_stages(["NEW"], KNOWN, {"NEW": False})
    assert entries == ["C1:NEW"] and expanded
    # and unchecking C1:NEW keeps the general NEW skipped
    entries, expanded = toggle_stages(["NEW"], KNOWN, {"C1:NEW": False})
    assert entries == ["C0:NEW"] and expanded
    # entries for stages the portal no longer has are kept
    entries, _ = toggle_stages(["C7:OLD"], KNOWN, {"C1:EXECUTING": True})
    assert entries == ["C1:EXECUTING", "C7:OLD"]


def test_crash_reporter_catches_gui_and_thread_errors(qtbot, tmp_path):
    reporter = CrashReporter(tmp_path, interactive=False)
    reporter.install()
    try:
        def boom() -> None:
            raise ValueError("broken slot https://x.example/rest/1/topsecret99/")

        QTimer.singleShot(0, boom)
        qtbot.waitUntil(lambda: len(reporter.reports) == 1, timeout=WAIT_MS)
        summary, details = reporter.reports[0]
        assert summary.startswith("ValueError: broken slot")
        assert "topsecret99" not in summary + details  # secrets masked
        worker = threading.Thread(target=lambda: 1 / 0, name="worker-x")
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: len(reporter.reports) == 2, timeout=WAIT_MS)
        assert "ZeroDivisionError" in reporter.reports[1][0] and "worker-x" in reporter.reports[1][0]
    finally:
        reporter.uninstall()
    dialog = CrashDialog("ValueError: x", "Traceback ...", tmp_path)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.details.isVisible()
