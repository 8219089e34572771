"""Turning scenario results into the flat figures, the target verdicts and the printed table."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import scenarios

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    fs = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        fs = subprocess.run(["stat", "-f", "-c", "%T", tempfile.gettempdir()], capture_output=True,
                            text=True, timeout=5).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "sqlite": sqlite3.sqlite_version,
        "tmp_dir": tempfile.gettempdir(),
        "tmp_fs": fs,
        "executable": sys.executable,
    }


def git_revision() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


def model_text(sizes: scenarios.Sizes) -> list[str]:
    s = scenarios
    return [
        f"portal: simulator in its own process; plan {s.PLAN} (bucket {s.BURST:.0f} burst, "
        f"{s.DRAIN:.0f}/s drain, 503 when full)",
        f"operating budget: {s.OPERATING_LIMIT:.0f} s per method per {s.OPERATING_WINDOW:.0f} s "
        "sliding window (ten slots), real time scale; 429 when exceeded",
        f"server cost per list page: method_costs = {s.METHOD_COSTS} (other methods: the "
        "simulator's defaults); the cost is charged to the budget, not spent as wall time: "
        "pages are served as fast as this machine renders them",
        "each scenario gets a fresh portal, fresh limits and counters, a fresh app data folder; "
        "every run is far shorter than one window, so the only budget a run can meet is one "
        f"window's {s.OPERATING_LIMIT:.0f} s",
        f"resync of N deals: P = ceil(N/{s.PAGE}) pages; fewest requests = ceil(N/"
        f"{s.DEALS_PER_REQUEST}); budget needed = P x {s.LIST_PAGE_COST} s; if that exceeds one "
        f"window the listing must wait (rounds-1) x 0.9 x {s.OPERATING_WINDOW:.0f} s; bucket wait = "
        f"max(0, (requests - {s.BURST:.0f}) / {s.DRAIN:.0f}) s",
        "resync bound = max(limits bound, fetch floor, store floor): fetch floor = a bare client "
        "listing N deals in the fewest requests from the same simulator (JSON decoded, nothing "
        "stored); store floor = N target rows in one executemany",
        "intake floor = waitress with the listener's options + one INSERT and fsync'd commit "
        "(WAL, synchronous=FULL) per POST, no parsing or checks",
        f"sizes: {sizes}",
    ]


def _get(data: dict, *path: str, default: Any = math.nan) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def flatten(results: dict[str, Any]) -> dict[str, Any]:
    """The required flat keys (and a few more) from the scenario results."""
    i = results.get("intake", {})
    f = results.get("freshness", {})
    c = results.get("portal_cost", {})
    small = results.get("resync_small", {})
    large = results.get("resync_large", {})
    d = large.get("desktop", {})
    k = results.get("corruption", {})
    flat: dict[str, Any] = {
        "intake_events_per_s": _get(i, "monitor_saturate", "ok_per_s"),
        "intake_floor_events_per_s": _get(i, "floor_saturate", "ok_per_s"),
        "fsync_floor_commits_per_s": _get(i, "fsync_floor", "commits_per_s"),
        "baseline_intake_events_per_s": _get(i, "baseline_saturate", "ok_per_s"),
        "ack_p50_ms": _get(i, "monitor_fixed", "ack_ms", "p50"),
        "ack_p99_ms": _get(i, "monitor_fixed", "ack_ms", "p99"),
        "ack_ok_share": _ratio(_get(i, "monitor_fixed", "ok"), _get(i, "monitor_fixed", "sent")),
        "floor_ack_p99_ms": _get(i, "floor_fixed", "ack_ms", "p99"),
        "baseline_ack_p50_ms": _get(i, "baseline_fixed", "ack_ms", "p50"),
        "baseline_ack_p99_ms": _get(i, "baseline_fixed", "ack_ms", "p99"),
        "baseline_ack_ok_share": _ratio(_get(i, "baseline_fixed", "ok"), _get(i, "baseline_fixed", "sent")),
        "freshness_p50_ms": _get(f, "monitor", "ms", "p50"),
        "freshness_p99_ms": _get(f, "monitor", "ms", "p99"),
        "baseline_freshness_p50_ms": _get(f, "baseline", "ms", "p50"),
        "baseline_freshness_p99_ms": _get(f, "baseline", "ms", "p99"),
        "baseline_freshness_lost_share": _get(f, "baseline", "lost_share"),
        "requests_per_event_distinct": _get(c, "monitor_distinct", "requests_per_event"),
        "requests_per_event_bursty": _get(c, "monitor_bursty", "requests_per_event"),
        "baseline_requests_per_event_distinct": _get(c, "baseline_distinct", "requests_per_event"),
        "baseline_requests_per_event_bursty": _get(c, "baseline_bursty", "requests_per_event"),
        "baseline_refusals": sum(
            _int(_get(c, f"baseline_{n}", "refusals_503")) for n in ("distinct", "bursty")
        ) if c else math.nan,
        "freshness_lost_share": (0.0 if _get(f, "monitor", "all_titles_match", default=False)
                                 else math.nan),
        "resync_10k_s": _get(small, "seconds"),
        "resync_10k_bound_s": _get(small, "bound", "bound_s"),
        "resync_10k_limits_bound_s": _get(small, "bound", "limits_bound_s"),
        "resync_10k_requests": _get(small, "requests"),
        "resync_10k_listing_s": _get(small, "listing_s"),
        "resync_10k_done_s": _get(small, "done_s"),
        "resync_10k_fewest_requests": _get(small, "bound", "fewest_requests"),
        "resync_100k_s": _get(large, "seconds"),
        "resync_100k_bound_s": _get(large, "bound", "bound_s"),
        "resync_100k_limits_bound_s": _get(large, "bound", "limits_bound_s"),
        "resync_100k_requests": _get(large, "requests"),
        "resync_100k_listing_s": _get(large, "listing_s"),
        "resync_100k_done_s": _get(large, "done_s"),
        "resync_100k_fewest_requests": _get(large, "bound", "fewest_requests"),
        "resync_sizes": [small.get("deals"), large.get("deals")],
        "gui_load_100k_s": _get(d, "load_s"),
        "gui_filter_100k_ms": _get(d, "filter_cold_ms"),
        "gui_filter_typed_max_ms": _get(d, "filter_typed_max_ms"),
        "gui_filter_warm_ms": _get(d, "filter_warm_ms"),
        "gui_rows": _get(d, "rows"),
        "rss_mb": _get(d, "rss_mb"),
        "rss_peak_mb": _get(d, "peak_mb"),
        "baseline_corrupted_rows": _get(k, "baseline", "corrupted"),
        "baseline_missing_deals": _get(k, "baseline", "missing"),
        "monitor_corrupted_rows": _get(k, "monitor", "corrupted"),
    }
    refusals = refusals429 = 0
    counted = False
    for key in ("monitor_saturate", "monitor_fixed"):
        if key in i:
            counted = True
            refusals += _int(_get(i, key, "portal", "refusals_503"))
            refusals429 += _int(_get(i, key, "portal", "refusals_429"))
    if "monitor" in f:
        counted = True
        refusals += _int(_get(f, "monitor", "portal", "refusals_503"))
        refusals429 += _int(_get(f, "monitor", "portal", "refusals_429"))
    for key in ("monitor_distinct", "monitor_bursty"):
        if key in c:
            counted = True
            refusals += _int(_get(c, key, "refusals_503"))
            refusals429 += _int(_get(c, key, "refusals_429"))
    for r in (small, large):
        if r:
            counted = True
            refusals += _int(r.get("refusals_503"))
            refusals429 += _int(r.get("refusals_429"))
    flat["refusals"] = refusals if counted else math.nan
    flat["refusals_429"] = refusals429 if counted else math.nan
    flat["bursty_reduction_x"] = _ratio(flat["baseline_requests_per_event_bursty"],
                                        flat["requests_per_event_bursty"])
    flat["distinct_reduction_x"] = _ratio(flat["baseline_requests_per_event_distinct"],
                                          flat["requests_per_event_distinct"])
    flat["resync_10k_ratio"] = _ratio(flat["resync_10k_s"], flat["resync_10k_bound_s"])
    flat["resync_100k_ratio"] = _ratio(flat["resync_100k_s"], flat["resync_100k_bound_s"])
    return flat


def _int(value: Any) -> int:
    try:
        return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)
    except (TypeError, ValueError):
        return 0


def _ratio(a: Any, b: Any) -> float:
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return math.nan
    if math.isnan(a) or math.isnan(b) or b == 0:
        return math.inf if b == 0 and a > 0 else math.nan
    return a / b


TARGETS = [
    # key, comparison, limit, label
    ("ack_p99_ms", "<", 20.0, "ack p99 < 20 ms at the offered load"),
    ("bursty_reduction_x", ">=", 40.0, ">= 40x fewer requests than the seed on bursty updates"),
    ("refusals", "==", 0, "no 503 refusals caused by the app"),
    ("resync_10k_ratio", "<=", 1.2, "resync (small) within 1.2x of the bound"),
    ("resync_100k_ratio", "<=", 1.2, "resync (large) within 1.2x of the bound"),
    ("gui_filter_100k_ms", "<", 100.0, "filter of the loaded deals < 100 ms"),
    ("rss_mb", "<", 250.0, "whole app < 250 MB RSS with the loaded deals"),
]


def verdicts(flat: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, op, limit, label in TARGETS:
        value = flat.get(key, math.nan)
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if math.isnan(v):
            met = None
        elif op == "<":
            met = v < limit
        elif op == "<=":
            met = v <= limit
        elif op == ">=":
            met = v >= limit
        else:
            met = v == limit
        if met is None or met:
            miss = None
        elif op in ("<", "<="):
            miss = f"{v / limit:.2f}x the limit" if limit else f"{v:g} over"
        elif op == ">=":
            miss = f"{limit / v:.2f}x short" if v else "no reduction"
        else:
            miss = f"{v:g} instead of {limit:g}"
        out.append({"key": key, "target": f"{op} {limit:g}", "label": label, "value": value,
                    "met": met, "miss": miss})
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf"
        if abs(value) >= 100 or digits == 0:
            return f"{value:,.0f}"
        if abs(value) < 0.1 and value:
            return f"{value:.4f}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(flat: dict[str, Any], sizes: scenarios.Sizes) -> str:
    small, large = (flat.get("resync_sizes") or [None, None])[:2]
    rows = [
        ("intake, events/s (closed loop)", flat["intake_events_per_s"],
         flat["baseline_intake_events_per_s"], flat["intake_floor_events_per_s"], ""),
        (f"ack p50 ms @ {sizes.intake_rate:g}/s", flat["ack_p50_ms"], flat["baseline_ack_p50_ms"],
         None, ""),
        (f"ack p99 ms @ {sizes.intake_rate:g}/s", flat["ack_p99_ms"], flat["baseline_ack_p99_ms"],
         flat["floor_ack_p99_ms"], "< 20"),
        ("  answered 200, share", flat["ack_ok_share"], flat["baseline_ack_ok_share"], None, ""),
        (f"freshness p50 ms @ {sizes.fresh_rate:g}/s", flat["freshness_p50_ms"],
         flat["baseline_freshness_p50_ms"], None, ""),
        (f"freshness p99 ms @ {sizes.fresh_rate:g}/s", flat["freshness_p99_ms"],
         flat["baseline_freshness_p99_ms"], None, ""),
        ("  events lost, share", flat["freshness_lost_share"], flat["baseline_freshness_lost_share"],
         None, ""),
        (f"requests/event, {sizes.distinct} distinct", flat["requests_per_event_distinct"],
         flat["baseline_requests_per_event_distinct"], 1 / scenarios.BATCH, ""),
        (f"requests/event, {sizes.bursty_deals}x{sizes.bursty_updates} bursty",
         flat["requests_per_event_bursty"], flat["baseline_requests_per_event_bursty"],
         1 / (sizes.bursty_updates * max(1, sizes.bursty_deals)) * math.ceil(sizes.bursty_deals / scenarios.BATCH),
         ">= 40x fewer"),
        ("  reduction vs seed (bursty), x", flat["bursty_reduction_x"], None, None, ">= 40"),
        ("503 refusals caused", flat["refusals"], flat["baseline_refusals"], 0, "0"),
        (f"resync {small} deals, s", flat["resync_10k_s"], None, flat["resync_10k_bound_s"], "<= 1.2x bound"),
        ("  requests", flat["resync_10k_requests"], None, flat["resync_10k_fewest_requests"], ""),
        ("  listing finished, s", flat["resync_10k_listing_s"], None, None, ""),
        ("  bookkeeping done, s", flat["resync_10k_done_s"], None, None, ""),
        (f"resync {large} deals, s", flat["resync_100k_s"], None, flat["resync_100k_bound_s"], "<= 1.2x bound"),
        ("  requests", flat["resync_100k_requests"], None, flat["resync_100k_fewest_requests"], ""),
        ("  listing finished, s", flat["resync_100k_listing_s"], None, None, ""),
        ("  bookkeeping done, s", flat["resync_100k_done_s"], None, None, ""),
        (f"desktop load {flat.get('gui_rows')} deals, s", flat["gui_load_100k_s"], None, None, ""),
        ("desktop filter, first key, ms", flat["gui_filter_100k_ms"], None, None, "< 100"),
        ("desktop filter, typing, worst key, ms", flat["gui_filter_typed_max_ms"], None, None, ""),
        ("whole app RSS, MB (peak)", flat["rss_mb"], None, flat["rss_peak_mb"], "< 250"),
        ("rows corrupted, deals 1 and 10..19", flat["monitor_corrupted_rows"],
         flat["baseline_corrupted_rows"], 0, "0"),
    ]
    header = ("figure", "app", "seed", "bound/floor", "target")
    widths = [max(len(str(r[0])) for r in rows + [header]), 12, 12, 12, 14]
    lines = ["  ".join(h.ljust(w) if n == 0 else h.rjust(w) for n, (h, w) in enumerate(zip(header, widths, strict=True)))]
    lines.append("-" * (sum(widths) + 8))
    for label, app, seed, bound, target in rows:
        cells = [label, _fmt(app, 3 if isinstance(app, float) and abs(app) < 1 else 1), _fmt(seed),
                 _fmt(bound, 3 if isinstance(bound, float) and abs(bound) < 1 else 1), target]
        lines.append("  ".join(c.ljust(w) if n == 0 else c.rjust(w) for n, (c, w) in enumerate(zip(cells, widths, strict=True))))
    return "\n".join(lines)
