"""The simulator's ``realistic`` profile: latency draws, time accounting, delivery, dates.

Expected values come from the issue's brief and the Bitrix24 docs (bounds, the docs
fixture's date strings, PHP's ``ConvertDate`` rule worked out by hand below), never from
the simulator's own helpers. No wall-clock latency is asserted: the latency checks read the
draws and the portal's own ``time`` block.
"""

from __future__ import annotations

import json
import statistics
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests

from deal_monitor.simulator import PortalSimulator
from deal_monitor.simulator.profile import DEFAULT, REALISTIC, Draws

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLES = 4000


def test_default_profile_stays_instant_with_local_midnight_dates():
    draws = Draws(DEFAULT)
    assert {draws.server_time("crm.deal.get"), draws.server_time("crm.deal.list", 10_000),
            draws.network(), draws.delivery_delay()} == {0.0}
    with PortalSimulator(rate_limit=False) as sim:
        deal_id = sim.portal.add_deal({"TITLE": "x", "CLOSEDATE": "2026-03-14"})
        assert sim.portal.get_deal(deal_id)["CLOSEDATE"] == "2026-03-14T00:00:00+03:00"
        assert sim.profile.name == "default" and sim.profile.senders == 1


@pytest.mark.parametrize(("method", "low", "high"), [
    ("crm.deal.get", 0.080, 0.250),
    ("crm.deal.list", 0.2, 0.6),  # keyset page (start=-1 / 0): nothing skipped
])
def test_server_time_draws_stay_in_bounds_and_spread_over_them(method, low, high):
    draws = Draws(REALISTIC.with_seed(7))
    values = [draws.server_time(method, -1) for _ in range(SAMPLES)]
    assert low <= min(values) and max(values) <= high
    span = high - low
    # the whole range is used, not a constant or a narrow band
    assert min(values) < low + 0.1 * span and max(values) > high - 0.2 * span
    assert low + 0.2 * span < statistics.fmean(values) < low + 0.6 * span


def test_list_page_time_grows_with_the_start_offset():
    draws = Draws(REALISTIC.with_seed(3))
    per_row = 49.9 / 2_390_000  # the docs' huge-data figure: 49.9 s at offset 2.39 M
    for start in (0, 10_000, 100_000):
        values = [draws.server_time("crm.deal.list", start) for _ in range(500)]
        assert 0.2 + per_row * start <= min(values)
        assert max(values) <= 0.6 + per_row * start + 1e-9


def test_same_seed_same_draws_other_seed_other_draws():
    def sequence(seed):
        d = Draws(REALISTIC.with_seed(seed))
        return [(d.server_time("crm.deal.get"), d.delivery_delay(), d.chance(0.5)) for _ in range(50)]

    assert sequence(11) == sequence(11)
    assert sequence(11) != sequence(12)


def test_delivery_delay_draws_cover_0_1_to_3_seconds():
    draws = Draws(REALISTIC.with_seed(5))
    values = [draws.delivery_delay() for _ in range(SAMPLES)]
    assert 0.1 <= min(values) < 0.2 and 2.9 < max(values) <= 3.0


def test_time_block_and_operating_budget_count_the_server_time():
    with PortalSimulator(profile="realistic", seed=1, rate_limit=False) as sim:
        sim.portal.bulk_add(60)
        url = sim.webhook_url
        spent = 0.0
        for deal_id in (1, 2, 3):
            block = requests.get(f"{url}crm.deal.get.json", params={"id": deal_id}, timeout=30).json()["time"]
            assert 0.08 <= block["processing"] <= block["duration"]
            spent += block["processing"]
            assert block["operating"] == pytest.approx(spent, abs=1e-5)
        cmd = {f"g{i}": f"crm.deal.get?id={i}" for i in range(4, 14)}
        body = requests.post(f"{url}batch.json", json={"halt": 0, "cmd": cmd}, timeout=60).json()
        inner = [body["result"]["result_time"][k]["processing"] for k in cmd]
        assert all(0.08 <= t <= 0.25 for t in inner)
        # a batch takes the sum of its commands' server time; each is charged to crm.deal.get
        assert body["time"]["processing"] >= sum(inner)
        after = requests.get(f"{url}crm.deal.get.json", params={"id": 1}, timeout=30).json()["time"]
        assert after["operating"] == pytest.approx(spent + sum(inner) + after["processing"], abs=1e-4)


class _Receiver:
    """A tiny outgoing-webhook handler recording (deal id, body) in arrival order."""

    def __init__(self) -> None:
        arrivals: list[tuple[int, bytes]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                form = parse_qs(body.decode("ascii"))
                with lock:
                    arrivals.append((int(form["data[FIELDS][ID]"][0]), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.arrivals = arrivals
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_events_arrive_late_out_of_order_and_sometimes_twice():
    receiver = _Receiver()
    try:
        with PortalSimulator(profile="realistic", seed=42, rate_limit=False) as sim:
            ids = sim.portal.bulk_add(200)
            sim.add_outgoing_webhook(receiver.url, events=["ONCRMDEALUPDATE"])
            for deal_id in ids:
                sim.portal.update_deal(deal_id, {"TITLE": f"changed {deal_id}"})
            assert sim.wait_deliveries(60)  # hang guard: the longest delay is 3 s
            records = sim.deliveries
    finally:
        receiver.close()
    order = [deal_id for deal_id, _ in receiver.arrivals]
    assert sorted(set(order)) == ids  # every change delivered
    first_seen = list(dict.fromkeys(order))
    assert first_seen != ids  # not in the order of the changes
    inversions = sum(1 for a, b in zip(first_seen, first_seen[1:], strict=False) if a > b)
    assert inversions > 10
    bodies: dict[int, set[bytes]] = {}
    for deal_id, body in receiver.arrivals:
        bodies.setdefault(deal_id, set()).add(body)
    twice = [d for d in ids if order.count(d) == 2]
    assert twice  # duplicates happen ...
    assert len(twice) < len(ids) * 0.15  # ... occasionally
    assert all(len(bodies[d]) == 1 for d in twice)  # the very same POST again
    assert max(order.count(d) for d in ids) <= 2
    assert all(r.at - r.queued_at >= 0.1 for r in records)  # never sooner than the least delay
    assert sum(r.duplicate for r in records) == len(twice)


def _portal_clock_at(sim: PortalSimulator, moment: datetime) -> None:
    sim.portal.clock_offset = moment.timestamp() - datetime.now(UTC).timestamp()


def test_dates_render_like_the_docs_fixture():
    fixture = json.loads((FIXTURES / "crm_deal_get_docs.json").read_text(encoding="utf-8"))
    want = fixture["result"]
    with PortalSimulator(profile="realistic", rate_limit=False, time_zone="Europe/Berlin") as sim:
        _portal_clock_at(sim, datetime.fromisoformat(want["DATE_CREATE"]))
        deal_id = sim.portal.add_deal({"TITLE": want["TITLE"], "BEGINDATE": "2024-08-30",
                                       "CLOSEDATE": "09.09.2024"})
        got = requests.get(f"{sim.webhook_url}crm.deal.get.json", params={"id": deal_id},
                           timeout=30).json()["result"]
    assert got["BEGINDATE"] == want["BEGINDATE"] == "2024-08-30T02:00:00+02:00"
    assert got["CLOSEDATE"] == want["CLOSEDATE"]
    assert got["DATE_CREATE"] == want["DATE_CREATE"]


# America/New_York: EST -05:00, EDT -04:00; in 2027 DST starts Sunday 14 March at 02:00.
# ConvertDate: local midnight of the day + the offset in force now (PHP date("Z")), shown in
# the offset of the resulting instant. Worked out by hand:
#   now in winter (Z = -5 h): 15 Jan: 05:00Z - 5 h = 00:00Z -> 14 Jan 19:00 EST
#                             15 Jul: 04:00Z - 5 h = 23:00Z 14 Jul -> 19:00 EDT
#                             14 Mar (midnight still EST): 05:00Z - 5 h -> 13 Mar 19:00 EST
#                             15 Mar (EDT): 04:00Z - 5 h = 23:00Z 14 Mar -> 19:00 EDT
#   now in summer (Z = -4 h): 15 Jan: 05:00Z - 4 h = 01:00Z -> 14 Jan 20:00 EST
#                             15 Jul: 04:00Z - 4 h = 00:00Z -> 14 Jul 20:00 EDT
NEW_YORK = [
    ("2027-01-20T12:00:00+00:00", "2027-01-15", "2027-01-14T19:00:00-05:00"),
    ("2027-01-20T12:00:00+00:00", "2027-07-15", "2027-07-14T19:00:00-04:00"),
    ("2027-01-20T12:00:00+00:00", "2027-03-14", "2027-03-13T19:00:00-05:00"),
    ("2027-01-20T12:00:00+00:00", "2027-03-15", "2027-03-14T19:00:00-04:00"),
    ("2027-07-20T12:00:00+00:00", "2027-01-15", "2027-01-14T20:00:00-05:00"),
    ("2027-07-20T12:00:00+00:00", "2027-07-15", "2027-07-14T20:00:00-04:00"),
]


@pytest.mark.parametrize(("now", "day", "expected"), NEW_YORK)
def test_negative_offset_portal_with_dst_renders_dates_as_php_does(now, day, expected):
    with PortalSimulator(profile="realistic", rate_limit=False, time_zone="America/New_York") as sim:
        _portal_clock_at(sim, datetime.fromisoformat(now))
        deal_id = sim.portal.add_deal({"TITLE": "dst", "CLOSEDATE": day})
        got = requests.get(f"{sim.webhook_url}crm.deal.get.json", params={"id": deal_id},
                           timeout=30).json()["result"]
    assert got["CLOSEDATE"] == expected


def test_datetimes_carry_the_offset_in_force_at_that_instant():
    with PortalSimulator(profile="realistic", rate_limit=False, time_zone="America/New_York") as sim:
        _portal_clock_at(sim, datetime.fromisoformat("2027-03-14T06:59:00+00:00"))  # 01:59 EST
        first = sim.portal.add_deal({"TITLE": "before"})
        _portal_clock_at(sim, datetime.fromisoformat("2027-03-14T07:01:00+00:00"))  # 03:01 EDT
        sim.portal.update_deal(first, {"TITLE": "after"})
        deal = sim.portal.get_deal(first)
    assert deal["DATE_CREATE"] == "2027-03-14T01:59:00-05:00"
    assert deal["DATE_MODIFY"] == "2027-03-14T03:01:00-04:00"


def test_cli_accepts_the_profile_and_a_time_zone():
    from deal_monitor.simulator.__main__ import build_parser

    args = build_parser().parse_args(["--profile", "realistic", "--time-zone", "America/New_York",
                                      "--seed", "4"])
    assert (args.profile, args.time_zone, args.seed) == ("realistic", "America/New_York", 4)
