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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import loadgen, report, scenarios, simhost
from .harness import MachineLoad, quiet_logging

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = ("intake", "freshness", "cost", "resync", "corruption")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, same code paths (~1 min)")
    parser.add_argument("--only", nargs="+", choices=STEPS, help="run only these scenarios")
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
    steps = args.only or list(STEPS)
    started = time.monotonic()
    quiet_logging()
    print("Deal Monitor benchmarks" + (" (--quick)" if args.quick else ""), flush=True)
    for line in report.model_text(sizes):
        print(f"  model: {line}", flush=True)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    noise: dict[str, dict[str, float]] = {}

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

    try:
        if "intake" in steps:
            step("intake", scenarios.intake, sizes)
        if "freshness" in steps:
            step("freshness", scenarios.freshness, sizes)
        if "cost" in steps:
            step("portal_cost", scenarios.portal_cost, sizes)
        if "resync" in steps:
            step("resync_small", scenarios.resync, sizes.resync_small)
            step("resync_large", scenarios.resync, sizes.resync_large,
                 with_desktop=sizes.desktop and not args.no_desktop)
        if "corruption" in steps:
            step("corruption", scenarios.corruption)
    finally:
        loadgen.shutdown()
        simhost.shutdown()

    flat = report.flatten(results)
    verdicts = report.verdicts(flat)
    now = datetime.now(UTC)
    document = {
        "date": now.isoformat(timespec="seconds"),
        "quick": bool(args.quick),
        "seconds": time.monotonic() - started,
        "machine": report.machine(),
        "git": report.git_revision(),
        "model": report.model_text(sizes),
        **flat,
        "targets": verdicts,
        "machine_noise": noise,
        "details": results,
        "errors": errors,
    }
    out = args.out or RESULTS / f"{now.strftime('%Y-%m-%d')}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json_safe(document), indent=2, ensure_ascii=False, default=str),
                   encoding="utf-8")

    print()
    print(report.table(flat, sizes))
    print()
    for v in verdicts:
        state = "n/a " if v["met"] is None else ("MET " if v["met"] else "MISS")
        extra = f" ({v['miss']})" if v["miss"] else ""
        print(f"  [{state}] {v['label']}: {report._fmt(v['value'], 2)} {v['target']}{extra}")
    print(f"\nwrote {out} ({document['seconds']:.0f} s)")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
