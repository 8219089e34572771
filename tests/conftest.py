"""Shared fixtures: fixture files from shared/, real target databases, fresh data dirs."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from deal_monitor.paths import sqlite_url

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # copies of shared/bitrix24/fixtures

PG_URL = os.environ.get("DEAL_MONITOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("DEAL_MONITOR_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")


def fixture_bytes(name: str) -> bytes:
    """A captured or documented wire payload (see tests/fixtures/README.md for sources)."""
    return (FIXTURES / name).read_bytes().strip()


def _server_or_skip(url: str) -> None:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"database server for {url.split('://')[0]} is not running in CI: {exc}")
        pytest.skip(f"no server for {url.split('://')[0]}")
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def target_url(request, tmp_path) -> str:
    """A target database URL for each real engine (PostgreSQL/MariaDB on this machine)."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "target.db")
    url = PG_URL if request.param == "postgresql" else MYSQL_URL
    _server_or_skip(url)
    return url


@pytest.fixture
def table_name() -> str:
    """A fresh table name so tests on a shared server database never see each other's rows."""
    name = f"deal_t{uuid.uuid4().hex[:10]}"
    yield name
    for url in (PG_URL, MYSQL_URL):
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.begin() as conn:
                for suffix in ("_product", "_link", ""):
                    conn.execute(text(f"DROP TABLE IF EXISTS {name}{suffix}"))
        except OperationalError:
            pass
        finally:
            engine.dispose()


@pytest.fixture
def sim():
    """A fresh portal simulator on a free loopback port."""
    from deal_monitor.simulator import PortalSimulator

    simulator = PortalSimulator(utc_offset="+03:00").start(host="127.0.0.1", port=0)
    yield simulator
    simulator.stop()


@pytest.fixture
def running():
    """Start in-process monitors; every one is stopped at teardown."""
    from deal_monitor.service import Monitor

    started = []

    def start(settings, **kwargs):
        monitor = Monitor(settings, **kwargs)
        monitor.start()
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


@pytest.fixture
def make_app(tmp_path, sim):
    """Headless app processes against ``sim`` (killed at teardown if still running)."""
    from tests.e2e.harness import HeadlessApp

    apps = []

    def factory(subdir: str = "app", hook: bool = True, **overrides):
        app = HeadlessApp(tmp_path / subdir, sim, **overrides)
        apps.append(app)
        if hook:
            sim.add_outgoing_webhook(app.events_url)
        return app

    yield factory
    for app in apps:
        if app.proc is not None:
            app.stop(kill=True)
