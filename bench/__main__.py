"""``python -m bench`` runs every benchmark; ``--quick`` is the short CI smoke version.

Prints the model, a table (app | seed | bound/floor | target) and the target verdicts, and
writes ``bench/results/<date>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import connect, loadgen, report, scenarios, simhost
from .harness import MachineLoad, quiet_logging

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = ("intake", "freshness", "connect", "cost", "resync", "resync_large", "corruption")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, same code paths (~1 min)")
    parser.add_argument("--only", nargs="+", choices=STEPS,
                        help="run only these scenarios ('resync' runs both sizes)")
    parser.add_argument("--skip", nargs="+", choices=STEPS, default=[],
                        help="leave these out (e.g. resync_large when there is no time for it)")
    parser.add_argument("--no-desktop", action="store_true", help="skip the desktop figure")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/<date>.json)")
    return parser


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    sizes = scenarios.QUICK if args.quick else scenarios.FULL
    chosen = list(args.only or STEPS)
    if "resync" in chosen and "resync_large" not in chosen:
        chosen.append("resync_large")  # 'resync' means both sizes
    steps = [s for s in chosen if s not in args.skip]
    started = time.monotonic()
    quiet_logging()
    print("Deal Monitor benchmarks" + (" (--quick)" if args.quick else ""), flush=True)
    for line in report.model_text(sizes):
        print(f"  model: {line}", flush=True)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    noise: dict[str, dict[str, float]] = {}
    git = report.git_revision()  # the code measured: taken before the run writes anything
    stamp = datetime.now(UTC)
    out = args.out or RESULTS / f"{stamp.strftime('%Y-%m-%d')}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(complete: bool) -> dict[str, Any]:
        """Write the results so far (after every step: a run stopped early keeps its figures)."""
        flat = report.flatten(results, sizes)
        document = {
            "date": stamp.isoformat(timespec="seconds"),
            "quick": bool(args.quick),
            "complete": complete,
            "seconds": time.monotonic() - started,
            "machine": report.machine(),
            "git": git,
            "model": report.model_text(sizes),
            "sizes": asdict(sizes),
            "steps": steps,
            **flat,
            "targets": report.verdicts(flat, quick=args.quick),
            "machine_noise": noise,
            "details": results,
            "errors": errors,
        }
        out.write_text(json.dumps(_json_safe(document), indent=2, ensure_ascii=False, default=str),
                       encoding="utf-8")
        return document

    def step(name: str, fn, *fn_args, **fn_kwargs) -> None:
        load = MachineLoad()
        print(f"- {name} ...", end="", flush=True)
        try:
            results[name] = fn(*fn_args, **fn_kwargs)
        except Exception as exc:  # keep going: one broken scenario must not hide the rest
            errors[name] = f"{type(exc).__name__}: {exc}"
            print(f" FAILED: {errors[name]}", flush=True)
            traceback.print_exc()
        noise[name] = load.finish()
        busy = noise[name]["foreign_share"]
        warn = "  <- other processes were busy: timings are disturbed" if busy > 0.10 else ""
        if name not in errors:
            print(f" {noise[name]['seconds']:.1f} s (other processes used {busy:.0%} of the "
                  f"machine){warn}", flush=True)
        save(complete=False)

    try:
        if "intake" in steps:
            step("intake", scenarios.intake, sizes)
        if "freshness" in steps:
            step("freshness", scenarios.freshness, sizes)
        if "connect" in steps:
            step("connect", connect.connect, sizes)
        if "cost" in steps:
            step("portal_cost", scenarios.portal_cost, sizes)
        if "resync" in steps:
            step("resync_small", scenarios.resync, sizes.resync_small)
        if "corruption" in steps:
            step("corruption", scenarios.corruption)
        if "resync_large" in steps:  # the longest, last: a run cut short keeps the rest
            step("resync_large", scenarios.resync, sizes.resync_large,
                 with_desktop=sizes.desktop and not args.no_desktop)
    finally:
        loadgen.shutdown()
        simhost.shutdown()

    document = save(complete=True)
    flat = report.flatten(results, sizes)
    verdicts = document["targets"]
    print()
    print(report.table(flat, asdict(sizes)))
    print()
    for v in verdicts:
        state = "n/a " if v["met"] is None else ("MET " if v["met"] else "MISS")
        extra = f" ({v['miss']})" if v["miss"] else ""
        print(f"  [{state}] {v['label']}: {report._fmt(v['value'], 2)} {v['target']}{extra}")
    print(f"\nwrote {out} ({document['seconds']:.0f} s); README table: python -m bench.report --readme {out}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
