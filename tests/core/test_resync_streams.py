"""The full resync holds no page it has written while the next one is listed.

A portal of many pages must cost the memory of a few, so a page written and recorded is let go
before the writer waits for the next one. The scripted portal hands out deals as weakly
referenced dicts and, before it lists each page, waits until the writer has recorded the page
before; then every deal it handed out earlier must be gone (collected), while the listing
stands still. Counted structurally (live deal objects), never by process memory.
"""

from __future__ import annotations

import gc
import time
import weakref

import pytest

from deal_monitor.paths import sqlite_url
from deal_monitor.store.engine import make_engine
from deal_monitor.store.state import StateStore
from deal_monitor.store.target import TargetWriter
from tests.core.test_resync_direct import PORTAL_START, Setup, raw
from tests.oracle import target_table

PAGE = 40
PAGES = 6
GUARD_S = 10.0  # each wait below takes milliseconds


class Deal(dict):
    """A listed deal that can be watched with a weak reference."""


class WatchedPortal:
    def __init__(self, deals: int) -> None:
        self.deals = {i: raw(i) for i in range(1, deals + 1)}
        self.last_time = {"date_start": PORTAL_START}
        self.handed_out: list[weakref.ref[Deal]] = []
        self.before_page = None  # called with the page number before it is listed
        self.products: dict[int, list[dict]] = {}

    def iter_deal_pages(self, filter=None, select=(), after_id=0, expected=None):
        ids = sorted(i for i in self.deals if i > after_id)
        for n, start in enumerate(range(0, len(ids), PAGE)):
            if self.before_page is not None:
                self.before_page(n)
            yield [self._watch(Deal(self.deals[i])) for i in ids[start : start + PAGE]]

    def _watch(self, deal: Deal) -> Deal:
        self.handed_out.append(weakref.ref(deal))
        return deal

    def alive(self) -> int:
        return sum(1 for ref in self.handed_out if ref() is not None)

    def get_product_rows(self, ids):
        return {i: [] for i in ids}

    def get_deals(self, ids, with_products=False):
        return {i: dict(self.deals[i]) for i in ids if i in self.deals}, {}


@pytest.fixture
def state(tmp_path):
    store = StateStore(make_engine(sqlite_url(tmp_path / "state.db")))
    store.create()
    yield store
    store.engine.dispose()


def _wait(predicate) -> bool:
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        gc.collect()
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_a_written_page_is_let_go_before_the_next_is_listed(state, tmp_path):
    target = TargetWriter(make_engine(sqlite_url(tmp_path / "target.db"), synchronous="NORMAL"))
    target.prepare()
    portal = WatchedPortal(PAGE * PAGES)
    s = Setup(state, target, portal)
    held: list[int] = []  # deals still alive while page n was about to be listed
    recorded: list[bool] = []

    def before_page(n: int) -> None:
        if n == 0:
            return
        # the page before is in the writer's hands: wait until it is recorded ...
        recorded.append(_wait(lambda: any(p.done >= n * PAGE for p in list(s.sink.progress))))
        # ... and then until nothing handed out so far is alive
        _wait(lambda: portal.alive() == 0)
        gc.collect()
        held.append(portal.alive())

    portal.before_page = before_page
    result = s.resync()
    target.engine.dispose()

    assert result.listed == result.written == PAGE * PAGES
    assert sorted(target_table(sqlite_url(tmp_path / "target.db"), "deal")) == list(
        range(1, PAGE * PAGES + 1))
    assert all(recorded) and len(recorded) == PAGES - 1  # hang guard: each page got recorded
    assert held == [0] * (PAGES - 1)
