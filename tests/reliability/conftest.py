"""Fixtures for the reliability suites (the simulator, monitors and app processes are shared:
tests/conftest.py)."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def clean_logging():
    """Remove the root handlers ``logs.setup`` installs during a test."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_deal_monitor", False):
            root.removeHandler(handler)
            handler.close()
