"""/metrics during a real headless run against the simulator, read with Prometheus' own parser."""

from __future__ import annotations

import io

import requests
from prometheus_client.parser import text_string_to_metric_families

from deal_monitor import metrics
from tests.e2e.harness import wait_for

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def scrape(app) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    reply = requests.get(f"http://127.0.0.1:{app.port}/metrics", timeout=5)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value for (n, found), value in samples.items()
        if n == name and all((k, v) in found for k, v in labels.items())
    )


def test_counters_move_during_a_headless_run(make_app, sim):
    app = make_app().start()
    before = scrape(app)
    assert total(before, "deal_monitor_instance_info") == 1
    assert total(before, "deal_monitor_inbox_depth") == 0

    ids = [sim.portal.add_deal({"TITLE": f"m{n}", "STAGE_ID": "PREPARATION"}) for n in range(3)]
    sim.portal.update_deal(ids[0], {"TITLE": "m0 again"})
    assert sim.wait_deliveries(10)
    wait_for(lambda: {i for i in ids if i in app.target_rows()} == set(ids), timeout=20)
    delivered = [d for d in sim.deliveries if d.status == 200]
    assert len(delivered) == 4  # three adds and an update, each acknowledged

    bad = requests.post(app.events_url, data="event=ONCRMDEALUPDATE&data[FIELDS][ID]=1"
                        "&auth[application_token]=wrong", headers=FORM, timeout=5)
    assert bad.status_code == 401

    def settled():
        s = scrape(app)
        return s if total(s, "deal_monitor_inbox_depth") == 0 and total(
            s, "deal_monitor_deals_written_total", result="written") >= 3 else None

    after = wait_for(settled, timeout=20)
    accepted = total(after, "deal_monitor_events_accepted_total") - total(
        before, "deal_monitor_events_accepted_total")
    assert accepted == len(delivered)
    assert total(after, "deal_monitor_events_accepted_total", event="ONCRMDEALADD") - total(
        before, "deal_monitor_events_accepted_total", event="ONCRMDEALADD") == 3
    assert total(after, "deal_monitor_events_refused_total", status="401") - total(
        before, "deal_monitor_events_refused_total", status="401") == 1
    assert total(after, "deal_monitor_passes_total") > total(before, "deal_monitor_passes_total")
    assert total(after, "deal_monitor_reconcile_runs_total") >= 1  # the one at start
    # every REST request the portal saw was counted, each with the simulator's answer (200);
    # (waited for: the simulator counts a request on arrival, the app once the answer is in)
    wait_for(lambda: total(scrape(app), "deal_monitor_rest_requests_total", outcome="200")
             == sim.stats.http_requests > 0, timeout=10)
    assert total(scrape(app), "deal_monitor_rest_requests_total", outcome="error") == 0
    # three deals written for the first time (the update may coalesce with its add)
    assert total(after, "deal_monitor_deals_written_total", result="written") >= 3
    written = total(after, "deal_monitor_deals_written_total", result="written")
    assert total(after, "deal_monitor_freshness_seconds_count") == written
    assert total(after, "deal_monitor_oldest_pending_age_seconds") == 0
    assert total(after, "deal_monitor_listening") == 1
    assert app.stop() == 0


def test_rest_outcomes_retries_and_refusals_as_the_portal_answered(make_app, sim):
    app = make_app().start()
    wait_for(lambda: total(scrape(app), "deal_monitor_reconcile_runs_total") >= 1, timeout=20)
    wait_for(lambda: total(scrape(app), "deal_monitor_rest_requests_total")
             == sim.stats.http_requests, timeout=10)
    before = scrape(app)
    sim.faults.fail_next(2, status=503)  # QUERY_LIMIT_EXCEEDED, the portal's own body
    # the operating-time limit, with the reset time the portal sends (a second from now)
    sim.faults.fail_next(1, status=429, body={
        "error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked",
        "time": {"start": 1000.0, "finish": 1000.0, "operating_reset_at": 1001.0}})
    sim.faults.drop_next(1)  # no answer at all
    deal_id = sim.portal.add_deal({"TITLE": "through refusals", "STAGE_ID": "PREPARATION"})
    wait_for(lambda: deal_id in app.target_rows(), timeout=100)  # ~8 s of backoff expected
    after = scrape(app)

    def moved(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert moved("deal_monitor_rest_requests_total", outcome="503") == 2
    assert moved("deal_monitor_rest_requests_total", outcome="429") == 1
    assert moved("deal_monitor_rest_requests_total", outcome="error") == 1
    assert moved("deal_monitor_rest_retries_total") == 4  # each failed request was tried again
    assert moved("deal_monitor_rest_refusals_total") == 3  # two QUERY_LIMIT_EXCEEDED, one 429
    assert app.stop() == 0


def _call(remote: str, networks=(), method: str = "GET") -> tuple[str, bytes]:
    got = {}

    def start_response(status, headers):
        got["status"] = status

    body = b"".join(metrics.serve({"REMOTE_ADDR": remote, "REQUEST_METHOD": method,
                                   "wsgi.input": io.BytesIO()}, start_response, networks))
    return got["status"], body


def test_metrics_only_for_loopback_and_allowed_networks():
    import ipaddress

    nets = [ipaddress.ip_network("10.1.0.0/16")]
    assert _call("127.0.0.1")[0].startswith("200")
    assert _call("::1")[0].startswith("200")
    assert _call("10.1.2.3", nets)[0].startswith("200")
    assert _call("10.2.0.1", nets)[0].startswith("403")
    assert _call("203.0.113.9")[0].startswith("403")
    assert _call("")[0].startswith("403")
    assert _call("127.0.0.1", method="POST")[0].startswith("405")


def test_refusal_reasons_keep_a_small_label_set():
    before = metrics.EVENTS_REFUSED.labels("400", "malformed body")._value.get()
    metrics.event_refused(400, "malformed body: bad byte at 17")
    metrics.event_refused(400, "malformed body: bad byte at 99")
    assert metrics.EVENTS_REFUSED.labels("400", "malformed body")._value.get() == before + 2


def _samples() -> dict[tuple[str, tuple], float]:
    text = metrics.generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_app_mode_counts_offline_polls_and_token_refreshes(tmp_path, running):
    from deal_monitor.simulator import PortalSimulator
    from tests.e2e.test_never_miss import app_monitor, target_ids

    with PortalSimulator() as sim:
        monitor, _ = app_monitor(sim, tmp_path, running, portal={"offline_events": True},
                                 listener={"enabled": False}, sync={"offline_poll_seconds": 0.2})
        monitor.authorize(sim.issue_auth_code())
        monitor.bind_handlers(offline=True)
        before = _samples()
        first = sim.portal.add_deal({"TITLE": "off", "STAGE_ID": "EXECUTING"})
        wait_for(lambda: first in target_ids(monitor), timeout=20)
        sim.expire_access_tokens()
        second = sim.portal.add_deal({"TITLE": "off 2", "STAGE_ID": "EXECUTING"})
        wait_for(lambda: second in target_ids(monitor), timeout=20)
        after = _samples()
    assert sim.stats.token_refreshes >= 1
    assert total(after, "deal_monitor_token_refreshes_total") == sim.stats.token_refreshes
    polls = total(after, "deal_monitor_poll_runs_total", kind="offline") - total(
        before, "deal_monitor_poll_runs_total", kind="offline")
    assert polls >= 4  # each deal: a step that reserves its batch and one that settles it


def test_two_instances_on_one_inbox_each_report_their_own_series(make_app, sim, pg_database):
    nodes = [make_app(f"node{n}", hook=(n == 0), storage__state_url=pg_database,
                      target__url=pg_database).start() for n in range(2)]
    ids = [sim.portal.add_deal({"TITLE": f"s{n}", "STAGE_ID": "EXECUTING"}) for n in range(12)]
    assert sim.wait_deliveries(15)
    delivered = [d for d in sim.deliveries if d.status == 200]
    assert len(delivered) == len(ids)

    def done():
        scrapes = [scrape(node) for node in nodes]
        written = sum(total(s, "deal_monitor_deals_written_total", result="written") for s in scrapes)
        return scrapes if written == len(ids) else None

    first, second = wait_for(done, timeout=30)
    ids_seen = {label for s in (first, second) for (name, labels), _ in s.items()
                if name == "deal_monitor_instance_info" for label in labels}
    assert len(ids_seen) == 2  # two instance_id values: two sets of series
    # only the instance the portal calls accepted events; both may have done the work, and
    # across them every deal was written exactly once
    assert total(first, "deal_monitor_events_accepted_total") == len(ids)
    assert total(second, "deal_monitor_events_accepted_total") == 0
    # the inbox is shared: both report the same depth
    assert total(first, "deal_monitor_inbox_depth") == total(second, "deal_monitor_inbox_depth") == 0
    for node in nodes:
        assert node.stop() == 0
