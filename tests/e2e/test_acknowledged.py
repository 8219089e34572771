"""Acknowledged means synced: an event answered 200 leads to a read made after it arrived.

Bitrix24 stamps ``ts`` in whole seconds, so two changes of one deal within a second send two
events with the same envelope. When the second arrives while a pass is already reading that
deal (the portal answers slowly), the pass's answer predates the second change: the second
event must cause another read. The portal's answer here shows the deal as it was when asked
(``lag_next``: the answer is made at once and held back), exactly the slow-portal case.

The event bodies are built by the test with the standard library (PHP bracket keys), and the
target is read with plain SQL: neither depends on the app's own code.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import requests
from sqlalchemy import create_engine, text

from deal_monitor.simulator import PortalSimulator
from tests.e2e.harness import wait_for
from tests.e2e.test_never_miss import settings_for

LAG_S = 1.5


def event_body(sim: PortalSimulator, deal_id: int, ts: int) -> bytes:
    """An outgoing-webhook ONCRMDEALUPDATE as the portal encodes it (http_build_query)."""
    return urlencode([
        ("event", "ONCRMDEALUPDATE"),
        ("event_handler_id", "7"),
        ("data[FIELDS][ID]", str(deal_id)),
        ("ts", str(ts)),
        ("auth[domain]", sim.domain),
        ("auth[client_endpoint]", f"{sim.url}/rest/"),
        ("auth[server_endpoint]", "https://oauth.bitrix.info/rest/"),
        ("auth[member_id]", sim.member_id),
        ("auth[application_token]", sim.application_token),
    ]).encode("ascii")


def titles_in_target(url: str, ids: list[int]) -> dict[int, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT bitrix_id, title FROM deal")).all()
    finally:
        engine.dispose()
    return {int(i): t for i, t in rows if int(i) in ids}


def test_second_change_in_the_same_second_during_a_slow_read_is_synced(tmp_path, running):
    with PortalSimulator() as sim:
        ids = [sim.portal.add_deal({"TITLE": f"v0 {n}", "STAGE_ID": "PREPARATION"})
               for n in range(3)]
        monitor = running(settings_for(sim, tmp_path, sync={
            "debounce_seconds": 0.1, "max_delay_seconds": 0.5}))
        target_url = monitor.where.target_url
        wait_for(lambda: titles_in_target(target_url, ids) == {i: f"v0 {n}" for n, i in
                                                               enumerate(ids)}, timeout=30)
        post = f"http://127.0.0.1:{monitor.listener.port}/bitrix24/events"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        for n, deal_id in enumerate(ids):
            ts = int(time.time())
            held = sim.stats.answers_held
            # the next REST request is the pass's read (crm.deal.get, or a batch when the
            # previous deal's second read joins it): nothing else calls the portal here
            sim.faults.lag_next(1, LAG_S)
            sim.portal.update_deal(deal_id, {"TITLE": f"v1 {n}"})
            assert requests.post(post, data=event_body(sim, deal_id, ts), headers=headers,
                                 timeout=10).status_code == 200
            # the pass has read the deal (v1) and its answer is on its way back
            wait_for(lambda held=held: sim.stats.answers_held > held, timeout=30)
            sim.portal.update_deal(deal_id, {"TITLE": f"v2 {n}"})
            reply = requests.post(post, data=event_body(sim, deal_id, ts), headers=headers,
                                  timeout=10)
            assert reply.status_code == 200
        expected = {deal_id: f"v2 {n}" for n, deal_id in enumerate(ids)}
        # generous: each deal needs one more read after a 1.5 s answer (hang detection only)
        wait_for(lambda: titles_in_target(target_url, ids) == expected, timeout=60)
        assert titles_in_target(target_url, ids) == expected
