"""Start/stop leaves nothing behind; the CLI starts, answers and exits."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from deal_monitor.simulator import PortalSimulator

from .conftest import Receiver

REPO = Path(__file__).resolve().parents[2]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_start_stop_releases_threads_and_sockets(receiver: Receiver) -> None:
    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = _open_fds()
    for _ in range(5):
        sim = PortalSimulator(rate_limit=False).start()
        port = sim.port
        sim.add_outgoing_webhook(receiver.url)
        sim.portal.add_deal({})
        assert requests.get(sim.webhook_url + "crm.deal.list", timeout=5).status_code == 200
        sim.start_activity(interval=0.05, seed=1)
        assert sim.wait_deliveries(5)
        sim.stop()
        with socket.socket() as probe:  # the port is free again
            probe.bind(("127.0.0.1", port))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        leftover = [t for t in threading.enumerate()
                    if t.ident not in threads_before and t.name.startswith(("b24sim", "waitress"))]
        if not leftover:
            break
        time.sleep(0.05)
    assert leftover == []
    assert _open_fds() <= fds_before + 2


def test_context_manager_and_stop_twice() -> None:
    with PortalSimulator() as sim:
        url = sim.url
        assert requests.get(url + "/", timeout=5).status_code == 200
    sim.stop()
    try:
        requests.get(url + "/", timeout=1)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("server still answering after stop()")


def test_cli_starts_answers_and_stops() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "deal_monitor.simulator", "--port", "0", "--deals", "7", "--demo",
         "--interval", "0.2", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        lines = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(lines) < 5:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
        text = "\n".join(lines)
        webhook = re.search(r"Inbound webhook URL: (\S+)", text)
        token = re.search(r"Application token: (\w+)", text)
        assert webhook and token, text
        body = requests.get(webhook.group(1) + "crm.deal.list", params={"select[]": "ID"},
                            timeout=5).json()
        assert body["total"] >= 7
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
