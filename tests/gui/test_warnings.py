"""Anomaly warnings reach the planner: the status bar's problem field and one notice."""

from __future__ import annotations

import pytest

from tests.reliability.support import envelope, post

from .conftest import WAIT_MS

pytestmark = pytest.mark.gui


def test_a_burst_of_wrong_token_requests_is_shown_once(qtbot, sim, app_window):
    controller, window = app_window
    controller.notified.connect(window.show_notice)  # as the app does when there is no tray
    url = controller.monitor.status().listen_url
    for n in range(20):
        assert post(url, envelope(sim, 5, ts=100 + n, application_token="w" * 32)).status_code == 401
    controller.refresh_status()
    qtbot.waitUntil(lambda: "auth_failures" in controller.status.warnings, timeout=WAIT_MS)
    qtbot.waitUntil(window.problem_field.isVisible, timeout=WAIT_MS)
    assert "wrong application token" in window.problem_field.toolTip()
    qtbot.waitUntil(lambda: "wrong application token" in window.notice_text(), timeout=WAIT_MS)
    window.notice_bar.dismiss()
    # a later status still carries the warning: it stays in the field, no second notice
    controller.on_status_changed(controller.monitor.status())
    assert not window.notice_bar.isVisible()
    assert "wrong application token" in window.problem_field.toolTip()
