"""The local application's advanced part — OAuth server and sign-in port — in the first-run
wizard and in Settings: left alone by a cloud user, checked by the core's rules, used for the
sign-in, and saved."""

from __future__ import annotations

import socket
import tomllib
from urllib.parse import parse_qs, urlsplit

import pytest

from deal_monitor import config
from deal_monitor.credentials import MemoryStore
from deal_monitor.gui.settingsdialog import SettingsDialog
from deal_monitor.gui.wizard import APP, FirstRunDialog

from .conftest import WAIT_MS, make_settings
from .test_connect_wizard import CLIENT_ID, SECRET, _browser

pytestmark = pytest.mark.gui

PUBLIC_HTTP = "must be a public https:// URL"


def _app_page(qtbot, tmp_path, **portal) -> FirstRunDialog:
    base = {"storage": {"data_dir": str(tmp_path / "data")}}
    if portal:
        base["portal"] = portal
    dialog = FirstRunDialog(settings=config.from_mapping(base, env={}), tokens=MemoryStore())
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.connect_button.click()
    dialog.app_button.click()
    assert dialog.pages.currentIndex() == APP
    return dialog


def _enter_app(dialog: FirstRunDialog, portal_url: str) -> None:
    dialog.portal_url.setText(portal_url)
    dialog.client_id.setText(CLIENT_ID)
    dialog.client_secret.setText(SECRET)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_cloud_user_leaves_the_advanced_part_alone(qtbot, tmp_path):
    dialog = _app_page(qtbot, tmp_path)
    advanced = dialog.advanced
    assert advanced.toggle.isVisible() and not advanced.body.isVisible()
    assert "OAuth server and sign-in port" in advanced.toggle.text()
    advanced.toggle.click()
    assert advanced.body.isVisible()
    # the defaults are shown, and said when to change them
    assert advanced.server.placeholderText() == "https://oauth.bitrix.info"
    assert advanced.port.placeholderText() == "automatic"
    assert "cloud portal" in advanced.note.text() and "leave it as it is" in advanced.note.text()
    _enter_app(dialog, "https://example.bitrix24.ru")
    chosen = dialog.app_settings()
    assert chosen is not None
    assert (chosen.portal.oauth_server, chosen.portal.signin_port) == ("", 0)
    assert not chosen.portal.allow_private_http


@pytest.mark.parametrize(("server", "private_http", "port", "expected"), [
    ("http://oauth.example.com", False, "", f"OAuth server: {PUBLIC_HTTP}"),
    ("http://192.168.1.5", False, "", f"OAuth server: {PUBLIC_HTTP}"),
    ("http://8.8.8.8", True, "", f"OAuth server: {PUBLIC_HTTP}"),  # public: never
    ("ftp://oauth.example.com", False, "", f"OAuth server: {PUBLIC_HTTP}"),
    ("https://oauth.example.com", False, "70000", "Sign-in port: must be between 0 and 65535"),
    ("https://oauth.example.com", False, "-1", "Sign-in port: must be between 0 and 65535"),
    ("https://oauth.example.com", False, "abc", "Sign-in port: must be a whole number"),
])
def test_wrong_advanced_values_are_refused_before_the_browser_opens(
        qtbot, tmp_path, server, private_http, port, expected):
    dialog = _app_page(qtbot, tmp_path)
    opened: list[str] = []
    dialog.open_url = opened.append
    _enter_app(dialog, "https://example.bitrix24.ru")
    dialog.advanced.server.setText(server)
    dialog.advanced.private_http.setChecked(private_http)
    dialog.advanced.port.setText(port)
    dialog.advanced.toggle.setChecked(False)  # closed: a problem opens it
    dialog.sign_in_button.click()
    assert opened == []
    assert dialog.advanced.body.isVisible()
    assert not dialog.advanced.message.ok and expected in dialog.advanced.message.text()


def test_plain_http_to_a_private_address_only_when_allowed(qtbot, tmp_path):
    dialog = _app_page(qtbot, tmp_path)
    _enter_app(dialog, "http://192.168.1.5")
    dialog.advanced.server.setText("http://192.168.1.5/")
    assert dialog.app_settings() is None
    dialog.advanced.private_http.setChecked(True)
    chosen = dialog.app_settings()
    assert chosen is not None and chosen.portal.allow_private_http
    assert chosen.portal.oauth_server == "http://192.168.1.5"
    assert not dialog.advanced.message.isVisible()


def test_the_sign_in_uses_the_entered_server_and_port_and_they_are_saved(qtbot, tmp_path, sim):
    """The simulator is the OAuth server (plain http on 127.0.0.1, like an on-premise portal):
    the tokens come only if the entered server is the one asked; the browser comes back on the
    entered port."""
    from deal_monitor.bitrix.oauth import TOKENS_KEY
    from deal_monitor.gui.app import DesktopApp

    sim.register_app(CLIENT_ID, SECRET)
    dialog = _app_page(qtbot, tmp_path)
    tokens = dialog.tokens
    port = _free_port()
    urls: list[str] = []
    pages: list = []
    follow = _browser(pages)
    dialog.open_url = lambda url: (urls.append(url), follow(url))
    _enter_app(dialog, sim.url)
    dialog.advanced.toggle.click()
    dialog.advanced.server.setText(sim.url)
    dialog.advanced.private_http.setChecked(True)
    dialog.advanced.port.setText(str(port))
    dialog.sign_in_button.click()
    qtbot.waitUntil(lambda: dialog.app_finish.isEnabled() or "✖" in dialog.sign_in_msg.text(),
                    timeout=WAIT_MS)
    assert dialog.sign_in_msg.ok, dialog.sign_in_msg.text()
    redirect = urlsplit(parse_qs(urlsplit(urls[0]).query)["redirect_uri"][0])
    assert (redirect.hostname, redirect.port) == ("127.0.0.1", port)
    assert tokens.get(TOKENS_KEY)
    dialog.app_finish.click()
    assert dialog.choice == "app"
    app = DesktopApp.__new__(DesktopApp)
    app.config_path = tmp_path / "deal-monitor.toml"
    app.wizard_result(dialog, dialog.base, MemoryStore())
    text = app.config_path.read_text(encoding="utf-8")
    saved = tomllib.loads(text)["portal"]
    assert saved["oauth_server"] == sim.url
    assert saved["signin_port"] == port
    assert saved["allow_private_http"] is True
    assert SECRET not in text


def test_settings_offer_the_same_fields(qtbot, tmp_path, sim, start_controller):
    settings = make_settings(tmp_path, portal={
        "client_id": CLIENT_ID, "portal_url": sim.url, "oauth_server": sim.url,
        "allow_private_http": True, "signin_port": 8766}, listener={"enabled": False})
    controller = start_controller(settings)
    path = tmp_path / "deal-monitor.toml"
    dialog = SettingsDialog(controller)
    qtbot.addWidget(dialog)
    dialog.show()
    advanced = dialog.app_advanced
    # something is set: the part is open and shows it
    assert advanced.body.isVisible()
    assert (advanced.server.text(), advanced.port.text()) == (sim.url, "8766")
    assert advanced.private_http.isChecked()
    for server, port, expected in (
            (sim.url, "65536", "Sign-in port: must be between 0 and 65535"),
            ("http://oauth.example.com", "8766", f"OAuth server: {PUBLIC_HTTP}")):
        advanced.server.setText(server)
        advanced.port.setText(port)
        dialog.save()
        assert dialog.result() != dialog.DialogCode.Accepted
        assert expected in advanced.message.text()
        assert not path.exists()  # nothing saved
    advanced.server.setText("https://oauth.example.com")
    advanced.port.setText("")
    advanced.private_http.setChecked(False)
    dialog.save()
    assert dialog.result() == dialog.DialogCode.Accepted, advanced.message.text()
    saved = tomllib.loads(path.read_text(encoding="utf-8"))["portal"]
    assert saved["oauth_server"] == "https://oauth.example.com"
    assert "signin_port" not in saved and "allow_private_http" not in saved  # the defaults
    assert controller.settings.portal.signin_port == 0
