"""Demo activity: realistic deals in both pipelines, moving through stages, firing events."""

from __future__ import annotations

import random
import time

from deal_monitor.simulator import PortalSimulator
from deal_monitor.simulator.activity import Activity, seed


def test_ticks_create_and_move_deals_in_both_pipelines(sim: PortalSimulator, receiver) -> None:
    sim.add_outgoing_webhook(receiver.url)
    activity = Activity(sim.portal, interval=1.0, seed_value=7)
    for _ in range(80):
        activity.tick()
    deals = [sim.portal.get_deal(i) for i in sim.portal.deal_ids()]
    assert {d["CATEGORY_ID"] for d in deals} == {"0", "1"}
    assert any(d["STAGE_ID"] not in {"NEW", "C1:NEW"} for d in deals)
    assert all(any("а" <= ch <= "я" for ch in d["TITLE"].lower()) for d in deals)
    assert all(d["OPPORTUNITY"] != "0.00" for d in deals)
    assert sim.wait_deliveries(10)
    events = {d.event for d in sim.deliveries}
    assert events == {"ONCRMDEALADD", "ONCRMDEALUPDATE"}


def test_seed_is_reproducible(sim: PortalSimulator) -> None:
    ids = seed(sim.portal, 5, random.Random(42))
    titles = [sim.portal.get_deal(i)["TITLE"] for i in ids]
    other = PortalSimulator(rate_limit=False)
    again = seed(other.portal, 5, random.Random(42))
    assert [other.portal.get_deal(i)["TITLE"] for i in again] == titles


def test_start_activity_runs_in_background() -> None:
    with PortalSimulator(rate_limit=False) as sim:
        sim.start_activity(interval=0.02, seed=1)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(sim.portal) < 3:
            time.sleep(0.02)
        sim.stop_activity()
        assert len(sim.portal) >= 3
