"""Scaling out: several instances share one PostgreSQL inbox and never work a row twice."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from deal_monitor import config
from deal_monitor.service import Monitor
from deal_monitor.simulator import PortalSimulator
from tests.conftest import PG_URL, _server_or_skip
from tests.e2e.harness import wait_for
from tests.oracle import live_ids, monitor_target


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database for this test (the state tables have fixed names)."""
    _server_or_skip(PG_URL)
    name = f"dm_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def instance(sim, tmp_path, state_url: str, n: int) -> Monitor:
    settings = config.from_mapping(
        {
            "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
            "listener": {"enabled": False},
            "sync": {"debounce_seconds": 0.05, "reconcile_minutes": 0, "deletion_check_minutes": 0},
            "target": {"url": state_url},
            "storage": {"data_dir": str(tmp_path / f"node{n}"), "state_url": state_url},
        },
        env={},
    )
    monitor = Monitor(settings)
    monitor.start()
    return monitor


def test_two_instances_on_one_inbox_never_work_a_row_twice(tmp_path, pg_database):
    with PortalSimulator(rate_limit=False) as sim:
        ids = sim.portal.bulk_add(1200, STAGE_ID="EXECUTING")
        nodes = [instance(sim, tmp_path, pg_database, n) for n in range(2)]
        try:
            for node in nodes:
                node.scheduler.stop()  # only the manual rows below are the work
                wait_for(lambda node=node: node.status().inbox_depth == 0, timeout=30)
            for node in nodes:
                node.pause()
            sim.reset_stats()
            nodes[0].resync(ids)
            for node in nodes:
                node.resume()
            wait_for(lambda: nodes[0].status().inbox_depth == 0, timeout=60)
            assert live_ids(*monitor_target(nodes[0])) == set(ids)
            # every deal read exactly once across both instances (which of them did how much
            # depends on timing: only the exactly-once is asserted)
            assert sim.stats.calls_by_method["crm.deal.get"] == 1200
        finally:
            for node in nodes:
                node.stop()
