"""Every settings key from the environment, paths from the config file's folder, the state URL
check, and DB passwords kept apart from the URLs."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from deal_monitor import config, envconfig
from deal_monitor.config import ConfigError, Settings
from deal_monitor.store.engine import make_engine

OAUTH = {"DEAL_MONITOR_PORTAL_CLIENT_ID": "local.abc",
         "DEAL_MONITOR_PORTAL_PORTAL_URL": "https://b24.example.ru"}
CUSTOM = {"DEAL_MONITOR_MAPPING_PRESET": "custom",
          "DEAL_MONITOR_MAPPING_COLUMNS": '{"name": "field:TITLE|text"}'}

# (section, key): (text in the environment, the value the setting must hold, other variables
# the value needs to be valid). Written by hand: nothing here comes from the code under test.
TABLE: dict[tuple[str, str], tuple[str, object, dict[str, str]]] = {
    ("portal", "webhook_url"): ("https://b24.example.ru/rest/1/s3cr3tw3bh00k/",
                                "https://b24.example.ru/rest/1/s3cr3tw3bh00k/", {}),
    ("portal", "application_token"): ("tok123456", "tok123456", {}),
    ("portal", "previous_application_token"): ("old123456", "old123456", {}),
    ("portal", "token_grace_minutes"): ("2.5", 2.5, {}),
    ("portal", "member_id"): ("0123456789abcdef0123456789ABCDEF",
                              "0123456789abcdef0123456789ABCDEF", {}),
    ("portal", "plan"): ("enterprise", "enterprise", {}),
    ("portal", "client_id"): ("local.abc", "local.abc", OAUTH),
    ("portal", "portal_url"): ("https://b24.example.ru", "https://b24.example.ru", {}),
    ("portal", "oauth_server"): ("https://oauth.example.ru", "https://oauth.example.ru", {}),
    ("portal", "offline_events"): ("true", True, OAUTH),
    ("portal", "auth_connector"): ("conn_x", "conn_x", {}),
    ("listener", "host"): ("0.0.0.0", "0.0.0.0", {}),
    ("listener", "port"): ("18080", 18080, {}),
    ("listener", "path"): ("/hooks/b24", "/hooks/b24", {}),
    ("listener", "public_url"): ("https://deals.example.ru/hooks/b24",
                                 "https://deals.example.ru/hooks/b24", {}),
    ("listener", "allow_networks"): ("10.0.0.0/8, 192.168.1.0/24",
                                     ("10.0.0.0/8", "192.168.1.0/24"), {}),
    ("listener", "trusted_proxy"): ("127.0.0.1", "127.0.0.1", {}),
    ("listener", "enabled"): ("no", False, {}),
    ("sync", "skip_stages"): ('["NEW", "C1:NEW"]', ("NEW", "C1:NEW"), {}),
    ("sync", "debounce_seconds"): ("1.25", 1.25, {}),
    ("sync", "max_delay_seconds"): ("7", 7.0, {}),
    ("sync", "reconcile_minutes"): ("0", 0.0, {}),
    ("sync", "reconcile_overlap_minutes"): ("3.5", 3.5, {}),
    ("sync", "max_attempts"): ("3", 3, {}),
    ("sync", "offline_poll_seconds"): ("11", 11.0, {}),
    ("sync", "deletion_check_minutes"): ("90", 90.0, {}),
    ("target", "url"): ("postgresql+psycopg://app@db.local/prod",
                        "postgresql+psycopg://app@db.local/prod", {}),
    ("target", "table"): ("orders", "orders", {}),
    ("mapping", "preset"): ("seed", "seed", {}),
    ("mapping", "key_column"): ("deal_ref", "deal_ref", CUSTOM),
    ("mapping", "columns"): ('{"name": "field:TITLE|text"}', {"name": "field:TITLE|text"},
                             {"DEAL_MONITOR_MAPPING_PRESET": "custom"}),
    ("mapping", "products"): ("1", True, {}),
    ("mapping", "product_table"): ("lines", "lines", {}),
    ("mapping", "product_columns"): ('{"qty": "field:QUANTITY|decimal"}',
                                     {"qty": "field:QUANTITY|decimal"}, {}),
    ("mapping", "product_deal_column"): ("order_id", "order_id", {}),
    ("mapping", "product_row_column"): ("line_id", "line_id", {}),
    ("storage", "data_dir"): ("/srv/deal-monitor/data", "/srv/deal-monitor/data", {}),
    ("storage", "state_url"): ("postgresql+psycopg://app@db.local/inbox",
                               "postgresql+psycopg://app@db.local/inbox", {}),
    ("storage", "keep_days"): ("14", 14, {}),
}


def _generic(kind) -> tuple[str, object]:
    """A value for a key the table does not list yet (added by another change)."""
    origin = typing.get_origin(kind) or kind
    if kind is bool:
        return "true", True
    if kind is int:
        return "7", 7
    if kind is float:
        return "7.5", 7.5
    if origin is tuple:
        return "A,B", ("A", "B")
    if origin is dict:
        return '{"a": "b"}', {"a": "b"}
    return "text-value", "text-value"


def _every_key():
    for section in dataclasses.fields(Settings):
        cls = type(getattr(Settings(), section.name))
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield section.name, f.name, hints[f.name]


KEYS = list(_every_key())


def test_the_table_names_every_key_it_knows():
    listed = {(s, k) for s, k, _ in KEYS}
    assert set(TABLE) <= listed, set(TABLE) - listed  # no stale rows


@pytest.mark.parametrize(("section", "key", "kind"), KEYS, ids=[f"{s}.{k}" for s, k, _ in KEYS])
def test_every_key_from_the_environment(section, key, kind, tmp_path):
    text, expected, extra = TABLE.get((section, key), (*_generic(kind), {}))
    name = f"DEAL_MONITOR_{section.upper()}_{key.upper()}"
    file = tmp_path / "deal-monitor.toml"
    default = getattr(getattr(Settings(), section), key)
    assert default != expected, "pick a value that differs from the default"
    file.write_text("", encoding="utf-8")
    settings = config.load(file, env={**extra, name: text})
    assert getattr(getattr(settings, section), key) == expected


def test_the_environment_beats_the_file(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text("[sync]\nmax_attempts = 5\n[listener]\nport = 9000\n", encoding="utf-8")
    settings = config.load(file, env={"DEAL_MONITOR_SYNC_MAX_ATTEMPTS": "2"})
    assert settings.sync.max_attempts == 2
    assert settings.listener.port == 9000


@pytest.mark.parametrize(("name", "text", "line"), [
    ("DEAL_MONITOR_SYNC_MAX_ATTEMPTS", "three",
     "config key sync.max_attempts (from DEAL_MONITOR_SYNC_MAX_ATTEMPTS): must be a whole number"),
    ("DEAL_MONITOR_LISTENER_ENABLED", "maybe",
     "config key listener.enabled (from DEAL_MONITOR_LISTENER_ENABLED): must be true or false"),
    ("DEAL_MONITOR_SYNC_DEBOUNCE_SECONDS", "1,5",
     "config key sync.debounce_seconds (from DEAL_MONITOR_SYNC_DEBOUNCE_SECONDS): must be a number"),
    ("DEAL_MONITOR_MAPPING_COLUMNS", "[1]", "config key mapping.columns (from "
     "DEAL_MONITOR_MAPPING_COLUMNS): must be a JSON object of strings"),
    ("DEAL_MONITOR_SYNC_MAX_ATTEMPS", "3",
     "config key sync.max_attemps (from DEAL_MONITOR_SYNC_MAX_ATTEMPS): unknown key"),
    ("DEAL_MONITOR_LISTENER_PORT", "70000", "config key listener.port: must be between 0 and 65535"),
])
def test_a_wrong_value_is_one_clear_line(name, text, line):
    with pytest.raises(ConfigError) as caught:
        config.from_mapping({}, env={name: text})
    assert str(caught.value) == line
    assert "\n" not in str(caught.value)


def test_config_path_from_the_environment(tmp_path):
    assert envconfig.config_path({}) is None
    assert envconfig.config_path({"DEAL_MONITOR_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"


def test_relative_paths_follow_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    file = folder / "deal-monitor.toml"
    file.write_text('[storage]\ndata_dir = "data"\nstate_url = "sqlite:///db/state.db"\n'
                    '[target]\nurl = "sqlite:///target.db?timeout=5"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    settings = config.load(file, env={})
    assert settings.storage.data_dir == str(folder / "data")
    assert settings.storage.state_url == "sqlite:///" + (folder / "db" / "state.db").as_posix()
    assert settings.target.url == "sqlite:///" + (folder / "target.db").as_posix() + "?timeout=5"
    # absolute ones stay as they are
    file.write_text(f'[storage]\ndata_dir = "{(tmp_path / "abs").as_posix()}"\n', encoding="utf-8")
    assert config.load(file, env={}).storage.data_dir == (tmp_path / "abs").as_posix()


@pytest.mark.parametrize("url", ["mysql+pymysql://root@127.0.0.1/x", "mssql+pyodbc://h/db",
                                 "oracle://u@h/x"])
def test_state_url_must_be_sqlite_or_postgresql(url):
    with pytest.raises(ConfigError) as caught:
        config.from_mapping({"storage": {"state_url": url}}, env={})
    assert caught.value.key == "storage.state_url"
    assert "SQLite" in caught.value.problem and "PostgreSQL" in caught.value.problem


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql+psycopg://u@h/db"])
def test_state_url_sqlite_and_postgresql_pass(url):
    assert config.from_mapping({"storage": {"state_url": url}}, env={}).storage.state_url == url


def test_db_password_from_the_environment_goes_into_the_engine_only():
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    env = {"DEAL_MONITOR_TARGET_PASSWORD": "pw-Target-9271", "DEAL_MONITOR_STATE_PASSWORD":
           "pw-State-5531"}
    state = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    settings = config.from_mapping({"target": {"url": url}, "storage": {"state_url": state}}, env=env)
    assert "pw-" not in settings.target.url + settings.storage.state_url
    monkey_env = pytest.MonkeyPatch()
    for name, value in env.items():
        monkey_env.setenv(name, value)
    try:
        target, inbox = make_engine(url), make_engine(state)
        other = make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/other")
    finally:
        monkey_env.undo()
    assert target.url.password == "pw-Target-9271"
    assert inbox.url.password == "pw-State-5531"
    assert other.url.password is None  # not a configured URL: nothing added
    assert "pw-" not in str(target.url) + repr(target)
    from deal_monitor.logs import secrets

    # a log line that rendered the full URL anyway would be masked
    assert "pw-Target-9271" not in secrets.redact(target.url.render_as_string(False))
    for engine in (target, inbox, other):
        engine.dispose()


def test_db_password_from_the_keyring_when_the_environment_has_none(monkeypatch):
    from deal_monitor.credentials import MemoryStore

    store = MemoryStore()
    store.set("target_password", "kr-pass-8812")
    monkeypatch.delenv("DEAL_MONITOR_TARGET_PASSWORD", raising=False)
    url = "mysql+pymysql://app@127.0.0.1:3306/prod"
    config.from_mapping({"target": {"url": url}}, env={})
    envconfig.use_secret_store(store)
    try:
        engine = make_engine(url)
    finally:
        envconfig.use_secret_store(None)
    assert engine.url.password == "kr-pass-8812"
    engine.dispose()
