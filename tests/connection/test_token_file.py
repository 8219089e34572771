"""OAuth tokens where no keyring service exists: an owner-only file that survives restarts."""

from __future__ import annotations

import json
import os
import stat
import sys

import keyring
import pytest
from keyring.backends import fail

from deal_monitor.bitrix.oauth import TOKENS_KEY, OAuthAuth, Tokens
from deal_monitor.credentials import FileStore, MemoryStore, describe_store, open_token_store


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_without_a_keyring_tokens_go_to_an_owner_only_file(tmp_path, no_keyring):
    store = open_token_store(tmp_path)
    assert isinstance(store, FileStore)
    store.set(TOKENS_KEY, '{"a": 1}')
    path = tmp_path / "tokens.json"
    assert json.loads(path.read_text(encoding="utf-8")) == {TOKENS_KEY: '{"a": 1}'}
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert describe_store(store) == f"tokens stored in {path}"
    assert "keyring" not in describe_store(store).replace(str(path), "")
    # a new process (a new store object) reads them back; deleting removes only that key
    again = open_token_store(tmp_path)
    assert again.get(TOKENS_KEY) == '{"a": 1}'
    again.set("other", "x")
    again.delete(TOKENS_KEY)
    assert json.loads(path.read_text(encoding="utf-8")) == {"other": "x"}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_a_wider_leftover_temp_file_does_not_leak_its_mode(tmp_path):
    leftover = tmp_path / "tokens.json.tmp"
    leftover.write_text("{}", encoding="utf-8")
    os.chmod(leftover, 0o644)
    FileStore(tmp_path / "tokens.json").set("k", "v")
    assert stat.S_IMODE(os.stat(tmp_path / "tokens.json").st_mode) == 0o600


def test_oauth_keeps_tokens_in_the_token_store_and_reads_them_after_a_restart(tmp_path):
    secrets = MemoryStore({"client_secret": "from-keyring"})
    tokens = FileStore(tmp_path / "tokens.json")
    first = OAuthAuth("https://example.bitrix24.ru", "local.x", secrets, token_store=tokens)
    assert first.needs_reauthorization
    first.install("access-1", "refresh-1", "m" * 32)
    assert secrets.get(TOKENS_KEY) is None  # not in the secret store
    second = OAuthAuth("https://example.bitrix24.ru", "local.x", secrets, token_store=tokens)
    assert not second.needs_reauthorization
    assert second.auth_params() == {"auth": "access-1"}
    stored = Tokens(**json.loads(tokens.get(TOKENS_KEY)))
    assert (stored.refresh_token, stored.member_id) == ("refresh-1", "m" * 32)


def test_a_configured_client_secret_wins_over_the_store():
    auth = OAuthAuth("https://p.example", "local.x", MemoryStore({"client_secret": "stored"}),
                     client_secret="configured")
    assert auth._client_secret() == "configured"
    assert OAuthAuth("https://p.example", "local.x", MemoryStore()).has_client_secret() is False
