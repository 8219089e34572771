"""Fixtures for the reliability suites: a fresh portal simulator, in-process monitors, app processes."""

from __future__ import annotations

import logging

import pytest

from deal_monitor.service import Monitor
from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import HeadlessApp


@pytest.fixture
def sim():
    simulator = PortalSimulator(utc_offset="+03:00").start(host="127.0.0.1", port=0)
    yield simulator
    simulator.stop()


@pytest.fixture
def running():
    """Start in-process monitors; every one is stopped at teardown."""
    started: list[Monitor] = []

    def start(settings, **kwargs) -> Monitor:
        monitor = Monitor(settings, **kwargs)
        monitor.start()
        started.append(monitor)
        return monitor

    yield start
    for monitor in started:
        monitor.stop()


@pytest.fixture
def make_app(tmp_path, sim):
    """Headless app processes (killed at teardown if still running)."""
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


@pytest.fixture
def clean_logging():
    """Remove the root handlers ``logs.setup`` installs during a test."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_deal_monitor", False):
            root.removeHandler(handler)
            handler.close()
