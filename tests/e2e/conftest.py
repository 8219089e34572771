"""Fixtures for end-to-end runs: a portal simulator and headless app processes."""

from __future__ import annotations

import pytest

from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import HeadlessApp


@pytest.fixture
def sim():
    simulator = PortalSimulator(utc_offset="+03:00").start(host="127.0.0.1", port=0)
    yield simulator
    simulator.stop()


@pytest.fixture
def make_app(tmp_path, sim):
    apps: list[HeadlessApp] = []

    def factory(subdir: str = "app", hook: bool = True, **overrides) -> HeadlessApp:
        app = HeadlessApp(tmp_path / subdir, sim, **overrides)
        apps.append(app)
        if hook:
            sim.add_outgoing_webhook(app.events_url)
        return app

    yield factory
    for app in apps:
        if app.proc is not None:
            app.stop(kill=True)
