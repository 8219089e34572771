"""Soak: steady events with random faults for a long time; RSS, inbox depth and latency must
stay flat. ``python -m bench.soak --minutes 60`` (a bench, not a CI test: it prints figures).

The portal simulator (in this process) changes deals at a steady rate and posts the real
events to the app's listener; every ``--fault-every`` seconds one random fault is injected
(503 burst, 500, HTML page, dropped connection, stalled answer). Every ``--sample`` seconds a
probe deal is changed and the time until the target holds the change is measured, next to the
process RSS and the inbox depth. The summary compares the first and the last third of the run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from deal_monitor.simulator import PortalSimulator

from .harness import listener_url, monitor_settings, quiet_logging, rss_mb, running_monitor


def _fault(sim: PortalSimulator, rng: random.Random) -> str:
    kind = rng.choice(["503", "500", "html", "drop", "stall"])
    if kind == "503":
        sim.faults.fail_next(5, status=503)
    elif kind == "500":
        sim.faults.fail_next(2, status=500)
    elif kind == "html":
        sim.faults.fail_next(2, status=502, html=True)
    elif kind == "drop":
        sim.faults.drop_next(2)
    else:
        sim.faults.stall_next(1, seconds=3.0)
    return kind


def _changer(sim: PortalSimulator, ids: list[int], rate: float, stop: threading.Event,
             rng: random.Random) -> None:
    stages = ["PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE", "WON"]
    n = 0
    while not stop.wait(1.0 / rate):
        n += 1
        sim.portal.update_deal(rng.choice(ids), {"STAGE_ID": rng.choice(stages),
                                                  "OPPORTUNITY": f"{rng.randint(1, 10**6)}.00"})


def run(minutes: float, rate: float, sample: float, fault_every: float, seed: int) -> int:
    rng = random.Random(seed)
    quiet_logging()
    samples: list[tuple[float, float, int, float]] = []  # t, rss MB, inbox depth, latency s
    faults: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, PortalSimulator() as sim:
        ids = [sim.portal.add_deal({"TITLE": f"Soak {n}", "STAGE_ID": "EXECUTING"})
               for n in range(200)]
        probe = sim.portal.add_deal({"TITLE": "probe 0", "STAGE_ID": "EXECUTING"})
        settings = monitor_settings(
            {"webhook_url": sim.webhook_url, "application_token": sim.application_token,
             "member_id": sim.member_id},
            Path(tmp), sync={"reconcile_minutes": 5},
        )
        with running_monitor(settings) as monitor:
            sim.add_outgoing_webhook(listener_url(monitor))
            stop = threading.Event()
            changer = threading.Thread(target=_changer, args=(sim, ids, rate, stop, rng),
                                       daemon=True)
            changer.start()
            started = time.monotonic()
            next_fault = started + fault_every
            n = 0
            print(f"soak: {minutes:g} min, {rate:g} changes/s, a fault every {fault_every:g} s")
            print(f"{'t, s':>7} {'RSS, MB':>8} {'inbox':>6} {'latency, s':>11}")
            try:
                while time.monotonic() - started < minutes * 60:
                    if time.monotonic() >= next_fault:
                        faults.append(_fault(sim, rng))
                        next_fault += fault_every
                    n += 1
                    title = f"probe {n}"
                    changed = time.monotonic()
                    sim.portal.update_deal(probe, {"TITLE": title})
                    latency = float("nan")
                    deadline = changed + max(sample, 60.0)
                    while time.monotonic() < deadline:
                        view = monitor.state.deal(probe)
                        if view is not None and view.title == title:
                            latency = time.monotonic() - changed
                            break
                        time.sleep(0.05)
                    t = time.monotonic() - started
                    row = (t, rss_mb()["rss_mb"], monitor.status().inbox_depth, latency)
                    samples.append(row)
                    print(f"{row[0]:7.0f} {row[1]:8.1f} {row[2]:6d} {row[3]:11.2f}", flush=True)
                    time.sleep(max(0.0, sample - (time.monotonic() - changed)))
            finally:
                stop.set()
                changer.join(5)
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]

    def med(rows, i):
        values = [r[i] for r in rows if r[i] == r[i]]
        return statistics.median(values) if values else float("nan")

    print(f"faults injected: {len(faults)} ({', '.join(sorted(set(faults)))})")
    for name, i in (("RSS, MB", 1), ("inbox depth", 2), ("latency, s", 3)):
        print(f"{name:>12}: first third {med(first, i):8.2f}   last third {med(last, i):8.2f}")
    lost = sum(1 for r in samples if r[3] != r[3])
    print(f"probe changes not seen within 60 s: {lost} of {len(samples)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=5.0, help="deal changes per second")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between probes")
    parser.add_argument("--fault-every", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return run(args.minutes, args.rate, args.sample, args.fault_every, args.seed)


if __name__ == "__main__":
    sys.exit(main())
