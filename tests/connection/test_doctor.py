"""The connection doctor: `check` exit codes, app-mode lines, and target checks that never
write (reflection and the databases' own privilege answers, with real PostgreSQL/MariaDB)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from deal_monitor import doctor
from deal_monitor.config import from_mapping, to_toml
from deal_monitor.credentials import MemoryStore
from deal_monitor.service import Monitor
from tests.conftest import MYSQL_URL, PG_URL, _server_or_skip
from tests.e2e.harness import ROOT

from .test_offline_app import CLIENT_ID, _monitor


def _check(tmp_path, sections: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "check.toml"
    sections = {**sections, "storage": {"data_dir": str(tmp_path / "data")}}
    path.write_text(to_toml(from_mapping(sections, env={})), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEAL_MONITOR_")}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return subprocess.run([sys.executable, "main.py", "--config", str(path), "check"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_check_pull_mode_all_fine_creates_nothing(sim, tmp_path):
    done = _check(tmp_path, {"portal": {"webhook_url": sim.webhook_url},
                             "listener": {"port": 0}})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ok] Settings are valid (pull mode" in done.stdout
    assert "[ok] CRM access is granted" in done.stdout
    assert "The change poll has not run yet (every 10 s)" in done.stdout
    assert "table deal does not exist yet and will be created" in done.stdout
    assert not (tmp_path / "data" / "target.db").exists()
    assert not (tmp_path / "data" / "state.db").exists()
    assert sim.webhook_secret not in done.stdout + done.stderr


def test_check_finds_a_refused_webhook_and_exits_1(sim, tmp_path):
    wrong = sim.webhook_url.replace(sim.webhook_secret, "wrongsecret")
    done = _check(tmp_path, {"portal": {"webhook_url": wrong}, "listener": {"port": 0}})
    assert done.returncode == 1
    line = next(x for x in done.stdout.splitlines() if x.startswith("[XX]"))
    assert "refused the credentials" in line and "->" in line
    assert "wrongsecret" not in done.stdout + done.stderr


def test_check_an_app_that_is_not_signed_in(sim, tmp_path):
    sim.register_app(CLIENT_ID, "x")
    done = _check(tmp_path, {"portal": {"client_id": CLIENT_ID, "portal_url": sim.url,
                                        "oauth_server": sim.url, "client_secret": "x",
                                        "allow_private_http": True}})
    assert done.returncode == 1
    assert "[XX] Not signed in to the portal" in done.stdout
    assert "authorize" in done.stdout
    assert "refused the credentials" not in done.stdout  # one problem, said once


def test_check_finds_the_listener_port_taken(sim, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _check(tmp_path, {"portal": {"webhook_url": sim.webhook_url},
                                 "listener": {"port": port}})
    assert done.returncode == 1
    assert f"[XX] The event listener cannot use 127.0.0.1:{port}" in done.stdout


def test_doctor_on_a_running_app_with_offline_events(running, sim, tmp_path):
    monitor = _monitor(running, sim, tmp_path)
    codes = {f.code: f for f in monitor.diagnose()}
    assert codes["handlers.offline_missing"].level == doctor.PROBLEM
    assert doctor.exit_code(list(codes.values())) == 1
    assert codes["auth.signed_in"].params["storage"] == "tokens kept in memory for this session only"
    monitor.bind_handlers(offline=True)
    monitor._stop_pull_sources()  # keep the queue still while it is counted
    for n in range(3):
        sim.portal.add_deal({"TITLE": f"q{n}", "STAGE_ID": "PREPARATION"})
    seen = []
    findings = monitor.diagnose(seen.append)
    assert seen == findings
    codes = {f.code: f for f in findings}
    assert "handlers.offline_ok" in codes
    assert codes["offline.queue"].params["count"] == str(len(sim.offline)) == "3"
    assert codes["event_test.ok"].level == doctor.OK
    assert doctor.exit_code(findings) == 0, [f.line() for f in findings]


def _role(url: str) -> tuple[str, str]:
    """A login role with no privileges on the test database; returns its URL and name."""
    name = f"dm_ro_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        if url.startswith("postgresql"):
            conn.execute(text(f"CREATE ROLE {name} LOGIN"))
        else:
            conn.execute(text(f"CREATE USER '{name}'@'%'"))
            conn.execute(text(f"GRANT SELECT ON test.* TO '{name}'@'%'"))
    admin.dispose()
    return make_url(url).set(username=name).render_as_string(hide_password=False), name


def _drop_role(url: str, name: str) -> None:
    admin = create_engine(url)
    with admin.begin() as conn:
        if url.startswith("postgresql"):
            conn.execute(text(f"DROP OWNED BY {name}"))
            conn.execute(text(f"DROP ROLE {name}"))
        else:
            conn.execute(text(f"DROP USER '{name}'@'%'"))
    admin.dispose()


@pytest.mark.parametrize("server", [PG_URL, MYSQL_URL], ids=["postgresql", "mysql"])
def test_target_checks_read_privileges_and_never_write(sim, tmp_path, table_name, server):
    _server_or_skip(server)

    def finding(url: str, preset: str = "default") -> doctor.Finding:
        settings = from_mapping({"portal": {"webhook_url": sim.webhook_url},
                                 "target": {"url": url, "table": table_name},
                                 "mapping": {"preset": preset},
                                 "storage": {"data_dir": str(tmp_path / "data")}}, env={})
        return doctor.inspect_target(Monitor(settings, secrets=MemoryStore()))

    def exists() -> bool:
        engine = create_engine(server)
        try:
            return inspect(engine).has_table(table_name)
        finally:
            engine.dispose()

    assert finding(server).code == "target.will_create"
    assert finding(server, preset="seed").code == "target.no_table"
    assert not exists()  # looking created nothing
    engine = create_engine(server)
    with engine.begin() as conn:
        conn.execute(text(
            f"CREATE TABLE {table_name} (bitrix_id BIGINT PRIMARY KEY, title VARCHAR(255), "
            "stage_id VARCHAR(50), category_id INTEGER, amount NUMERIC(18,2), "
            "currency_id VARCHAR(3), close_date DATE, comments TEXT, date_modify TIMESTAMP NULL, "
            "deleted BOOLEAN, synced_at TIMESTAMP NULL)"))
    engine.dispose()
    assert finding(server).code == "target.ok"
    url, role = _role(server)
    try:
        read_only = finding(url)
        assert read_only.code == "target.read_only" and read_only.level == doctor.PROBLEM
        assert "INSERT" in read_only.params["missing"]
        assert "UPDATE" in read_only.params["missing"]
    finally:
        _drop_role(server, role)
