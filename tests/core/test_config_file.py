"""The settings file over releases: its version, renamed keys, what the desktop writes back."""

from __future__ import annotations

import logging
import tomllib

import pytest

from deal_monitor import config
from deal_monitor.config import ConfigError

USER_FILE = """\
# written by hand on the office server
[listener]
# the port the tunnel forwards to
port = 9000  # agreed with IT
host = "127.0.0.1"

[sync]
debounce_seconds = 0.5
skip_stages = ["NEW", "C1:NEW"]  # both pipelines
reconcile_minutes = 5.0
"""


def test_a_file_without_version_is_read_and_a_newer_format_is_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    assert config.load(path, env={}).listener.port == 9000
    path.write_text("version = 99\n" + USER_FILE, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(path, env={})
    assert caught.value.key == "version" and "\n" not in str(caught.value)
    path.write_text('version = "two"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="config key version"):
        config.load(path, env={})


@pytest.fixture
def renamed(monkeypatch):
    """A key renamed by file format 2 (the mechanism; no key has been renamed yet)."""
    monkeypatch.setitem(config.RENAMED_KEYS, 2, {"sync.catch_up_minutes": "sync.reconcile_minutes"})


def test_a_renamed_key_is_read_under_its_new_name_with_a_warning(tmp_path, renamed, caplog):
    path = tmp_path / "c.toml"
    path.write_text("[sync]\ncatch_up_minutes = 15  # every quarter hour\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="deal_monitor.config"):
        settings = config.load(path, env={})
    assert settings.sync.reconcile_minutes == 15.0
    assert "sync.catch_up_minutes is now called sync.reconcile_minutes" in caplog.text
    # a file already in the new format must not use the old name: that is a typo
    path.write_text(f"version = {config.FILE_VERSION}\n[sync]\ncatch_up_minutes = 15\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="sync.catch_up_minutes: unknown key"):
        config.load(path, env={})


def test_saving_writes_the_new_name_and_the_version(tmp_path, renamed):
    path = tmp_path / "c.toml"
    path.write_text("# mine\n[sync]\ncatch_up_minutes = 15\n", encoding="utf-8")
    config.save(path, config.load(path, env={}))
    assert path.read_text(encoding="utf-8") == (
        "version = 2\n# mine\n\n[sync]\nreconcile_minutes = 15.0\n")


def test_the_desktop_writes_only_changed_keys_and_keeps_comments_and_order(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    settings = config.load(path, env={})
    settings = settings.replace("listener", port=9100).replace("target", table="orders")
    config.save(path, settings)
    assert path.read_text(encoding="utf-8") == (
        "version = 2\n"
        "# written by hand on the office server\n"
        "\n"
        "[listener]\n"
        "# the port the tunnel forwards to\n"
        "port = 9100  # agreed with IT\n"
        "\n"
        "[sync]\n"
        'skip_stages = ["NEW", "C1:NEW"]  # both pipelines\n'
        "\n"
        "[target]\n"
        'table = "orders"\n'
    )
    assert config.load(path, env={}) == settings
    # back to every default: nothing but the version is left
    config.save(path, config.from_mapping({}, env={}))
    assert tomllib.loads(path.read_text(encoding="utf-8")) == {"version": 2}


AWKWARD = 'line one\nline two "quoted" \\ back\tslash \x7f end'


@pytest.mark.parametrize("write", ["save", "to_toml"])
def test_values_with_newlines_and_quotes_stay_valid_toml(tmp_path, write):
    settings = config.from_mapping({
        "portal": {"auth_connector": AWKWARD},
        # absolute: a relative data_dir is resolved against the file's folder when loaded
        "storage": {"data_dir": str(tmp_path / "planner\nsecond line")},
        "mapping": {"preset": "custom", "key_column": "bitrix_id",
                    "columns": {"bitrix_id": "field:ID", "note": "template:{TITLE}\n{COMMENTS}"}},
    }, env={})
    path = tmp_path / "c.toml"
    if write == "save":
        config.save(path, settings)
    else:
        path.write_text(config.to_toml(settings), encoding="utf-8")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    assert raw["portal"]["auth_connector"] == AWKWARD
    assert raw["mapping"]["columns"]["note"] == "template:{TITLE}\n{COMMENTS}"
    assert config.load(path, env={}) == settings
