"""Runs the headless app as a real subprocess against the portal simulator.

The app gets a TOML config in a temp folder, listens on a free loopback port, and is stopped
with SIGTERM (clean) or SIGKILL (crash). Helpers read the target SQLite file directly, the way
a warehouse system would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from deal_monitor import config
from deal_monitor.config import from_mapping

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


class HeadlessApp:
    """One headless Deal Monitor process with its own data dir."""

    def __init__(self, workdir: Path, sim, **overrides) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.sim = sim
        self.port = free_port()
        sections = {
            "portal": {
                "webhook_url": sim.webhook_url,
                "application_token": sim.application_token,
                "member_id": sim.member_id,
            },
            "listener": {"port": self.port},
            "sync": {"debounce_seconds": 0.2, "reconcile_minutes": 0},
            "storage": {"data_dir": str(workdir / "data")},
        }
        for key, value in overrides.items():
            section, name = key.split("__")
            sections.setdefault(section, {})[name] = value
        self.settings = from_mapping(sections, env={})
        self.config_path = workdir / "deal-monitor.toml"
        self.config_path.write_text(config.to_toml(self.settings), encoding="utf-8")
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "console.log"

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bitrix24/events"

    def start(self, env: dict | None = None) -> HeadlessApp:
        full_env = dict(os.environ)
        full_env.pop("DEAL_MONITOR_WEBHOOK_URL", None)
        full_env.pop("DEAL_MONITOR_APPLICATION_TOKEN", None)
        full_env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
        full_env.update(env or {})
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deal_monitor", "--headless", "--config", str(self.config_path)],
            cwd=ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, timeout=20)
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"app exited with {self.proc.returncode}:\n{self.console()}")
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/livez", timeout=1).ok
        except requests.ConnectionError:
            return False

    def health(self) -> dict:
        return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5).json()

    def stop(self, kill: bool = False, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        self.proc = None
        return code

    def console(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- reading what the app wrote ---------------------------------------------------------
    def target_rows(self) -> dict[int, dict]:
        path = self.workdir / "data" / "target.db"
        if not path.exists():
            return {}
        engine = create_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                exists = conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type='table' AND name='deal'")
                ).first()
                if not exists:
                    return {}
                return {r.bitrix_id: r._asdict() for r in conn.execute(text("SELECT * FROM deal"))}
        finally:
            engine.dispose()

    def inbox(self) -> list[dict]:
        engine = create_engine(f"sqlite:///{self.workdir / 'data' / 'state.db'}")
        try:
            with engine.connect() as conn:
                return [r._asdict() for r in conn.execute(text("SELECT * FROM inbox ORDER BY id"))]
        finally:
            engine.dispose()
