"""Settings: defaults, env overrides, and one clear message naming the wrong key."""

from __future__ import annotations

import pytest

from deal_monitor import config
from deal_monitor.config import ConfigError


def test_defaults_match_the_documented_interface():
    s = config.from_mapping({}, env={})
    assert s.portal.plan == "standard" and s.portal.bucket == (50, 2.0)
    assert (s.listener.host, s.listener.port, s.listener.path) == ("127.0.0.1", 8765, "/bitrix24/events")
    assert s.sync.skip_stages == ("NEW",) and s.sync.debounce_seconds == 0.5
    assert s.sync.reconcile_minutes == 5 and s.target.table == "deal"


def test_environment_secrets_win_over_the_file():
    s = config.from_mapping(
        {"portal": {"webhook_url": "https://a.bitrix24.ru/rest/1/filesecret/", "application_token": "f"}},
        env={
            config.ENV_WEBHOOK_URL: "https://a.bitrix24.ru/rest/1/envsecret/",
            config.ENV_APPLICATION_TOKEN: "from-env",
        },
    )
    assert s.portal.webhook_url.endswith("/envsecret/") and s.portal.application_token == "from-env"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"portal": {"plan": "gold"}}, "portal.plan"),
        ({"portal": {"webhook_url": "ftp://x"}}, "portal.webhook_url"),
        ({"portal": {"member_id": "xyz"}}, "portal.member_id"),
        ({"listener": {"port": 70000}}, "listener.port"),
        ({"listener": {"port": "80"}}, "listener.port"),
        ({"listener": {"prot": 80}}, "listener.prot"),
        ({"sync": {"skip_stages": ["NEW", "bad stage"]}}, "sync.skip_stages[1]"),
        ({"sync": {"debounce_seconds": -1}}, "sync.debounce_seconds"),
        ({"target": {"table": "deal; drop"}}, "target.table"),
        ({"targte": {}}, "targte"),
    ],
)
def test_bad_values_name_their_key(data, key):
    with pytest.raises(ConfigError) as info:
        config.from_mapping(data, env={})
    assert info.value.key == key
    assert key in str(info.value)


def test_toml_round_trip(tmp_path):
    s = config.from_mapping(
        {"sync": {"skip_stages": ["NEW", "C1:NEW"], "debounce_seconds": 1.5}, "listener": {"port": 9000}},
        env={},
    )
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(s), encoding="utf-8")
    assert config.load(path, env={}) == s


def test_not_toml_is_a_clear_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[portal\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(path, env={})
