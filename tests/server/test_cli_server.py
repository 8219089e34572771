"""Server-side CLI: JSON logs without a log file, refusing to start without credentials, and
``backup`` while an instance writes."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from deal_monitor import config, logs
from deal_monitor.config import from_mapping
from tests.e2e.harness import ROOT, free_port, wait_for

KEYS = {"time", "level", "logger", "thread", "message"}


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
           "PYTHONPATH": str(ROOT)}
    env.pop("DEAL_MONITOR_WEBHOOK_URL", None)
    env.pop("DEAL_MONITOR_APPLICATION_TOKEN", None)
    return {**env, **extra}


def _cli(*args, timeout: float = 60, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deal_monitor", *args], cwd=ROOT,
                          env=_env(**env), capture_output=True, text=True, timeout=timeout)


def test_json_log_lines_parse_and_no_log_file_is_written(make_app, sim):
    app = make_app()
    out = app.workdir / "out.log"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deal_monitor", "--headless", "--config", str(app.config_path),
             "--log-format", "json", "--no-log-file", "-v"],
            cwd=ROOT, env=_env(), stdout=sink, stderr=subprocess.STDOUT)
        app.proc = proc
        try:
            wait_for(app._healthy, timeout=30)
            deal_id = sim.portal.add_deal({"TITLE": "json", "STAGE_ID": "PREPARATION"})
            wait_for(lambda: deal_id in app.target_rows(), timeout=20)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            app.proc = None
            if proc.poll() is None:
                proc.kill()
    lines = [line for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert entries and all(set(e) >= KEYS for e in entries)
    assert any(e["message"].startswith("ready") for e in entries)
    assert any(e.get("deal_id") == deal_id for e in entries)
    assert {e["level"] for e in entries} <= {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    secret = sim.webhook_url.rstrip("/").rsplit("/", 1)[1]
    assert secret not in out.read_text(encoding="utf-8")
    assert not (app.workdir / "data" / "logs" / "deal-monitor.log").exists()


def test_json_logs_are_redacted_too(capsys):
    try:
        logs.setup(None, fmt="json")
        logs.secrets.add("Sup3rS3cretValue")
        log = logging.getLogger("deal_monitor.test_json")
        try:
            raise RuntimeError("token Sup3rS3cretValue was refused")
        except RuntimeError:
            log.exception("call with %s failed for deal %d", "Sup3rS3cretValue", 77)
        log.info("auth[application_token]=abcdefgh12345&x=1", extra={"deal_id": 5})
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_deal_monitor", False)]:
            root.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Sup3rS3cretValue" not in err and "abcdefgh12345" not in err
    first, second = (json.loads(line) for line in err.splitlines())
    assert first["deal_id"] == 77 and first["level"] == "ERROR"
    assert "RuntimeError: token *** was refused" in first["exception"]
    assert first["message"] == "call with *** failed for deal 77"
    assert second["deal_id"] == 5


def _no_credentials_config(tmp_path):
    settings = from_mapping({"listener": {"port": free_port()},
                             "storage": {"data_dir": str(tmp_path / "data")}}, env={})
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(settings), encoding="utf-8")
    return path, settings.listener.port


def test_headless_without_credentials_refuses_to_start(tmp_path):
    path, _ = _no_credentials_config(tmp_path)
    result = _cli("--headless", "--config", str(path))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # one line says why (a log line before it may say the keyring is missing)
    assert len(errors) == 1 and errors[0].startswith("error: no usable portal credentials")
    assert result.stderr.rstrip().endswith(errors[0]) and "Traceback" not in result.stderr
    assert "ready" not in result.stderr


def test_headless_with_a_webhook_alone_starts_in_pull_mode(tmp_path, sim):
    """An inbound webhook alone is a complete configuration (pull mode, issue 12): the
    instance starts, says pushed events are refused, and refuses them."""
    import requests

    settings = from_mapping({"portal": {"webhook_url": sim.webhook_url},
                             "listener": {"port": free_port()},
                             "storage": {"data_dir": str(tmp_path / "data")}}, env={})
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(settings), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deal_monitor", "--headless", "--config", str(path)], cwd=ROOT,
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    port = settings.listener.port

    def refused() -> int:
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            return requests.post(f"http://127.0.0.1:{port}/bitrix24/events", data=b"event=X",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"},
                                 timeout=2).status_code
        except requests.ConnectionError:
            return 0

    try:
        assert wait_for(refused, timeout=60) == 401
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()
    assert "no application token: pushed events are refused" in output


def _wait_ready_then_stop(proc, port):
    import requests

    def up():
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            return requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).ok
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_wait_for_credentials_starts_anyway(tmp_path):
    path, port = _no_credentials_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deal_monitor", "--headless", "--config", str(path),
         "--wait-for-credentials"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    _wait_ready_then_stop(proc, port)


def test_config_path_from_the_environment(tmp_path):
    path, _ = _no_credentials_config(tmp_path)
    result = _cli("status", DEAL_MONITOR_CONFIG=str(path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "state.db").exists()  # the file's data_dir was used


def test_backup_while_an_instance_writes(make_app, sim):
    app = make_app().start()
    stop = threading.Event()
    made: list[int] = []

    def storm():
        while not stop.is_set():
            made.append(sim.portal.add_deal({"TITLE": f"b{len(made)}", "STAGE_ID": "PREPARATION"}))
            time.sleep(0.01)

    writer = threading.Thread(target=storm, daemon=True)
    writer.start()
    copies = []
    try:
        wait_for(lambda: len(app.inbox()) >= 20, timeout=30)
        for n in range(3):
            target = app.workdir / f"copy{n}.db"
            result = _cli("--config", str(app.config_path), "backup", str(target))
            assert result.returncode == 0, result.stderr
            copies.append(target)
    finally:
        stop.set()
        writer.join(10)
    live = len(app.inbox())
    assert app.stop() == 0
    counts = []
    for copy in copies:
        assert not copy.with_name(copy.name + ".partial").exists()
        with sqlite3.connect(copy) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            counts.append(conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])
            # each event row is whole: the columns a reader needs are there
            assert conn.execute("SELECT COUNT(*) FROM inbox WHERE event IS NULL").fetchone()[0] == 0
    assert 20 <= counts[0] <= counts[1] <= counts[2] <= live
    assert counts[2] > counts[0], "the instance kept writing between the copies"


def test_backup_refuses_a_postgresql_state_db(tmp_path):
    from deal_monitor.backup import backup_state
    from deal_monitor.errors import DealMonitorError

    with pytest.raises(DealMonitorError, match="SQLite"):
        backup_state("postgresql+psycopg://postgres@127.0.0.1/x", tmp_path / "b.db")
    assert not (tmp_path / "b.db").exists()
