"""The first-run wizard's three ways in. The browser is played by an HTTP client that follows
the portal simulator's /oauth/authorize/ redirect to the wizard's loopback sign-in."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from deal_monitor import config
from deal_monitor.bitrix.oauth import TOKENS_KEY
from deal_monitor.credentials import MemoryStore
from deal_monitor.gui.wizard import APP, PULL, PUSH, QUESTION, FirstRunDialog

from .conftest import WAIT_MS

pytestmark = pytest.mark.gui

CLIENT_ID, SECRET = "local.wizard01", "wizard-secret"


def _wizard(qtbot, tmp_path, sim=None, tokens=None) -> FirstRunDialog:
    base = {"storage": {"data_dir": str(tmp_path / "data")}}
    if sim is not None:
        # the simulator serves plain http on 127.0.0.1, like an on-premise portal in the LAN
        base["portal"] = {"oauth_server": sim.url, "allow_private_http": True}
    dialog = FirstRunDialog(settings=config.from_mapping(base, env={}), tokens=tokens)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.connect_button.click()
    assert dialog.pages.currentIndex() == QUESTION
    return dialog


def _browser(opened: list):
    """Open the address as a browser would: follow the portal's 302 to the loopback callback."""
    def open_url(url: str) -> None:
        def go() -> None:
            opened.append(requests.get(url, timeout=10))
        threading.Thread(target=go, daemon=True).start()
    return open_url


def _sign_in(qtbot, dialog: FirstRunDialog, sim, secret: str, opened: list | None = None) -> None:
    """Enter the local application, press "Sign in with Bitrix24", wait for the outcome."""
    dialog.app_button.click()
    dialog.open_url = _browser([] if opened is None else opened)
    dialog.portal_url.setText(sim.url + "/")
    dialog.client_id.setText(CLIENT_ID)
    dialog.client_secret.setText(secret)
    dialog.sign_in_button.click()
    assert "Waiting for the browser" in dialog.sign_in_msg.text()
    qtbot.waitUntil(lambda: dialog.app_finish.isEnabled() or "✖" in dialog.sign_in_msg.text(),
                    timeout=WAIT_MS)


def test_the_question_offers_three_paths_with_what_each_needs(qtbot, tmp_path):
    dialog = _wizard(qtbot, tmp_path)
    for button, page, needs in ((dialog.pull_button, PULL, "inbound webhook URL only"),
                                (dialog.app_button, APP, "client secret"),
                                (dialog.push_button, PUSH, "public https address")):
        assert needs in button.description()
        button.click()
        assert dialog.pages.currentIndex() == page
        dialog.pages.setCurrentIndex(QUESTION)
    assert "10 s" in dialog.pull_button.description()
    assert "2 s" in dialog.app_button.description()
    assert "1 s" in dialog.push_button.description()


def test_pull_mode_needs_the_webhook_only(qtbot, tmp_path, sim):
    dialog = _wizard(qtbot, tmp_path)
    dialog.pull_button.click()
    dialog.pull_finish.click()
    assert dialog.choice == "" and dialog.pull_msg.isVisible()
    dialog.pull_webhook.setText(sim.webhook_url)
    dialog.pull_test.click()
    qtbot.waitUntil(lambda: dialog.pull_msg.ok, timeout=WAIT_MS)
    dialog.pull_finish.click()
    assert dialog.choice == "pull"
    assert (dialog.webhook_url, dialog.application_token) == (sim.webhook_url, "")
    settings = config.from_mapping({"portal": {"webhook_url": dialog.webhook_url}}, env={})
    from deal_monitor import connection
    assert connection.mode(settings, dialog.webhook_url, dialog.application_token) == "pull"


def test_push_mode_as_before(qtbot, tmp_path):
    dialog = _wizard(qtbot, tmp_path)
    dialog.push_button.click()
    dialog.port.setValue(9000)
    assert ":9000/bitrix24/events" in dialog.handler_hint.text()
    dialog.webhook.setText("https://portal.example/rest/1/secret123/")
    dialog.token.setText("short")
    dialog.finish_button.click()
    assert dialog.choice == "" and dialog.token_msg.isVisible()
    dialog.token.setText("0123456789abcdef0123456789abcdef")
    dialog.finish_button.click()
    assert dialog.choice == "push" and dialog.listen_port == 9000
    assert dialog.application_token == "0123456789abcdef0123456789abcdef"


def test_local_application_signs_in_through_the_browser_and_binds_offline_events(
        qtbot, tmp_path, sim):
    sim.register_app(CLIENT_ID, SECRET)
    tokens = MemoryStore()
    dialog = _wizard(qtbot, tmp_path, sim, tokens)
    dialog.app_button.click()
    opened: list = []
    dialog.open_url = _browser(opened)
    dialog.sign_in_button.click()  # nothing entered yet: says what is missing, opens nothing
    assert dialog.app_msg.isVisible() and opened == [] and not dialog.app_finish.isEnabled()
    _sign_in(qtbot, dialog, sim, SECRET, opened)
    assert dialog.sign_in_msg.ok, dialog.sign_in_msg.text()
    assert opened and opened[0].status_code == 200
    assert json.loads(tokens.get(TOKENS_KEY))["member_id"] == sim.member_id
    offline = sorted(b.event for b in sim.bindings.of_owner(CLIENT_ID) if b.offline)
    assert offline == ["ONCRMDEALADD", "ONCRMDEALDELETE", "ONCRMDEALUPDATE"]
    dialog.app_finish.click()
    assert dialog.choice == "app"
    chosen = dialog.app_settings()
    assert (chosen.portal.portal_url, chosen.portal.client_id) == (sim.url, CLIENT_ID)
    assert chosen.portal.offline_events and chosen.portal.client_secret == ""


def test_a_wrong_secret_says_so_and_keeps_connect_off(qtbot, tmp_path, sim):
    sim.register_app(CLIENT_ID, SECRET)
    tokens = MemoryStore()
    dialog = _wizard(qtbot, tmp_path, sim, tokens)
    _sign_in(qtbot, dialog, sim, "not-the-secret")
    assert "client secret" in dialog.sign_in_msg.text()
    assert not dialog.sign_in_msg.ok and not dialog.app_finish.isEnabled()
    assert tokens.get(TOKENS_KEY) is None
    dialog.app_finish.click()
    assert dialog.choice == ""


def test_the_app_stores_what_the_wizard_collected(qtbot, tmp_path, sim):
    """DesktopApp.wizard_result: secrets to the store, the rest to a settings file without them."""
    from deal_monitor.bitrix.oauth import CLIENT_SECRET_KEY
    from deal_monitor.gui.app import DesktopApp

    sim.register_app(CLIENT_ID, SECRET)
    store = MemoryStore()
    dialog = _wizard(qtbot, tmp_path, sim, store)
    _sign_in(qtbot, dialog, sim, SECRET)
    dialog.app_finish.click()
    app = DesktopApp.__new__(DesktopApp)
    app.config_path = tmp_path / "deal-monitor.toml"
    settings, kept, _persistent, _problem = app.wizard_result(dialog, dialog.base, store)
    assert kept.get(CLIENT_SECRET_KEY) == SECRET
    written = app.config_path.read_text(encoding="utf-8")
    assert SECRET not in written and CLIENT_ID in written
    again = config.load(app.config_path)
    assert again.portal.offline_events and again.portal.portal_url == sim.url


def test_closing_the_wizard_ends_the_sign_in(qtbot, tmp_path, sim):
    """The loopback server stops with the dialog, and nothing is stored."""
    import socket
    from urllib.parse import parse_qs, urlsplit

    sim.register_app(CLIENT_ID, SECRET)
    tokens = MemoryStore()
    dialog = _wizard(qtbot, tmp_path, sim, tokens)
    dialog.app_button.click()
    opened: list[str] = []
    dialog.open_url = opened.append  # the browser never comes back
    dialog.portal_url.setText(sim.url)
    dialog.client_id.setText(CLIENT_ID)
    dialog.client_secret.setText(SECRET)
    dialog.sign_in_button.click()
    redirect = urlsplit(parse_qs(urlsplit(opened[0]).query)["redirect_uri"][0])
    with socket.create_connection((redirect.hostname, redirect.port), timeout=5):
        pass  # listening while the wizard waits

    def refused() -> bool:
        try:
            socket.create_connection((redirect.hostname, redirect.port), timeout=1).close()
        except OSError:
            return True
        return False

    dialog.reject()
    qtbot.waitUntil(refused, timeout=WAIT_MS)
    assert tokens.get(TOKENS_KEY) is None and dialog.choice == ""
