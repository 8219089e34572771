"""Run the portal simulator standalone: ``python -m deal_monitor.simulator --port 8085``.

Prints the inbound webhook URL and the application token, then serves until Ctrl+C
(or SIGTERM).
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
from collections.abc import Sequence

from .activity import seed
from .profile import PROFILES
from .simulator import PortalSimulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deal_monitor.simulator",
                                     description="Bitrix24 portal simulator")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--deals", type=int, default=200, help="deals to create at start")
    parser.add_argument("--demo", action="store_true", help="keep creating and moving deals")
    parser.add_argument("--interval", type=float, default=3.0, help="demo tick in seconds")
    parser.add_argument("--handler", action="append", default=[],
                        help="outgoing webhook handler URL for deal events (repeatable)")
    parser.add_argument("--utc-offset", default=None, help="portal time zone offset (default +03:00)")
    parser.add_argument("--time-zone", default=None,
                        help="portal time zone, IANA name or offset (overrides --utc-offset)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default",
                        help="default: instant; realistic: server latency, delayed/reordered/"
                             "duplicated events, PHP-rendered dates")
    parser.add_argument("--plan", choices=("standard", "enterprise"), default="standard")
    parser.add_argument("--no-rate-limit", action="store_true", help="disable the 503 bucket")
    parser.add_argument("--webhook-secret", default=None, help="fixed inbound webhook secret")
    parser.add_argument("--application-token", default=None, help="fixed application token")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for demo data and the profile's draws")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sim = PortalSimulator(plan=args.plan, rate_limit=not args.no_rate_limit,
                          utc_offset=args.utc_offset, webhook_secret=args.webhook_secret,
                          application_token=args.application_token, profile=args.profile,
                          seed=args.seed, time_zone=args.time_zone)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sim.start(host=args.host, port=args.port)
    try:
        seed(sim.portal, max(args.deals, 0), random.Random(args.seed))
        for url in args.handler:
            sim.add_outgoing_webhook(url)
        if args.demo:
            sim.start_activity(interval=args.interval, seed=args.seed)
        print(f"Bitrix24 portal simulator: {sim.url}", flush=True)
        print(f"Inbound webhook URL: {sim.webhook_url}", flush=True)
        print(f"Application token: {sim.application_token}", flush=True)
        print(f"Member id: {sim.member_id}", flush=True)
        print(f"Profile: {sim.profile.name}; time zone: {args.time_zone or args.utc_offset or sim.profile.time_zone}",
              flush=True)
        print(f"Deals: {len(sim.portal)}; outgoing handlers: {len(args.handler)}; "
              f"demo: {'on' if args.demo else 'off'}. Ctrl+C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
