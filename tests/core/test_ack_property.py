"""Property: an accepted event leads to a read of its deal made after the event arrived.

Hypothesis explores interleavings of portal changes, event arrivals and sync passes of two
deals — including changes (and their events) that land while a pass is reading: before the
portal answered, or after it answered and before the pass committed. Bitrix24's ``ts`` has
whole seconds, so changes in the same second send identical envelopes. Whatever the order,
once the queue is drained the target holds each deal's last version.

The real inbox (StateStore on a SQLite file), the real worker pass, the real target writer and
the real event parser run; only the portal is a scripted stand-in, whose answer shows the deal
as it is at the moment it is asked. Expected values come from the script, the target is read
with plain SQL.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from deal_monitor.bitrix.events import read_event
from deal_monitor.bitrix.stages import StageFilter
from deal_monitor.model import NullSink, Source
from deal_monitor.store.engine import make_engine
from deal_monitor.store.state import NewEvent, StateStore
from deal_monitor.store.target import TargetWriter
from deal_monitor.sync.worker import SyncWorker, WorkerOptions

TOKEN = "propertytoken0123456789abcdef012"
DEALS = (11, 12)
COALESCE_AT = 20  # as the listener's intake uses (service.INTAKE_COALESCE_AT)


@dataclass
class ScriptedPortal:
    """Two deals whose answers reflect the moment they are asked."""

    second: int = 0
    versions: dict[int, int] = field(default_factory=lambda: {d: 0 for d in DEALS})
    modified: dict[int, int] = field(default_factory=lambda: {d: 0 for d in DEALS})
    before_read: list = field(default_factory=list)
    after_read: list = field(default_factory=list)
    reads: int = 0

    def raw(self, deal_id: int) -> dict:
        return {
            "ID": str(deal_id), "TITLE": f"v{self.versions[deal_id]}", "STAGE_ID": "PREPARATION",
            "CATEGORY_ID": "0", "OPPORTUNITY": "10.00", "CURRENCY_ID": "RUB", "CLOSEDATE": "",
            "COMMENTS": "",
            "DATE_MODIFY": f"2026-12-03T10:{self.modified[deal_id] // 60:02d}:"
                           f"{self.modified[deal_id] % 60:02d}+03:00",
        }

    # what the worker's client is asked
    def get_deals(self, ids, with_products: bool = False):
        self.reads += 1
        for hook in self.before_read:
            hook()
        self.before_read.clear()
        answer = {i: self.raw(i) for i in ids}
        for hook in self.after_read:
            hook()
        self.after_read.clear()
        return answer, {}


def event_body(deal_id: int, ts: int) -> bytes:
    return urlencode([
        ("event", "ONCRMDEALUPDATE"), ("event_handler_id", "3"), ("data[FIELDS][ID]", str(deal_id)),
        ("ts", str(1_780_000_000 + ts)), ("auth[domain]", "portal.example"),
        ("auth[member_id]", "a223c6b3710f85df22e9377d6c4f7553"),
        ("auth[application_token]", TOKEN),
    ]).encode("ascii")


class Scenario:
    def __init__(self, folder: Path) -> None:
        self.portal = ScriptedPortal()
        self.state = StateStore(make_engine(f"sqlite:///{folder / 'state.db'}", synchronous="FULL"))
        self.state.create()
        self.target_url = f"sqlite:///{folder / 'target.db'}"
        self.target = TargetWriter(make_engine(self.target_url, synchronous="NORMAL"), "deal")
        self.target.prepare()
        self.worker = SyncWorker(self.state, self.target, self.portal,
                                 lambda: StageFilter(["NEW"]), NullSink(),
                                 WorkerOptions(debounce=0.0, max_delay=0.0))
        self.announced: set[int] = set()

    def change(self, deal_id: int, advance: bool) -> None:
        """The deal changes on the portal; its event arrives and is accepted."""
        if advance:
            self.portal.second += 1
        self.portal.versions[deal_id] += 1
        self.portal.modified[deal_id] = self.portal.second
        event = read_event(event_body(deal_id, self.portal.second), TOKEN)
        self.state.add_events([NewEvent(event=event.event, deal_id=event.deal_id,
                                        source=Source.PUSH, handler_id=event.handler_id,
                                        ts=event.ts, dedup_key=event.dedup_key)],
                              coalesce_at=COALESCE_AT)
        self.announced.add(deal_id)

    def drain(self) -> None:
        for _ in range(100):
            if not self.worker.run_pass() and not (self.portal.before_read or
                                                   self.portal.after_read):
                return
            # hooks left for a read that never came: the change happens now
            if not self.state.due_deals(0.0, 0.0):
                for hooks in (self.portal.before_read, self.portal.after_read):
                    for hook in list(hooks):
                        hook()
                    hooks.clear()
        raise AssertionError("the queue did not drain")

    def titles(self) -> dict[int, str]:
        engine = create_engine(self.target_url)
        try:
            with engine.connect() as conn:
                return {int(i): t for i, t in conn.execute(text("SELECT bitrix_id, title FROM deal"))}
        finally:
            engine.dispose()

    def close(self) -> None:
        self.state.engine.dispose()
        self.target.engine.dispose()


STEP = st.tuples(
    st.sampled_from(["change", "change_before_read", "change_after_read", "pass"]),
    st.sampled_from(DEALS),
    st.booleans(),  # the portal's clock moves to the next second first
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=14))
def test_every_accepted_event_is_followed_by_a_later_read(steps):
    with tempfile.TemporaryDirectory() as folder:
        run = Scenario(Path(folder))
        try:
            for kind, deal_id, advance in steps:
                if kind == "pass":
                    run.worker.run_pass()
                elif kind == "change":
                    run.change(deal_id, advance)
                else:
                    hooks = (run.portal.before_read if kind == "change_before_read"
                             else run.portal.after_read)
                    hooks.append(lambda d=deal_id, a=advance: run.change(d, a))
            run.drain()
            expected = {d: f"v{run.portal.versions[d]}" for d in run.announced}
            titles = run.titles()
            assert {d: titles.get(d) for d in expected} == expected
            assert run.state.inbox_depth() == 0
        finally:
            run.close()
