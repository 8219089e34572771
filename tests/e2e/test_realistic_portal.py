"""The app against the simulator's ``realistic`` profile: every deal ends at its final version.

The portal takes 80–250 ms per read and 0.2–0.6 s per list page, delivers events 0.1–3 s
late from several senders (out of order, sometimes twice) and renders dates as PHP does.
Behaviour only: the expected rows are what the test itself wrote into the portal (titles,
amounts as Decimal, the calendar day it set), read back from the target with plain sqlite3.
No latency is asserted; the waits only detect a hang (far above the few tens of seconds
these runs take).
"""

from __future__ import annotations

import random
import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path

from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import wait_for
from tests.e2e.test_never_miss import settings_for

HANG = 600  # seconds; a run takes ~30-60 s on a busy 2-core machine
DEALS = 40
ROUNDS = 3


def target_rows(data_dir: Path) -> dict[int, tuple[str, Decimal, str | None]]:
    path = data_dir / "target.db"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT bitrix_id, title, amount, close_date FROM deal").fetchall()
    except sqlite3.OperationalError:  # table not created yet
        return {}
    finally:
        conn.close()
    return {int(i): (t, Decimal(str(a)), None if d is None else str(d)[:10]) for i, t, a, d in rows}


def _run_changes(sim: PortalSimulator, days: list[date]) -> dict[int, tuple[str, Decimal, str]]:
    """Create deals (events on), then change each several times in a shuffled order."""
    rng = random.Random(13)
    final: dict[int, tuple[str, Decimal, str]] = {}
    ids = [sim.portal.add_deal({"TITLE": f"Заказ {n}", "STAGE_ID": "EXECUTING",
                                "OPPORTUNITY": "100.00", "CLOSEDATE": days[n % len(days)].isoformat()})
           for n in range(DEALS)]
    for n, deal_id in enumerate(ids):
        final[deal_id] = (f"Заказ {n}", Decimal("100.00"), days[n % len(days)].isoformat())
    for round_no in range(ROUNDS):
        order = list(ids)
        rng.shuffle(order)
        for deal_id in order:
            cents = rng.randrange(1, 10**8)
            amount = Decimal(cents) / 100
            day = days[(deal_id + round_no) % len(days)]
            title = f"Заказ {deal_id} v{round_no + 1}"
            sim.portal.update_deal(deal_id, {"TITLE": title, "OPPORTUNITY": str(amount),
                                             "CLOSEDATE": day.isoformat()})
            final[deal_id] = (title, amount, day.isoformat())
    return final


def _sync_against(sim: PortalSimulator, tmp_path, running, days: list[date]):
    monitor = running(settings_for(sim, tmp_path))
    sim.add_outgoing_webhook(f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events")
    wait_for(lambda: monitor.scheduler.runs >= 1, timeout=HANG)
    final = _run_changes(sim, days)
    assert sim.wait_deliveries(HANG)
    data_dir = tmp_path / "data"
    wanted = {i: v[:2] for i, v in final.items()}
    wait_for(lambda: {i: r[:2] for i, r in target_rows(data_dir).items()} == wanted,
             timeout=HANG, interval=0.5)
    delivered = sim.deliveries
    return final, target_rows(data_dir), delivered


def test_every_deal_ends_at_its_final_version_on_a_realistic_portal(tmp_path, running):
    days = [date(2027, 1, 15), date(2027, 3, 14), date(2027, 7, 15)]
    with PortalSimulator(profile="realistic", seed=2) as sim:
        final, rows, delivered = _sync_against(sim, tmp_path, running, days)
    assert {i: (t, a) for i, (t, a, _) in rows.items()} == {i: (t, a) for i, (t, a, _) in final.items()}
    # Moscow (+03:00, no DST): the day written into the portal is the day in the table
    assert {i: r[2] for i, r in rows.items()} == {i: v[2] for i, v in final.items()}
    # the portal really was unkind: events left out of order (duplicates are drawn from the
    # same generator as the app's request latencies, so their count is not fixed here; the
    # profile's own tests pin them)
    queued = sorted(delivered, key=lambda d: d.queued_at)
    assert [d.deal_id for d in queued] != [d.deal_id for d in sorted(delivered, key=lambda d: d.at)]


def test_titles_and_amounts_end_final_on_a_portal_west_of_utc_across_dst(tmp_path, running):
    days = [date(2027, 1, 15), date(2027, 3, 14), date(2027, 3, 15), date(2027, 7, 15)]
    with PortalSimulator(profile="realistic", seed=3, time_zone="America/New_York") as sim:
        final, rows, _ = _sync_against(sim, tmp_path, running, days)
    assert {i: (t, a) for i, (t, a, _) in rows.items()} == {i: (t, a) for i, (t, a, _) in final.items()}


def test_close_dates_are_the_portal_day_on_a_portal_west_of_utc(tmp_path, running):
    days = [date(2027, 1, 15), date(2027, 3, 14), date(2027, 3, 15), date(2027, 7, 15)]
    with PortalSimulator(profile="realistic", seed=4, time_zone="America/New_York") as sim:
        final, rows, _ = _sync_against(sim, tmp_path, running, days)
    assert {i: r[2] for i, r in rows.items()} == {i: v[2] for i, v in final.items()}
