"""The headless app, end to end: simulator → real HTTP events → real SQLite target."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests

from deal_monitor.simulator import formcodec
from tests.e2e.harness import wait_for

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def synced(app, deal_id, **expect):
    """Wait until the target row for ``deal_id`` has the expected values."""

    def check():
        row = app.target_rows().get(deal_id)
        if row is None:
            return None
        return row if all(row.get(k) == v for k, v in expect.items()) else None

    return wait_for(check, timeout=15)


def test_add_update_delete(make_app, sim):
    app = make_app().start()
    deal_id = sim.portal.add_deal(
        {"TITLE": "Шкаф-купе", "STAGE_ID": "PREPARATION", "OPPORTUNITY": "125000.50",
         "CLOSEDATE": "2025-03-14T00:00:00+03:00"}
    )
    row = synced(app, deal_id, title="Шкаф-купе")
    assert Decimal(row["amount"]) == Decimal("125000.50")
    assert row["close_date"] == "2025-03-14"  # the portal's day, not shifted to UTC
    assert row["stage_id"] == "PREPARATION" and row["deleted"] == 0

    sim.portal.update_deal(deal_id, {"TITLE": "Шкаф-купе 2", "STAGE_ID": "EXECUTING"})
    synced(app, deal_id, title="Шкаф-купе 2", stage_id="EXECUTING")

    sim.portal.delete_deal(deal_id)
    synced(app, deal_id, deleted=1)
    assert len(app.target_rows()) == 1  # rows are flagged, never dropped
    assert app.stop() == 0


def test_start_stage_is_skipped_until_the_deal_leaves_it(make_app, sim):
    app = make_app().start()
    deal_id = sim.portal.add_deal({"TITLE": "Новая заявка", "STAGE_ID": "NEW"})
    wait_for(lambda: any(r["deal_id"] == deal_id and r["status"] == "skipped" for r in app.inbox()))
    assert deal_id not in app.target_rows()

    sim.portal.update_deal(deal_id, {"STAGE_ID": "PREPARATION"})
    synced(app, deal_id, stage_id="PREPARATION")

    # once in production, it keeps being updated even back in a skipped stage
    sim.portal.update_deal(deal_id, {"STAGE_ID": "NEW", "TITLE": "back"})
    synced(app, deal_id, stage_id="NEW", title="back")


def test_second_pipeline_stages(make_app, sim):
    app = make_app().start()
    skipped = sim.portal.add_deal({"TITLE": "c1 new", "CATEGORY_ID": "1", "STAGE_ID": "C1:NEW"})
    passed = sim.portal.add_deal({"TITLE": "c1 prep", "CATEGORY_ID": "1", "STAGE_ID": "C1:PREPARATION"})
    row = synced(app, passed, stage_id="C1:PREPARATION")
    assert row["category_id"] == 1
    wait_for(lambda: any(r["deal_id"] == skipped and r["status"] == "skipped" for r in app.inbox()))
    assert skipped not in app.target_rows()


def test_rapid_updates_are_coalesced(make_app, sim):
    app = make_app(sync__debounce_seconds=0.5).start()
    deal_id = sim.portal.add_deal({"TITLE": "v0", "STAGE_ID": "PREPARATION"})
    synced(app, deal_id, title="v0")
    sim.wait_deliveries(5)
    sim.reset_stats()
    for n in range(1, 31):
        sim.portal.update_deal(deal_id, {"TITLE": f"v{n}"})
    sim.wait_deliveries(10)
    synced(app, deal_id, title="v30")
    fetches = sim.stats.calls_by_method["crm.deal.get"]
    assert 1 <= fetches <= 2, fetches


def test_wrong_token_stores_nothing_and_calls_nothing(make_app, sim):
    app = make_app(hook=False).start()
    sim.reset_stats()
    body = (
        "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=1&ts=1"
        "&auth%5Bapplication_token%5D=not-the-token"
    )
    reply = requests.post(app.events_url, data=body, headers=FORM, timeout=5)
    assert reply.status_code == 401
    envelope = formcodec.encode(  # the portal's own encoding, not the app's
        {"auth": {"member_id": sim.member_id, "domain": urlsplit(sim.url).netloc,
                  "application_token": sim.application_token}}
    )
    for bad in ("%zz", "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=1x&" + envelope):
        assert requests.post(app.events_url, data=bad, headers=FORM, timeout=5).status_code == 400
    assert all(r["source"] != "push" for r in app.inbox())
    assert sim.stats.calls_by_method["crm.deal.get"] == 0
    assert app.health()["listening"] is True


def test_restart_processes_unfinished_inbox_rows(make_app, sim, tmp_path):
    # a long debounce keeps accepted events queued; then the process dies
    app = make_app(sync__debounce_seconds=30, sync__max_delay_seconds=60).start()
    ids = [sim.portal.add_deal({"TITLE": f"d{i}", "STAGE_ID": "EXECUTING"}) for i in range(5)]
    sim.wait_deliveries(5)
    wait_for(lambda: len([r for r in app.inbox() if r["source"] == "push"]) == 5)
    assert app.stop(kill=True) != 0
    assert app.target_rows() == {}
    sim.delivery_enabled = False  # nothing new arrives: only the inbox can bring them in

    again = make_app(subdir="app", hook=False)
    again.start()
    for deal_id in ids:
        synced(again, deal_id, title=f"d{ids.index(deal_id)}")
    # the rows are marked right after the target commit: wait for that, then check them all
    wait_for(lambda: {r["status"] for r in again.inbox() if r["source"] == "push"} == {"synced"})
    assert len([r for r in again.inbox() if r["source"] == "push"]) == 5


def test_changes_while_stopped_arrive_after_start(make_app, sim):
    app = make_app().start()
    first = sim.portal.add_deal({"TITLE": "before", "STAGE_ID": "PREPARATION"})
    synced(app, first, title="before")
    assert app.stop() == 0

    sim.portal.update_deal(first, {"TITLE": "changed while stopped"})
    second = sim.portal.add_deal({"TITLE": "added while stopped", "STAGE_ID": "WON"})
    sim.wait_deliveries(5)  # the portal tried, nobody listened, it never retries

    again = make_app(subdir="app", hook=False).start()
    synced(again, first, title="changed while stopped")
    synced(again, second, title="added while stopped")


def test_deal_1_and_deals_10_to_19_stay_apart(make_app, sim):
    app = make_app().start()
    ids = [sim.portal.add_deal({"TITLE": f"Сделка №{n}", "STAGE_ID": "PREPARATION"}) for n in range(1, 20)]
    assert ids == list(range(1, 20))
    for deal_id in ids:
        synced(app, deal_id)
    sim.portal.update_deal(1, {"TITLE": "Сделка №1 — изменена", "OPPORTUNITY": "1.00"})
    synced(app, 1, title="Сделка №1 — изменена")
    rows = app.target_rows()
    assert len(rows) == 19
    assert all(rows[n]["title"] == f"Сделка №{n}" for n in range(10, 20))


@pytest.mark.parametrize("signal_kind", ["term"])
def test_clean_shutdown_exits_zero(make_app, signal_kind):
    app = make_app().start()
    assert app.stop(kill=False) == 0
    assert "stopped" in app.console()
