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
