"""The scheduler: reconcile after the machine slept, and the silence watchdog."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from deal_monitor.sync.scheduler import Scheduler
from tests.e2e.harness import wait_for


class FakeReconciler:
    def __init__(self, unannounced: list[int]) -> None:
        self.calls = 0
        self.unannounced = unannounced

    def run(self, cancel=None):
        self.calls += 1
        value = self.unannounced[min(self.calls, len(self.unannounced)) - 1]
        return SimpleNamespace(unannounced=value)


def fake_monitor(reconciler, listening=True, public_url=""):
    return SimpleNamespace(
        reconciler=reconciler,
        has_credentials=lambda: True,
        settings=SimpleNamespace(
            sync=SimpleNamespace(reconcile_minutes=60, deletion_check_minutes=0),
            listener=SimpleNamespace(public_url=public_url),
        ),
        status=lambda: SimpleNamespace(listening=listening),
        publish_status=lambda force=False: None,
        _last_error="",
    )


def test_a_jump_of_the_wall_clock_means_sleep_and_triggers_reconciliation():
    reconciler = FakeReconciler([0])
    offset = [0.0]
    import time

    scheduler = Scheduler(
        fake_monitor(reconciler), wall=lambda: time.time() + offset[0], tick=0.05
    )
    scheduler.start()
    try:
        wait_for(lambda: reconciler.calls == 1)  # once at start; the next is an hour away
        threading.Event().wait(0.3)
        assert reconciler.calls == 1
        offset[0] = 2 * 3600  # the laptop slept two hours: wall time jumped, monotonic did not
        wait_for(lambda: reconciler.calls == 2, timeout=5)
    finally:
        scheduler.stop()


def test_silence_watchdog_needs_two_runs_in_a_row():
    reconciler = FakeReconciler([0, 3, 0, 2, 4, 0])
    scheduler = Scheduler(fake_monitor(reconciler, public_url=""), tick=0.05)
    scheduler.start()
    try:
        wait_for(lambda: scheduler.runs == 1)  # the start-up run never counts
        states = []
        for _ in range(5):
            calls = reconciler.calls
            scheduler.trigger()
            wait_for(lambda calls=calls: reconciler.calls > calls and scheduler.runs == reconciler.calls)
            states.append(scheduler.events_silent)
        # one positive run is not a pattern (an event may be in flight); two in a row are
        assert states == [False, False, False, True, False]
    finally:
        scheduler.stop()


def test_silence_hint_names_the_likely_cause():
    reconciler = FakeReconciler([1, 1, 1])
    scheduler = Scheduler(fake_monitor(reconciler, listening=True, public_url=""), tick=0.05)
    scheduler.runs = 2  # past the start-up run
    scheduler._watch_silence(1)
    scheduler._watch_silence(1)
    assert scheduler.events_silent and "public URL" in scheduler.silence_hint
    scheduler2 = Scheduler(fake_monitor(reconciler, listening=False), tick=0.05)
    scheduler2.runs = 2
    scheduler2._watch_silence(1)
    scheduler2._watch_silence(1)
    assert "listener is not running" in scheduler2.silence_hint
