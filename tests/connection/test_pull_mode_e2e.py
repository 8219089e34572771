"""Pull mode end to end: the headless app with only an inbound webhook, the change poll every
2 s, no event ever delivered. The target is read with plain SQL and compared with the
simulator's raw deals; requests are counted by the simulator."""

from __future__ import annotations

import time

import requests

from deal_monitor.bitrix.phpform import encode
from tests.connection.support import converged

POLL = 2.0


def test_webhook_only_poll_brings_every_change_at_its_final_version(make_app, sim):
    sim.delivery_enabled = False  # no event is ever delivered to anyone
    early = [sim.portal.add_deal({"TITLE": f"before {n}", "STAGE_ID": "PREPARATION",
                                  "OPPORTUNITY": f"{100 + n}.50"}) for n in range(5)]
    app = make_app(hook=False, portal__application_token="", portal__member_id="",
                   sync__poll_seconds=POLL)
    app.start()
    converged(app, sim, early)

    new = [sim.portal.add_deal({"TITLE": f"new {n}", "STAGE_ID": "EXECUTING",
                                "OPPORTUNITY": "10.00"}) for n in range(3)]
    sim.portal.update_deal(early[0], {"TITLE": "changed once", "OPPORTUNITY": "999.99"})
    for n in range(6):  # rapid re-updates: several within the same DATE_MODIFY second
        sim.portal.update_deal(early[1], {"TITLE": f"rapid {n}", "OPPORTUNITY": f"{n}.01"})
        sim.portal.update_deal(new[0], {"STAGE_ID": "PREPARATION" if n % 2 else "EXECUTING",
                                        "TITLE": f"new rapid {n}"})
        time.sleep(0.15)
    everything = early + new
    converged(app, sim, everything)
    assert app.target_rows()[early[1]]["title"] == "rapid 5"

    # one more change after the target caught up lands too (the watermark moved on)
    sim.portal.update_deal(early[2], {"TITLE": "late"})
    converged(app, sim, everything)

    # idle: at most one REST request per poll
    time.sleep(2 * POLL)  # let the last poll's reads finish
    refusals = sim.stats.refusals_503
    sim.reset_stats()
    window = 10 * POLL
    started = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    requests_made = sim.stats.http_requests
    polls_possible = int(elapsed // POLL) + 1
    assert 0 < requests_made <= polls_possible
    assert set(sim.stats.calls_by_method) == {"crm.deal.list"}
    assert refusals == 0 and sim.stats.refusals_503 == 0

    # nothing was pushed, and a push now is refused (no application token): nothing stored
    inbox_before = len(app.inbox())
    body = encode({"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": str(early[3])}},
                   "ts": str(int(time.time())),
                   "auth": {"application_token": sim.application_token,
                            "member_id": sim.member_id, "domain": sim.domain}})
    install = encode({"event": "ONAPPINSTALL", "data": {"VERSION": "1"},
                      "auth": {"application_token": "a" * 32, "access_token": "x" * 40,
                               "refresh_token": "y" * 40, "member_id": sim.member_id}})
    for token_case in (body, install, encode({"event": "ONCRMDEALUPDATE",
                                              "data": {"FIELDS": {"ID": "1"}}})):
        reply = requests.post(app.events_url, data=token_case, timeout=5, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert reply.status_code in (401, 403)
    assert len(app.inbox()) == inbox_before
    assert all(row["source"] != "push" for row in app.inbox())
    assert app.stop() == 0
