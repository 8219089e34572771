"""The window in each connection mode: Check connection (the doctor), "Sign in again",
change-poll rows."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import pytest
import requests

from deal_monitor.bitrix.oauth import TOKENS_KEY
from deal_monitor.credentials import MemoryStore
from deal_monitor.gui.doctordialog import DoctorDialog
from deal_monitor.gui.mainwindow import MainWindow

from .conftest import WAIT_MS, make_settings

pytestmark = pytest.mark.gui

CLIENT_ID, SECRET = "local.window01", "window-secret"


def _lines(dialog: DoctorDialog) -> dict[str, str]:
    return {dialog.lines.item(i).data(0x0100): dialog.lines.item(i).text()
            for i in range(dialog.lines.count())}


def _window(qtbot, controller) -> MainWindow:
    window = MainWindow(controller, tray_available=False)
    qtbot.addWidget(window)
    window.show()
    return window


def _pull_doctor(qtbot, tmp_path, start_controller, webhook_url: str) -> DoctorDialog:
    """A pull-mode app's window, and its "Check connection" dialog once the checks are done."""
    controller = start_controller(make_settings(tmp_path, portal={"webhook_url": webhook_url},
                                                listener={"enabled": False}))
    return _doctor(qtbot, _window(qtbot, controller))


def _doctor(qtbot, window) -> DoctorDialog:
    window.doctor_action.trigger()
    dialog = window.doctor_dialog
    qtbot.waitUntil(lambda: not dialog.running and bool(dialog.findings), timeout=WAIT_MS)
    return dialog


def test_pull_mode_lines_say_what_works(qtbot, sim, tmp_path, start_controller):
    dialog = _pull_doctor(qtbot, tmp_path, start_controller, sim.webhook_url)
    lines = _lines(dialog)
    assert "pull mode" in lines["config.ok"]
    assert urlsplit(sim.url).netloc in lines["portal.ok"]
    assert "crm" in lines["portal.crm_ok"]
    assert dialog.summary.ok and "No problem" in dialog.summary.text()
    assert all("→" not in text for text in lines.values())  # no action where nothing is wrong


def test_a_refused_webhook_is_a_problem_with_what_to_do(qtbot, sim, tmp_path, start_controller):
    wrong = sim.webhook_url.replace(sim.webhook_secret, "wrongsecret00")
    dialog = _pull_doctor(qtbot, tmp_path, start_controller, wrong)
    lines = _lines(dialog)
    assert "portal.refused" in lines and "→ Check the webhook address" in lines["portal.refused"]
    assert not dialog.summary.ok and "problem" in dialog.summary.text()
    dialog.again.click()  # runs again, same answer
    qtbot.waitUntil(lambda: not dialog.running, timeout=WAIT_MS)
    assert "portal.refused" in _lines(dialog)


def test_russian_lines(qtbot, sim, tmp_path, start_controller, qm_cache):
    from deal_monitor.gui.i18n import Translations

    translations = Translations(cache=qm_cache)  # kept: its translators live as long as it
    translations.install("ru")
    dialog = _pull_doctor(qtbot, tmp_path, start_controller, sim.webhook_url)
    lines = _lines(dialog)
    assert "Портал отвечает" in lines["portal.ok"]
    assert "режим опроса" in lines["config.ok"]
    translations.install("en")


def test_the_window_asks_to_sign_in_again_and_the_button_signs_in(qtbot, sim, tmp_path):
    """No keyring: the tokens go to the owner-only file, and the status says so."""
    from deal_monitor.credentials import FileStore
    from deal_monitor.gui.controller import AppController

    sim.register_app(CLIENT_ID, SECRET)
    store = MemoryStore({"client_secret": SECRET})
    tokens = FileStore(tmp_path / "tokens.json")
    settings = make_settings(tmp_path, portal={"client_id": CLIENT_ID, "portal_url": sim.url,
                                               "oauth_server": sim.url, "allow_private_http": True},
                             listener={"enabled": False})
    controller = AppController(settings, store, config_path=tmp_path / "deal-monitor.toml",
                               tokens=tokens)
    controller.start()
    try:
        window = _window(qtbot, controller)
        bar = window.signin_bar
        qtbot.waitUntil(lambda: bar.isVisible() and bar.action.isVisible(), timeout=WAIT_MS)
        assert "needs a new sign-in" in bar.text.text() and bar.action.text() == "Sign in again"
        pages: list = []

        def browser(url: str) -> None:  # follows the portal's redirect to the loopback callback
            threading.Thread(target=lambda: pages.append(requests.get(url, timeout=10)),
                             daemon=True).start()

        bar.open_url = browser
        bar.action.click()
        qtbot.waitUntil(lambda: bar.kind == "success", timeout=WAIT_MS)
        assert pages and pages[0].status_code == 200
        assert store.get(TOKENS_KEY) is None
        assert FileStore(tmp_path / "tokens.json").get(TOKENS_KEY)
        qtbot.waitUntil(lambda: controller.status.auth_state == "ok", timeout=WAIT_MS)
        assert str(tmp_path / "tokens.json") in controller.status.token_storage
        assert not bar.action.isVisible()
    finally:
        controller.shutdown()


def test_pull_mode_changes_show_as_change_poll_rows(qtbot, sim, tmp_path, start_controller):
    """Webhook only, no events ever sent: a new deal comes in by the change poll and the events
    table names the row."""
    from deal_monitor.gui.models import EventsModel

    controller = start_controller(make_settings(
        tmp_path, portal={"webhook_url": sim.webhook_url}, listener={"enabled": False},
        sync={"poll_seconds": 1}))
    deal_id = sim.portal.add_deal({"TITLE": "polled", "STAGE_ID": "PREPARATION"})
    events = controller.events_model
    qtbot.waitUntil(lambda: any(r.deal_id == deal_id for r in events.records()), timeout=WAIT_MS)
    polled = [r for r in events.records() if r.deal_id == deal_id]
    assert [r.event for r in polled] == ["POLL"]
    row = events.row_of(polled[0].id)
    assert events.index(row, EventsModel.EVENT).data() == "Change poll"


def test_settings_switch_from_pull_mode_to_the_local_app_and_keep_the_inbox(
        qtbot, sim, tmp_path, start_controller):
    from deal_monitor.gui.settingsdialog import SettingsDialog

    sim.register_app(CLIENT_ID, SECRET)
    store = MemoryStore()
    controller = start_controller(make_settings(
        # the simulator's plain http on 127.0.0.1 is an on-premise portal in the LAN to Settings
        tmp_path, portal={"webhook_url": sim.webhook_url, "oauth_server": sim.url,
                          "allow_private_http": True},
        listener={"enabled": False}, sync={"poll_seconds": 1}), secrets=store)
    window = _window(qtbot, controller)
    deal_id = sim.portal.add_deal({"TITLE": "before the switch", "STAGE_ID": "PREPARATION"})
    qtbot.waitUntil(lambda: any(r.deal_id == deal_id for r in controller.events_model.records()),
                    timeout=WAIT_MS)
    dlg = SettingsDialog(controller, window)
    qtbot.addWidget(dlg)
    dlg.webhook.setText("")
    dlg.app_portal.setText(sim.url)
    dlg.app_client_id.setText(CLIENT_ID)
    dlg.app_secret.setText(SECRET)
    dlg.app_offline.setChecked(True)
    dlg.save()
    assert store.get("client_secret") == SECRET
    written = (tmp_path / "deal-monitor.toml").read_text(encoding="utf-8")
    assert CLIENT_ID in written and SECRET not in written
    qtbot.waitUntil(lambda: controller.running
                    and controller.monitor.connection_mode() == "app_offline", timeout=WAIT_MS)
    bar = window.signin_bar
    qtbot.waitUntil(lambda: bar.action.isVisible(), timeout=WAIT_MS)
    bar.open_url = lambda url: threading.Thread(
        target=lambda: requests.get(url, timeout=10), daemon=True).start()
    bar.action.click()
    qtbot.waitUntil(lambda: bar.kind == "success", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: controller.status.auth_state == "ok", timeout=WAIT_MS)
    controller.reload()
    qtbot.waitUntil(lambda: not controller.loading, timeout=WAIT_MS)
    assert any(r.deal_id == deal_id for r in controller.events_model.records())  # inbox kept
    # the offline events were bound with the new sign-in: a change now comes through the queue
    qtbot.waitUntil(lambda: sorted(b.event for b in sim.bindings.of_owner(CLIENT_ID)
                                   if b.offline) == ["ONCRMDEALADD", "ONCRMDEALDELETE",
                                                     "ONCRMDEALUPDATE"], timeout=WAIT_MS)
    after = sim.portal.add_deal({"TITLE": "after the switch", "STAGE_ID": "PREPARATION"})
    qtbot.waitUntil(lambda: any(r.deal_id == after and r.source.value == "offline"
                                for r in controller.events_model.records()), timeout=WAIT_MS)
