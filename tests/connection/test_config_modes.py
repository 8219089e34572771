"""Settings of the three ways to connect: modes, the change poll's interval, private http."""

from __future__ import annotations

import pytest

from deal_monitor import connection
from deal_monitor.config import ConfigError, from_mapping

WEBHOOK = "https://example.bitrix24.ru/rest/1/abcdef123/"


def test_webhook_url_alone_is_a_complete_pull_configuration():
    settings = from_mapping({"portal": {"webhook_url": WEBHOOK}}, env={})
    current = connection.mode(settings)
    assert current == connection.PULL
    assert connection.poll_seconds(settings, current) == 10.0


def test_poll_is_off_by_default_outside_pull_mode_and_explicit_values_win():
    push = from_mapping({"portal": {"webhook_url": WEBHOOK, "application_token": "t" * 32}}, env={})
    assert connection.mode(push) == connection.PUSH
    assert connection.poll_seconds(push, connection.PUSH) == 0.0
    pull_off = from_mapping({"portal": {"webhook_url": WEBHOOK}, "sync": {"poll_seconds": 0}},
                            env={})
    assert connection.poll_seconds(pull_off, connection.PULL) == 0.0
    push_on = from_mapping({"portal": {"webhook_url": WEBHOOK, "application_token": "t"},
                            "sync": {"poll_seconds": 2.5}}, env={})
    assert connection.poll_seconds(push_on, connection.PUSH) == 2.5


@pytest.mark.parametrize("value", [-2, 0.5])
def test_poll_seconds_refuses_negative_and_sub_second_values(value):
    with pytest.raises(ConfigError) as err:
        from_mapping({"sync": {"poll_seconds": value}}, env={})
    assert err.value.key == "sync.poll_seconds"


def test_app_modes_and_client_secret_from_the_environment():
    base = {"client_id": "local.abc.def", "portal_url": "https://example.bitrix24.ru"}
    app = from_mapping({"portal": base}, env={"DEAL_MONITOR_CLIENT_SECRET": " s3cret "})
    assert connection.mode(app) == connection.APP
    assert app.portal.client_secret == "s3cret"
    offline = from_mapping({"portal": {**base, "offline_events": True}}, env={})
    assert connection.mode(offline) == connection.APP_OFFLINE
    assert offline.sync.offline_poll_seconds == 2.0
    assert connection.mode(from_mapping({}, env={})) == connection.NONE


@pytest.mark.parametrize("url", ["http://192.168.1.20:8765/bitrix24/events",
                                 "http://10.0.0.5/hook", "http://127.0.0.1:8765/x"])
def test_private_http_public_url_needs_the_explicit_setting(url):
    with pytest.raises(ConfigError) as err:
        from_mapping({"listener": {"public_url": url}}, env={})
    assert err.value.key == "listener.public_url"
    settings = from_mapping({"listener": {"public_url": url},
                             "portal": {"allow_private_http": True}}, env={})
    assert settings.listener.public_url == url


@pytest.mark.parametrize("url", ["http://8.8.8.8/hook", "http://deals.example.com/hook"])
def test_public_http_stays_refused_even_with_the_setting(url):
    with pytest.raises(ConfigError):
        from_mapping({"listener": {"public_url": url}, "portal": {"allow_private_http": True}},
                     env={})


@pytest.mark.parametrize("server", ["http://192.168.1.20", "http://127.0.0.1:8080/"])
def test_a_private_http_oauth_server_needs_the_explicit_setting(server):
    """The client secret and refresh tokens travel to the OAuth server: the window's rule and
    the file's are one rule."""
    with pytest.raises(ConfigError) as err:
        from_mapping({"portal": {"oauth_server": server}}, env={})
    assert err.value.key == "portal.oauth_server"
    settings = from_mapping({"portal": {"oauth_server": server, "allow_private_http": True}},
                            env={})
    assert settings.portal.oauth_server == server


@pytest.mark.parametrize("server", ["http://oauth.bitrix.info", "http://8.8.8.8"])
def test_a_public_http_oauth_server_stays_refused(server):
    with pytest.raises(ConfigError) as err:
        from_mapping({"portal": {"oauth_server": server, "allow_private_http": True}}, env={})
    assert err.value.key == "portal.oauth_server"
    https = from_mapping({"portal": {"oauth_server": "https://oauth.bitrix.info"}}, env={})
    assert https.portal.oauth_server == "https://oauth.bitrix.info"
