"""One instance per data folder: headless, admin commands that run a worker, the state DB's
own folder; enqueue-only commands next to a running instance; CLI options and --version."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.e2e.harness import ROOT, HeadlessApp, wait_for


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return subprocess.run([sys.executable, "-m", "deal_monitor", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_second_instance_refused_while_enqueue_commands_work_beside_it(make_app, sim):
    app = make_app(hook=False).start()
    data = str(app.workdir / "data")
    config = str(app.config_path)

    # a second headless and the admin commands that run a worker are refused, in one line
    for args in (["--headless", "--config", config], ["resync", "--all", "--config", config],
                 ["handlers", "--config", config]):
        result = cli(*args)
        assert result.returncode == 4, (args, result.stderr)
        lines = error_lines(result)
        assert len(lines) == 1 and "already running on the data folder" in lines[0], lines
        assert data in lines[0] and f"process {app.proc.pid}" in lines[0]

    # status and resync <id> only read / add inbox rows: they work, with the options after
    # the subcommand, and the running instance syncs what was queued
    deal_id = sim.portal.add_deal({"TITLE": "Queued from the command line", "STAGE_ID": "WON"})
    queued = cli("resync", str(deal_id), "--config", config)
    assert queued.returncode == 0, queued.stderr
    wait_for(lambda: app.target_rows().get(deal_id, {}).get("title")
             == sim.portal.get_deal(deal_id)["TITLE"])
    status = cli("status", "--config", config, "-v")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["deals"] == 1
    assert app.stop() == 0


def test_admin_commands_log_to_the_console_only(make_app, sim):
    # the log file belongs to the long-running instance (it rotates it): a command beside it
    # must not open, let alone rotate, the same file
    app = make_app(hook=False)
    result = cli("status", "--config", str(app.config_path), "--verbose")
    assert result.returncode == 0, result.stderr
    assert (app.workdir / "data" / "state.db").exists()
    assert not (app.workdir / "data" / "logs").exists()


def test_a_sqlite_state_db_outside_the_data_folder_is_locked_too(tmp_path, sim):
    shared = tmp_path / "shared"
    shared.mkdir()
    state_url = "sqlite:///" + (shared / "state.db").as_posix()
    first = HeadlessApp(tmp_path / "one", sim, storage__state_url=state_url).start()
    second = HeadlessApp(tmp_path / "two", sim, storage__state_url=state_url)
    result = cli("--headless", "--config", str(second.config_path))
    assert result.returncode == 4
    assert f"already running on the data folder {shared}" in result.stderr
    assert first.stop() == 0
    # once the first has stopped the lock is free again
    assert second.start().stop() == 0


def test_version_option_names_the_project_version():
    from tests.core.test_version import declared_version

    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"deal-monitor {declared_version()}"
