"""Secrets never leave (design §5, promises 27-28): canary values through every channel.

Unique canary values stand in for the inbound-webhook secret (a URL path segment), the
application token, the OAuth client secret, every access/refresh token the portal issues and a
database password. Representative runs (good and forged events, REST failures whose exception
texts carry the URL, OAuth refresh and its failure, kill -9 and restart) must leave none of them
in log files, console output, the state/target database files (WAL included), the config file,
``/healthz`` or exception texts.
"""

from __future__ import annotations

import inspect
import json
import logging
import secrets as pysecrets
import subprocess
import sys
import time
from pathlib import Path

import keyring
import pytest
import requests
from keyring.backend import KeyringBackend
from keyring.backends import chainer

from deal_monitor import logs
from deal_monitor.bitrix import phpform
from deal_monitor.credentials import MemoryStore, SecretStoreUnavailable, store
from deal_monitor.service import check_target_url, check_webhook_url
from deal_monitor.simulator import PortalSimulator, formcodec
from tests.e2e.harness import ROOT, HeadlessApp, free_port, wait_for
from tests.e2e.test_never_miss import settings_for
from tests.oracle import live_ids, monitor_target, row_matches, target_table
from tests.reliability.support import FORM, envelope, post


def canary(kind: str) -> str:
    return f"canary{kind}{pysecrets.token_hex(8)}"


def leaks(canaries: dict[str, str], places: dict[str, bytes]) -> list[str]:
    """Every (canary, place) pair where a canary shows up, raw or percent-encoded."""
    found = []
    for name, value in canaries.items():
        forms = {value.encode(), phpform.encode({"x": value})[2:].encode(),
                 formcodec.encode({"x": value})[2:].encode()}
        for place, data in places.items():
            if any(form in data for form in forms):
                found.append(f"{name} in {place}")
    return found


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- webhook mode, the headless app as a process ------------------------------------------------------
@pytest.fixture
def canary_sim():
    sim = PortalSimulator(webhook_secret=canary("hook"), application_token=canary("token"))
    sim.start(host="127.0.0.1", port=0)
    yield sim
    sim.stop()


def test_no_secret_leaves_the_headless_app(tmp_path, canary_sim):
    sim = canary_sim
    db_password = canary("dbpw")
    dead_pg = f"postgresql+psycopg://postgres:{db_password}@127.0.0.1:{free_port()}/test"
    canaries = {"webhook secret": sim.webhook_secret, "webhook URL": sim.webhook_url,
                "application token": sim.application_token, "database password": db_password}
    # secrets come from the environment, so the config file holds none
    app = HeadlessApp(tmp_path / "app", sim, portal__webhook_url="", portal__application_token="",
                      sync__debounce_seconds=0.1)
    env = {"DEAL_MONITOR_WEBHOOK_URL": sim.webhook_url,
           "DEAL_MONITOR_APPLICATION_TOKEN": sim.application_token}
    sim.add_outgoing_webhook(app.events_url)
    outputs: dict[str, bytes] = {}
    app.start(env=env)
    try:
        ok = sim.portal.add_deal({"TITLE": "good", "STAGE_ID": "EXECUTING"})
        wait_for(lambda: row_matches(_rows(app).get(ok), sim.portal.get_deal(ok)))
        # forged and malformed posts that carry the real token in their body
        forged = [
            envelope(sim, ok, member_id="0" * 32),                          # 403
            envelope(sim, ok, domain="evil.example"),                       # 403
            envelope(sim, "1x"),                                            # 400
            envelope(sim, ok) + b"&auth%5Bapplication_token%5D=" + sim.application_token.encode(),
            envelope(sim, ok, application_token=sim.application_token[:-1]),  # 401
            envelope(sim, ok) + b"&x=%ZZ",                                  # 400
        ]
        for number, body in enumerate(forged):
            reply = post(app.events_url, body)
            assert reply.status_code in (400, 401, 403)
            outputs[f"reply {number}"] = reply.content
        # REST failures whose exceptions name the URL (and so the secret path)
        sim.faults.drop_next(1)
        sim.faults.fail_next(1, status=502, html=True)
        sim.faults.truncate_next(1)
        broken = sim.portal.add_deal({"TITLE": "through failures", "STAGE_ID": "WON"})
        wait_for(lambda: sim.faults.pending == 0, timeout=30)
        outputs["healthz during failures"] = requests.get(
            f"http://127.0.0.1:{app.port}/healthz", timeout=5).content
        wait_for(lambda: row_matches(_rows(app).get(broken), sim.portal.get_deal(broken)), timeout=60)
        # crash and restart
        for n in range(20):
            sim.portal.add_deal({"TITLE": f"burst {n}", "STAGE_ID": "EXECUTING"})
        app.stop(kill=True)
        app.start(env=env)
        outputs["healthz after restart"] = requests.get(
            f"http://127.0.0.1:{app.port}/healthz", timeout=5).content
        outputs["status command"] = subprocess.run(
            [sys.executable, "-m", "deal_monitor", "--config", str(app.config_path), "status"],
            cwd=ROOT, capture_output=True, timeout=60, env={**env, "PATH": ""}).stdout
    finally:
        if app.proc is not None:
            app.stop()
    # the Test buttons: their texts are shown in the UI
    dead = sim.webhook_url.replace(f":{sim.port}/", f":{free_port()}/")
    outputs["webhook test text"] = check_webhook_url(dead).encode()
    outputs["target test text"] = check_target_url(dead_pg).encode()
    assert outputs["webhook test text"] and outputs["target test text"]  # they did fail
    places = {f"data/{k}": v for k, v in files_under(app.workdir / "data").items()}
    places["console (stdout+stderr)"] = app.log_path.read_bytes()
    places["config file"] = app.config_path.read_bytes()
    places.update(outputs)
    assert any(name.startswith("data/logs/") for name in places), "no log file was written"
    assert leaks(canaries, places) == []


def _rows(app: HeadlessApp) -> dict:
    path = app.workdir / "data" / "target.db"
    return target_table(f"sqlite:///{path}") if path.exists() else {}


def test_unreachable_portal_errors_are_logged_without_the_secret(tmp_path, canary_sim, running,
                                                                 capfd, clean_logging):
    """"Connection refused" texts name the full URL, secret path included: the worker's log
    line, /healthz and the status must carry it masked."""
    sim = canary_sim
    logs.setup(tmp_path / "data" / "logs", level=logging.DEBUG, console=True)
    monitor = running(settings_for(sim, tmp_path, sync={"debounce_seconds": 0.05}))
    wait_for(lambda: monitor.scheduler.runs >= 1)
    monitor.client.max_retries = 0  # fail the call at once instead of after ~15 s of retries
    deal = sim.portal.add_deal({"TITLE": "portal away", "STAGE_ID": "WON"})
    body = envelope(sim, deal)
    url = f"http://127.0.0.1:{monitor.listener.port}"
    port = sim.port
    sim.stop()
    try:
        assert post(f"{url}/bitrix24/events", body).status_code == 200
        wait_for(lambda: "NETWORK_ERROR" in monitor.health()["last_error"], timeout=10)
        health = requests.get(f"{url}/healthz", timeout=5).content
        assert b"Max retries exceeded with url" in health  # the text that names the URL
    finally:
        sim.start(host="127.0.0.1", port=port)
    monitor.stop()
    captured = capfd.readouterr()
    places = {f"data/{k}": v for k, v in files_under(tmp_path / "data").items()}
    places.update({"stdout": captured.out.encode(), "stderr": captured.err.encode(),
                   "healthz": health})
    canaries = {"webhook secret": sim.webhook_secret, "application token": sim.application_token}
    assert leaks(canaries, places) == []


# -- app mode (OAuth), in-process so the tokens can be followed -----------------------------------------
def test_no_oauth_secret_or_token_leaves_the_app(tmp_path, canary_sim, running, capfd, clean_logging):
    sim = canary_sim
    client_secret = canary("client")
    sim.register_app("local.canary", client_secret)
    log_dir = tmp_path / "data" / "logs"
    logs.setup(log_dir, level=logging.DEBUG, console=True)
    store_ = MemoryStore({"client_secret": client_secret})
    settings = settings_for(sim, tmp_path, webhook=False, sync={"debounce_seconds": 0.05},
                            portal={"client_id": "local.canary", "portal_url": sim.url,
                                    "oauth_server": sim.url, "application_token": "",
                                    "allow_private_http": True})
    monitor = running(settings, secrets=store_)
    url = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
    texts: dict[str, bytes] = {}
    issued: set[str] = set()

    def note_tokens() -> None:  # refresh tokens rotate away at the portal: keep them all
        issued.update(sim.oauth._access, sim.oauth._refresh)

    sim.install_app(url)  # ONAPPINSTALL: tokens and the application token in the body
    assert sim.wait_deliveries(10)
    wait_for(lambda: monitor.has_credentials(), timeout=10)
    note_tokens()
    deal = sim.portal.add_deal({"TITLE": "oauth", "STAGE_ID": "EXECUTING"})
    assert post(url, envelope(sim, deal)).status_code == 200
    wait_for(lambda: deal in live_ids(*monitor_target(monitor)), timeout=10)
    sim.expire_access_tokens()  # refresh with the client secret in the request
    monitor.resync([deal])
    wait_for(lambda: sim.stats.token_refreshes >= 1, timeout=10)
    wait_for(lambda: monitor.status().inbox_depth == 0, timeout=10)
    note_tokens()
    texts["test_portal after refresh"] = monitor.test_portal().encode()
    # token endpoint broken, then refusing: exception texts and the alert
    sim.faults.drop_next(1, method="oauth.token")
    sim.expire_access_tokens()
    texts["test_portal, token endpoint down"] = monitor.test_portal().encode()
    sim.faults.fail_next(1, status=401, method="oauth.token",
                         body={"error": "invalid_grant", "error_description": "Invalid grant"})
    texts["test_portal, refresh refused"] = monitor.test_portal().encode()
    wait_for(lambda: monitor.status().auth_state == "reauthorize", timeout=10)
    texts["healthz"] = requests.get(url.replace("/bitrix24/events", "/healthz"), timeout=5).content
    # a forged install with the real application token but made-up tokens
    forged = formcodec.encode({"event": "ONAPPINSTALL", "auth": {
        "access_token": canary("forgedaccess"), "refresh_token": canary("forgedrefresh"),
        "application_token": sim.application_token, "member_id": sim.member_id}})
    texts["forged install reply"] = requests.post(url, data=forged, headers=FORM, timeout=5).content
    monitor.stop()
    captured = capfd.readouterr()
    note_tokens()
    canaries = {"client secret": client_secret, "application token": sim.application_token}
    canaries.update({f"token {t[:6]}": t for t in issued})
    assert len(issued) >= 4
    places = {f"data/{k}": v for k, v in files_under(tmp_path / "data").items()}
    places["stdout"] = captured.out.encode()
    places["stderr"] = captured.err.encode()
    places.update(texts)
    assert any(name.startswith("data/logs/") for name in places)
    assert leaks(canaries, places) == []


# -- the redaction filter itself -----------------------------------------------------------------------
@pytest.mark.parametrize("template", [
    "POST http://127.0.0.1:1/rest/7/{s}/crm.deal.get.json failed",
    "HTTPConnectionPool(host='x', port=1): Max retries exceeded with url: /rest/7/{s}/batch.json",
    "body: event=X&auth%5Bapplication_token%5D={s}&ts=1",
    "body: event=X&auth[access_token]={s}&ts=1",
    '{{"access_token": "{s}", "refresh_token": "{s}"}}',
    "client_secret={s}&grant_type=refresh_token",
])
def test_redaction_patterns_catch_unregistered_secrets(template, clean_logging, tmp_path):
    """Even a secret the registry never heard of is masked by shape."""
    value = canary("unregistered")
    logs.setup(tmp_path / "logs", console=False)
    logging.getLogger("deal_monitor.test").warning(template.format(s=value))
    try:
        raise RuntimeError(template.format(s=value))
    except RuntimeError:
        logging.getLogger("deal_monitor.test").exception("failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "logs" / "deal-monitor.log").read_text(encoding="utf-8")
    assert "***" in text and value not in text


# -- keyring policy (promise 27) -------------------------------------------------------------------------
def _backend(module: str, name: str) -> KeyringBackend:
    cls = type(name, (KeyringBackend,), {
        "priority": 1, "get_password": lambda *a: None, "set_password": lambda *a: None,
        "delete_password": lambda *a: None, "__module__": module})
    return cls()


@pytest.mark.parametrize(("module", "name", "usable"), [
    ("keyring.backends.fail", "Keyring", False),
    ("keyring.backends.null", "Keyring", False),
    ("keyrings.alt.file", "PlaintextKeyring", False),
    ("keyrings.alt.file", "EncryptedKeyring", False),
    ("keyring.backends.SecretService", "Keyring", True),
    ("keyring.backends.Windows", "WinVaultKeyring", True),
])
def test_only_allow_listed_keyrings_may_hold_secrets(monkeypatch, module, name, usable):
    monkeypatch.setattr(keyring, "get_keyring", lambda: _backend(module, name))
    assert store.keyring_status()[0] is usable
    if not usable:
        with pytest.raises(SecretStoreUnavailable):
            store.KeyringStore()


def test_chained_keyrings_count_only_when_every_member_is_secure(monkeypatch):
    empty = chainer.ChainerBackend.__new__(chainer.ChainerBackend)
    monkeypatch.setattr(chainer.ChainerBackend, "backends", property(lambda self: self._members))
    empty._members = []
    mixed = chainer.ChainerBackend.__new__(chainer.ChainerBackend)
    mixed._members = [_backend("keyring.backends.SecretService", "Keyring"),
                      _backend("keyrings.alt.file", "PlaintextKeyring")]
    secure = chainer.ChainerBackend.__new__(chainer.ChainerBackend)
    secure._members = [_backend("keyring.backends.SecretService", "Keyring")]
    for backend, usable in ((empty, False), (mixed, False), (secure, True)):
        monkeypatch.setattr(keyring, "get_keyring", lambda b=backend: b)
        assert store.keyring_status()[0] is usable


def test_locked_keyring_is_reported_not_fatal(monkeypatch, tmp_path, sim, running):
    """A secure backend that answers ``KeyringLocked``: the store says "unavailable" at once
    and the monitor still starts, listens and refuses events it cannot verify."""
    from keyring.errors import KeyringLocked

    def locked(*_args):
        raise KeyringLocked("Failed to unlock the collection")

    backend = _backend("keyring.backends.SecretService", "Keyring")
    backend.get_password = locked
    backend.set_password = locked
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    monkeypatch.setattr(keyring, "get_password", locked)
    secrets_store = store.KeyringStore(timeout=5.0)
    started = time.monotonic()
    with pytest.raises(SecretStoreUnavailable):
        secrets_store.get("webhook_url")
    # hang detector: a refusal takes ~1 ms; 2.5 s is far over 10x that, and half the 5 s limit
    # a store that waited instead of failing at once would show
    assert time.monotonic() - started < 2.5
    settings = settings_for(sim, tmp_path, webhook=False, portal={"application_token": ""})
    monitor = running(settings, secrets=secrets_store)
    url = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
    assert post(url, envelope(sim, 1)).status_code == 401
    assert monitor.health()["auth_state"] == "no_credentials"


def test_keyring_calls_have_a_five_second_limit():
    assert inspect.signature(store.KeyringStore).parameters["timeout"].default == 5.0


SESSION_STORE_SCRIPT = (
    "import json\n"
    "from deal_monitor.cli import _secret_store\n"
    "s = _secret_store()\n"
    "s.set('webhook_url', 'kept-in-memory-only')\n"
    "print(json.dumps({'store': type(s).__name__, 'got': s.get('webhook_url')}))\n"
)


def test_no_plaintext_fallback_when_the_keyring_fails(tmp_path):
    """With keyring's fail backend the headless app keeps secrets in memory only: nothing
    secret-shaped is written to the data or config folders."""
    result = subprocess.run([sys.executable, "-c", SESSION_STORE_SCRIPT], cwd=ROOT, capture_output=True, timeout=60,
                            env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
                                 "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg"),
                                 "XDG_CONFIG_HOME": str(tmp_path / "xdgc"), "PATH": ""})
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == {"store": "MemoryStore", "got": "kept-in-memory-only"}
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"kept-in-memory-only" not in written


def test_secrets_registered_late_are_still_masked(clean_logging, tmp_path):
    """A secret learned at run time (e.g. from ONAPPINSTALL) is masked from then on."""
    value = canary("late")
    logs.setup(tmp_path / "logs", console=False)
    MemoryStore().set("application_token", value)
    logging.getLogger("deal_monitor.test").warning("saw %s in a place without a pattern", value)
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert value not in (tmp_path / "logs" / "deal-monitor.log").read_text(encoding="utf-8")
