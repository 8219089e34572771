"""Refusals: counted at once, buffered with a bound, logged a few lines per window."""

from __future__ import annotations

import logging

from deal_monitor.refusals import RefusalLog


def test_a_flood_is_counted_buffered_with_a_bound_and_logged_sparingly(caplog):
    now = [1000.0]
    refusals = RefusalLog(clock=lambda: now[0], buffer=50, window=10.0, lines=5)
    with caplog.at_level(logging.WARNING, logger="deal_monitor.listener"):
        for n in range(200):
            refusals.record(f"10.0.0.{n % 7}", 401, "wrong application token")
        now[0] += 11.0  # the next window opens with the summary of the one before
        refusals.record("10.0.0.9", 403, "sender not in the allowed networks")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 + 1 + 1
    assert lines[5].startswith("… and 195 more refused request(s)")
    assert refusals.total == 201
    assert refusals.counts() == {"401 wrong application token": 200,
                                 "403 sender not in the allowed networks": 1}
    taken = refusals.take()
    assert len(taken) == 50 and refusals.dropped == 151  # only the newest 50 kept for the table
    assert taken[-1].http_status == 403 and refusals.pending == 0
