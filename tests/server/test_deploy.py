"""deploy/: what can be checked on this machine (systemd-analyze, hadolint, nginx, the files'
own structure). Tools that are missing skip their test and say so."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET

import pytest
import requests

from deal_monitor import config
from tests.e2e.harness import ROOT, free_port, wait_for

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "deal-monitor.service"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def _unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_unit_is_hardened_and_stops_with_sigterm():
    unit = _unit_settings()
    assert unit["User"] == ["deal-monitor"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"] and unit["ReadWritePaths"] == ["/var/lib/deal-monitor"]
    assert unit["Restart"] == ["on-failure"] and unit["KillSignal"] == ["SIGTERM"]
    assert "--headless" in unit["ExecStart"][0] and "--no-log-file" in unit["ExecStart"][0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    # the unit names the venv's entry point, which does not exist here: verify a copy that
    # starts /usr/bin/true instead (everything else byte for byte the same)
    text = UNIT.read_text(encoding="utf-8")
    assert text.count("/opt/deal-monitor/venv/bin/deal-monitor") == 1
    copy = tmp_path / "deal-monitor.service"
    copy.write_text(text.replace("/opt/deal-monitor/venv/bin/deal-monitor", "/usr/bin/true"),
                    encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deal-monitor.service" not in result.stdout + result.stderr  # no warnings about it


def test_dockerfile_runs_as_non_root_with_a_readiness_check():
    text = DOCKERFILE.read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", text, re.M)
    assert re.search(r'^VOLUME \["/config", "/data"\]', text, re.M)
    assert "--headless" in re.search(r"^ENTRYPOINT (.*)$", text, re.M).group(1)


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_dockerfile_passes_hadolint():
    result = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_winsw_recipe_stops_with_ctrl_c_and_a_timeout():
    root = ET.parse(DEPLOY / "windows" / "deal-monitor.xml").getroot()
    assert root.tag == "service"
    assert "--headless" in root.findtext("arguments")
    assert root.findtext("stoptimeout") == "30 sec"
    assert root.find("onfailure").get("action") == "restart"


def test_example_config_loads():
    settings = config.load(DEPLOY / "deal-monitor.example.toml", env={})
    assert settings.listener.trusted_proxy == "127.0.0.1"
    assert settings.storage.keep_days == 30


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed")
def test_nginx_snippet_passes_only_the_event_path(make_app, sim, tmp_path):
    app = make_app(hook=False, listener__trusted_proxy="127.0.0.1").start()
    port = free_port()
    server = (DEPLOY / "nginx" / "deal-monitor.conf").read_text(encoding="utf-8")
    # the same server block on plain HTTP and the test's ports (no certificate here)
    server = server.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    server = re.sub(r"^\s*ssl_\S+ .*$", "", server, flags=re.M)
    server = server.replace("127.0.0.1:8765", f"127.0.0.1:{app.port}")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; client_body_temp_path {tmp_path}/body;\n"
        f"proxy_temp_path {tmp_path}/proxy;\n{server}\n}}\n", encoding="utf-8")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                return requests.get(base + "/", timeout=1).status_code == 404
            except requests.ConnectionError:
                return False

        wait_for(up, timeout=15)
        for path in ("/metrics", "/healthz", "/livez", "/readyz", "/"):
            assert requests.get(base + path, timeout=5).status_code == 404, path
        assert requests.get(base + "/bitrix24/events", timeout=5).status_code == 403
        # the portal's events through the proxy are taken and stored
        sim.add_outgoing_webhook(base + "/bitrix24/events")
        deal_id = sim.portal.add_deal({"TITLE": "via nginx", "STAGE_ID": "PREPARATION"})
        assert sim.wait_deliveries(10)
        assert [d.status for d in sim.deliveries] == [200]
        wait_for(lambda: deal_id in app.target_rows(), timeout=15)
        # on loopback, directly, metrics still answer
        assert requests.get(f"http://127.0.0.1:{app.port}/metrics", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(15)
