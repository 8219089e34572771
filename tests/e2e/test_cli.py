"""Admin commands as a user types them: status, resync, preview, bind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.e2e.harness import ROOT, HeadlessApp


def run(app: HeadlessApp, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return subprocess.run(
        [sys.executable, "-m", "deal_monitor", "--config", str(app.config_path), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_resync_all_with_progress_then_status(make_app, sim):
    sim.portal.bulk_add(700, STAGE_ID="EXECUTING")
    app = make_app(hook=False)
    result = run(app, "resync", "--all", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "700/700 deals listed" in result.stdout and "resync finished" in result.stdout
    assert len(app.target_rows()) == 700
    status = run(app, "status")
    assert status.returncode == 0
    report = json.loads(status.stdout)
    assert report["inbox_depth"] == 0 and report["deals"] == 700


def test_resync_ids_queues_for_a_running_instance(make_app, sim):
    deal_id = sim.portal.add_deal({"TITLE": "до", "STAGE_ID": "WON"})
    app = make_app(hook=False)
    result = run(app, "resync", str(deal_id))
    assert result.returncode == 0 and "queued 1" in result.stdout
    app.start()  # the instance finds the queued row and syncs it
    from tests.e2e.harness import wait_for

    wait_for(lambda: deal_id in app.target_rows())


def test_preview_prints_the_row_without_writing(make_app, sim):
    deal_id = sim.portal.add_deal({"TITLE": "Комод", "STAGE_ID": "PREPARATION", "OPPORTUNITY": "12.30"})
    app = make_app(hook=False)
    result = run(app, "preview", str(deal_id))
    assert result.returncode == 0, result.stderr
    assert f"deal {deal_id} -> table deal: insert" in result.stdout
    assert "title: Комод" in result.stdout and "amount: 12.30" in result.stdout
    assert app.target_rows() == {}


def test_bind_in_webhook_mode_explains_the_outgoing_webhook(make_app):
    app = make_app(hook=False)
    result = run(app, "bind")
    assert result.returncode == 2
    assert "Outgoing webhook" in result.stdout and "WRONG_AUTH_TYPE" in result.stdout


def test_bad_config_exits_with_one_line_naming_the_key(tmp_path):
    config_file = tmp_path / "bad.toml"
    config_file.write_text('[portal]\nplan = "gold"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "main.py", "--headless", "--config", str(config_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: config key portal.plan: must be one of standard, enterprise"]


def test_preview_next_shows_the_queued_deals_and_takes_nothing_from_the_inbox(make_app, sim):
    first = sim.portal.add_deal({"TITLE": "Стол", "STAGE_ID": "PREPARATION"})
    second = sim.portal.add_deal({"TITLE": "Черновик", "STAGE_ID": "NEW"})
    app = make_app(hook=False)
    assert run(app, "resync", str(first), str(second)).returncode == 0
    result = run(app, "preview", "--next", "5")
    assert result.returncode == 0, result.stderr
    assert f"deal {first} -> table deal: insert (a new row)" in result.stdout
    assert f"deal {second} -> table deal: skip: the stage is filtered out" in result.stdout
    assert app.target_rows() == {}
    assert sorted(row["deal_id"] for row in app.inbox() if row["status"] == "queued") == [first, second]


def test_preview_without_ids_or_next_is_a_usage_error(make_app):
    app = make_app(hook=False)
    result = run(app, "preview")
    assert result.returncode == 2 and "deal IDs or --next" in result.stderr
