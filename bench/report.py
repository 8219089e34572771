"""Turning scenario results into the flat figures, the target verdicts and the printed table."""

from __future__ import annotations

import argparse
import contextlib
import json
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
SHARED = ("machine shared with other engineers' sessions (2 cores): each step's machine_noise "
          "says how much of it others used")


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
        "shared": SHARED,
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
        f"portal: simulator in its own process, profile '{s.PROFILE}' (seed {s.SEED}): server time "
        "per call drawn per method (crm.deal.get 80-250 ms, list page 0.2-0.6 s + ~21 us per "
        "skipped start row, others 30-120 ms), really spent, reported in the time block and "
        "charged to the operating budget; batch = sum of its commands (<= 60 s); 10-40 ms "
        "network per request; events from 3 senders, each 0.1-3 s after the change (reordered), "
        "3 % sent twice; dates rendered as PHP ConvertDate does",
        f"limits: plan {s.PLAN} (bucket {s.BURST:.0f} burst, {s.DRAIN:.0f}/s drain, 503 when full); "
        f"operating budget {s.OPERATING_LIMIT:.0f} s per method per {s.OPERATING_WINDOW:.0f} s "
        "sliding window (ten slots), real time scale; 429 when exceeded",
        "each scenario gets a fresh portal, fresh limits and counters, a fresh app data folder",
        "freshness: from the change on the portal (its commit) to the row (app: synced_at; seed: "
        "its commit), through the portal's delayed delivery; steady = Poisson changes of distinct "
        "deals at the given rate; storm = distinct deals changed back to back; a deal whose row "
        "never shows its change is lost (counted)",
        "seed: rebuilt from the article (bench/baseline.py): ONCRMDEALUPDATE only, crm.deal.get "
        "per event inside the request, the seed preset's columns into MariaDB with "
        "WHERE name LIKE 'Сделка №<id>%'; intake given as its own speed (portal never refuses) "
        "and as what it keeps under the bucket after the burst (second half of the run)",
        f"resync of N deals: P = ceil(N/{s.PAGE}) keyset pages chained in batches of {s.BATCH}; "
        "floor = a bare client listing the same N deals from the same portal with fresh limits "
        "(waits out 503/429, decodes JSON, stores nothing); model = P x mean page time + network "
        f"+ ({s.OPERATING_WINDOW:.0f} - {s.OPERATING_LIMIT:.0f}) s if the pages need more than one "
        "window's budget; store floor = N rows in one executemany",
        "ways in (connect): each mode's own app and portal; distinct deals changed as a Poisson "
        f"process at {sizes.connect_rate:g}/s for {sizes.connect_seconds:g} s, freshness to the "
        f"row's synced_at; then {sizes.connect_idle_seconds:g} s left alone, requests counted by "
        "the portal (scheduled reconciliation off: it costs every mode the same)",
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


def flatten(results: dict[str, Any], sizes: scenarios.Sizes | dict[str, Any]) -> dict[str, Any]:
    """The flat figures. Resync figures carry the size they ran (``resync_10k_s`` on a full
    run, ``resync_500_s`` on ``--quick``), so a quick run never fills a full run's names."""
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
        "baseline_intake_own_events_per_s": _get(i, "baseline_own_saturate", "ok_per_s"),
        "baseline_intake_lossless_events_per_s": _get(i, "baseline_saturate", "ok_per_s_second_half"),
        "ack_p50_ms": _get(i, "monitor_fixed", "ack_ms", "p50"),
        "ack_p99_ms": _get(i, "monitor_fixed", "ack_ms", "p99"),
        "ack_ok_share": _ratio(_get(i, "monitor_fixed", "ok"), _get(i, "monitor_fixed", "sent")),
        "floor_ack_p99_ms": _get(i, "floor_fixed", "ack_ms", "p99"),
        "baseline_ack_p50_ms": _get(i, "baseline_fixed", "ack_ms", "p50"),
        "baseline_ack_p99_ms": _get(i, "baseline_fixed", "ack_ms", "p99"),
        "baseline_ack_ok_share": _ratio(_get(i, "baseline_fixed", "ok"), _get(i, "baseline_fixed", "sent")),
        "requests_per_event_distinct": _get(c, "monitor_distinct", "requests_per_event"),
        "requests_per_event_bursty": _get(c, "monitor_bursty", "requests_per_event"),
        "baseline_requests_per_event_distinct": _get(c, "baseline_distinct", "requests_per_event"),
        "baseline_requests_per_event_bursty": _get(c, "baseline_bursty", "requests_per_event"),
        "cost_deals_final_share": _ratio(
            sum(_int(_get(c, f"monitor_{n}", "deals_current_in_target")) for n in ("distinct", "bursty")),
            sum(_int(_get(c, f"monitor_{n}", "deals")) for n in ("distinct", "bursty"))) if c else math.nan,
        "baseline_cost_deals_final_share": _ratio(
            sum(_int(_get(c, f"baseline_{n}", "deals_current_in_target")) for n in ("distinct", "bursty")),
            sum(_int(_get(c, f"baseline_{n}", "deals")) for n in ("distinct", "bursty"))) if c else math.nan,
        "baseline_refusals": sum(
            _int(_get(c, f"baseline_{n}", "refusals_503")) for n in ("distinct", "bursty")
        ) if c else math.nan,
        "resync_sizes": [small.get("deals"), large.get("deals")],
        "gui_load_s": _get(d, "load_s"),
        "gui_filter_ms": _get(d, "filter_cold_ms"),
        "gui_filter_typed_max_ms": _get(d, "filter_typed_max_ms"),
        "gui_filter_warm_ms": _get(d, "filter_warm_ms"),
        "gui_rows": _get(d, "rows"),
        "rss_mb": _get(d, "rss_mb"),
        "rss_peak_mb": _get(d, "peak_mb"),
        "baseline_corrupted_rows": _get(k, "baseline", "corrupted"),
        "baseline_missing_deals": _get(k, "baseline", "missing"),
        "monitor_corrupted_rows": _get(k, "monitor", "corrupted"),
    }
    for who, prefix in (("monitor", ""), ("baseline", "baseline_")):
        for mode in ("steady", "storm"):
            flat[f"{prefix}freshness_{mode}_p50_ms"] = _get(f, f"{who}_{mode}", "ms", "p50")
            flat[f"{prefix}freshness_{mode}_p99_ms"] = _get(f, f"{who}_{mode}", "ms", "p99")
            flat[f"{prefix}freshness_{mode}_lost_share"] = _get(f, f"{who}_{mode}", "lost_share")
    for run in (small, large):
        if not run:
            continue
        name = scenarios.size_name(run.get("deals"))
        flat.update({
            f"resync_{name}_s": _get(run, "seconds"),
            f"resync_{name}_bound_s": _get(run, "bound", "bound_s"),
            f"resync_{name}_model_s": _get(run, "bound", "model_s"),
            f"resync_{name}_requests": _get(run, "requests"),
            f"resync_{name}_listing_s": _get(run, "listing_s"),
            f"resync_{name}_done_s": _get(run, "done_s"),
            f"resync_{name}_fewest_requests": _get(run, "bound", "fewest_requests"),
            f"resync_{name}_refusals_429": _get(run, "refusals_429"),
            f"resync_{name}_ratio": _ratio(_get(run, "seconds"), _get(run, "bound", "bound_s")),
        })
    cn = results.get("connect", {})
    for mode in CONNECT_MODES:
        node = cn.get(mode, {})
        flat.update({
            f"connect_{mode}_p50_ms": _get(node, "ms", "p50"),
            f"connect_{mode}_p99_ms": _get(node, "ms", "p99"),
            f"connect_{mode}_lost_share": _get(node, "lost_share"),
            f"connect_{mode}_requests_per_change": _get(node, "requests_per_change"),
            f"connect_{mode}_idle_per_hour": _get(node, "idle_requests_per_hour"),
            f"connect_{mode}_idle_per_poll": _get(node, "idle_requests_per_poll", default=math.nan),
        })
    refusals = refusals429 = 0
    counted = False
    for key in ("monitor_saturate", "monitor_fixed"):
        if key in i:
            counted = True
            refusals += _int(_get(i, key, "portal", "refusals_503"))
            refusals429 += _int(_get(i, key, "portal", "refusals_429"))
    for key in ("monitor_steady", "monitor_storm", "monitor_distinct", "monitor_bursty"):
        node = f.get(key) or c.get(key)
        if node:
            counted = True
            refusals += _int(node.get("refusals_503"))
            refusals429 += _int(node.get("refusals_429"))
    for mode in CONNECT_MODES:
        if mode in cn:
            counted = True
            refusals += _int(cn[mode].get("refusals_503"))
            refusals429 += _int(cn[mode].get("refusals_429"))
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


# the ways in (bench/connect.py): mode -> (label, poll interval in s or None)
CONNECT = {
    "pull_2s": ("pull mode (webhook only), 2 s poll", 2.0),
    "pull_10s": ("pull mode (webhook only), 10 s poll", 10.0),
    "offline_2s": ("offline events (OAuth app), 2 s poll", 2.0),
    "push": ("public address (events pushed)", None),
}
CONNECT_MODES = tuple(CONNECT)

TARGETS = [
    # key, comparison, limit, label
    ("ack_p99_ms", "<", 20.0, "ack p99 < 20 ms at the offered load"),
    ("freshness_steady_lost_share", "==", 0, "no change lost at a steady rate"),
    ("freshness_storm_lost_share", "==", 0, "no change lost in a storm"),
    ("bursty_reduction_x", ">=", 40.0, ">= 40x fewer requests than the seed on bursty updates"),
    ("refusals", "==", 0, "no 503 refusals caused by the app"),
    ("resync_10k_ratio", "<=", 1.1, "resync of 10k deals within 1.1x of the portal-bound floor"),
    ("resync_100k_ratio", "<=", 1.1, "resync of 100k deals within 1.1x of the portal-bound floor"),
    ("gui_filter_ms", "<", 100.0, "filter of the loaded deals < 100 ms"),
    ("rss_mb", "<", 250.0, "whole app < 250 MB RSS with the loaded deals"),
    ("connect_pull_2s_p50_ms", "<=", 3000.0, "pull mode, 2 s poll: freshness p50 <= poll + 1 s"),
    ("connect_pull_10s_p50_ms", "<=", 11000.0, "pull mode, 10 s poll: freshness p50 <= poll + 1 s"),
    ("connect_pull_2s_idle_per_poll", "<=", 1.0, "pull mode idle: <= 1 request per poll"),
    ("connect_pull_10s_idle_per_poll", "<=", 1.0, "pull mode idle (10 s): <= 1 request per poll"),
    ("connect_offline_2s_idle_per_poll", "<=", 1.0, "offline events idle: <= 1 request per poll"),
    ("connect_pull_2s_lost_share", "==", 0, "pull mode: no change lost"),
    ("connect_offline_2s_lost_share", "==", 0, "offline events: no change lost"),
]
QUICK_NOTE = "--quick: sizes too small for a verdict"


def verdicts(flat: dict[str, Any], quick: bool = False) -> list[dict[str, Any]]:
    """MET/MISSED per target; none on a quick run (its sizes are not the targets' sizes)."""
    out = []
    for key, op, limit, label in TARGETS:
        value = flat.get(key, math.nan)
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if quick or math.isnan(v):
            met = None
        elif op == "<":
            met = v < limit
        elif op == "<=":
            met = v <= limit
        elif op == ">=":
            met = v >= limit
        else:
            met = v == limit
        if quick:
            miss = QUICK_NOTE
        elif met is None or met:
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


def _verdict_marks(document: dict[str, Any]) -> dict[str, str]:
    marks = {}
    for v in document.get("targets", []):
        marks[v["key"]] = "" if v["met"] is None else (" ✔" if v["met"] else " ✘")
    return marks


def rows(flat: dict[str, Any], sizes: dict[str, Any], marks: dict[str, str] | None = None) -> list[tuple]:
    """(label, app, seed, bound/floor, target) for the table; sizes as the run had them."""
    marks = marks or {}
    rate, fresh = sizes["intake_rate"], sizes["fresh_rate"]
    out: list[tuple] = [
        ("intake, events/s (closed loop, durable commit before 200)", flat["intake_events_per_s"],
         flat["baseline_intake_own_events_per_s"], flat["intake_floor_events_per_s"], ""),
        ("  seed under the bucket, steady (after the burst), events/s", None,
         flat["baseline_intake_lossless_events_per_s"], scenarios.DRAIN, ""),
        (f"ack p50 ms @ {rate:g}/s", flat["ack_p50_ms"], flat["baseline_ack_p50_ms"], None, ""),
        (f"ack p99 ms @ {rate:g}/s", flat["ack_p99_ms"], flat["baseline_ack_p99_ms"],
         flat["floor_ack_p99_ms"], "< 20" + marks.get("ack_p99_ms", "")),
        ("  answered 200, share", flat["ack_ok_share"], flat["baseline_ack_ok_share"], None, ""),
        (f"freshness from the change, p50 / p99 s @ {fresh:g}/s",
         _pair(flat["freshness_steady_p50_ms"], flat["freshness_steady_p99_ms"]),
         _pair(flat["baseline_freshness_steady_p50_ms"], flat["baseline_freshness_steady_p99_ms"]), None, ""),
        ("  changes lost at that rate, share", flat["freshness_steady_lost_share"],
         flat["baseline_freshness_steady_lost_share"], None,
         "0" + marks.get("freshness_steady_lost_share", "")),
        (f"freshness from the change, p50 / p99 s, storm of {sizes['storm']}",
         _pair(flat["freshness_storm_p50_ms"], flat["freshness_storm_p99_ms"]),
         _pair(flat["baseline_freshness_storm_p50_ms"], flat["baseline_freshness_storm_p99_ms"]), None, ""),
        ("  changes lost in the storm, share", flat["freshness_storm_lost_share"],
         flat["baseline_freshness_storm_lost_share"], None, "0" + marks.get("freshness_storm_lost_share", "")),
        (f"requests/event, {sizes['distinct']} distinct", flat["requests_per_event_distinct"],
         flat["baseline_requests_per_event_distinct"], 1 / scenarios.BATCH, ""),
        (f"requests/event, {sizes['bursty_deals']}x{sizes['bursty_updates']} bursty",
         flat["requests_per_event_bursty"], flat["baseline_requests_per_event_bursty"],
         math.ceil(sizes["bursty_deals"] / scenarios.BATCH) / (sizes["bursty_updates"] * max(1, sizes["bursty_deals"])),
         ">= 40x fewer" + marks.get("bursty_reduction_x", "")),
        ("  deals at their final version, share", flat["cost_deals_final_share"],
         flat["baseline_cost_deals_final_share"], None, ""),
        ("503 refusals caused", flat["refusals"], flat["baseline_refusals"], 0, "0" + marks.get("refusals", "")),
    ]
    for n in flat.get("resync_sizes") or []:
        if not n:
            continue
        name = scenarios.size_name(n)
        out += [
            (f"resync {n:,} deals, s (requests)", _with(flat.get(f"resync_{name}_s"), flat.get(f"resync_{name}_requests")),
             None, _with(flat.get(f"resync_{name}_bound_s"), flat.get(f"resync_{name}_fewest_requests")),
             "<= 1.1x floor" + marks.get(f"resync_{name}_ratio", "")),
            ("  ratio to the floor / model floor, s", _ratio_text(flat.get(f"resync_{name}_ratio")), None,
             flat.get(f"resync_{name}_model_s"), ""),
        ]
    if not _nan(flat.get("gui_load_s")):
        out += [
            (f"desktop load {flat.get('gui_rows')} deals, s", flat["gui_load_s"], None, None, ""),
            ("desktop filter, first key / worst key, ms", _pair(flat["gui_filter_ms"], flat["gui_filter_typed_max_ms"], 1),
             None, None, "< 100" + marks.get("gui_filter_ms", "")),
            ("whole app RSS, MB (peak)", flat["rss_mb"], None, flat["rss_peak_mb"], "< 250" + marks.get("rss_mb", "")),
        ]
    for mode, (label, interval) in CONNECT.items():
        if _nan(flat.get(f"connect_{mode}_p50_ms")):
            continue
        rate = sizes.get("connect_rate", math.nan)
        fresh_target = f"p50 <= {interval + 1:g}" if interval and mode.startswith("pull") else ""
        out += [
            (f"{label}: freshness p50 / p99 s @ {rate:g}/s",
             _pair(flat[f"connect_{mode}_p50_ms"], flat[f"connect_{mode}_p99_ms"]), None, interval,
             fresh_target + marks.get(f"connect_{mode}_p50_ms", "")),
            ("  requests per change / per hour idle (per poll)",
             f"{_fmt(flat[f'connect_{mode}_requests_per_change'], 2)} / "
             f"{_fmt(flat[f'connect_{mode}_idle_per_hour'], 0)}"
             + (f" ({_fmt(flat[f'connect_{mode}_idle_per_poll'], 2)})" if interval else ""),
             None, 3600 / interval if interval else 0,
             ("<= 1 per poll" if interval else "") + marks.get(f"connect_{mode}_idle_per_poll", "")),
            ("  changes lost, share", flat[f"connect_{mode}_lost_share"], None, None,
             "0" + marks.get(f"connect_{mode}_lost_share", "")),
        ]
    out.append(("rows corrupted (deals 1 and 10..19)", flat["monitor_corrupted_rows"],
                flat["baseline_corrupted_rows"], 0, "0"))
    return out


def _ratio_text(value: Any) -> str:
    return "-" if _nan(value) else f"{value:.3f}x"


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pair(a: Any, b: Any, scale: float = 1000.0) -> str:
    """Two figures as 'a / b' (ms shown in s by default)."""
    if _nan(a) and _nan(b):
        return "-"
    return f"{_fmt(a / scale if not _nan(a) else a, 2)} / {_fmt(b / scale if not _nan(b) else b, 2)}"


def _with(value: Any, count: Any) -> str:
    if _nan(value):
        return "-"
    return f"{_fmt(value)} ({_fmt(count)})" if not _nan(count) else _fmt(value)


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return _fmt(value, 3 if isinstance(value, float) and abs(value) < 1 else 1)


def table(flat: dict[str, Any], sizes: dict[str, Any]) -> str:
    header = ("figure", "app", "seed", "bound/floor", "target")
    body = [(r[0], _cell(r[1]), _cell(r[2]), _cell(r[3]), r[4]) for r in rows(flat, sizes)]
    widths = [max(len(str(r[n])) for r in [header, *body]) for n in range(5)]
    lines = ["  ".join(h.ljust(w) if n == 0 else h.rjust(w) for n, (h, w) in enumerate(zip(header, widths, strict=True)))]
    lines.append("-" * (sum(widths) + 8))
    for cells in body:
        lines.append("  ".join(c.ljust(w) if n == 0 else c.rjust(w) for n, (c, w) in enumerate(zip(cells, widths, strict=True))))
    return "\n".join(lines)


# -- the README's Performance table ---------------------------------------------------------------
BEGIN, END = "<!-- bench:table -->", "<!-- /bench:table -->"


def combine(documents: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """Several results files as one: a later file's steps replace an earlier one's; the
    figures and verdicts are drawn again from the combined steps."""
    first = documents[0][0]
    details: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    for document, _ in documents:
        details.update(document.get("details") or {})
        errors.update(document.get("errors") or {})
        for key, value in document["sizes"].items():
            sizes.setdefault(key, value)  # each step keeps the sizes it ran with
    merged = {**{k: v for k, v in first.items() if k in _META}, **flatten(details, sizes),
              "details": details, "errors": errors, "sizes": sizes}
    merged["targets"] = verdicts(merged, quick=any(d.get("quick") for d, _ in documents))
    merged["sources"] = [_source_line(d, source) for d, source in documents]
    return merged


_META = frozenset({"date", "quick", "complete", "seconds", "machine", "git", "model", "steps"})


def _source_line(document: dict[str, Any], source: str) -> str:
    commit = (document.get("git") or {}).get("commit", "")[:10] or "unknown"
    dirty = " (with uncommitted changes)" if (document.get("git") or {}).get("dirty") else ""
    kind = "quick run (no verdicts)" if document.get("quick") else "full run"
    steps = ", ".join(document.get("steps") or [])
    return (f"`{source}`: {kind} of {document['date'][:10]} ({steps}), commit `{commit}`{dirty}, "
            f"{document['seconds'] / 60:.0f} min")


def markdown(document: dict[str, Any], sources: str | list[str]) -> str:
    """The README block: where the figures come from, then the table."""
    sources = [sources] if isinstance(sources, str) else sources
    flat = document
    sizes = document["sizes"]
    marks = _verdict_marks(document)
    files = " ".join(sources)
    lines = [
        f"Generated by `python -m bench.report --readme {files}` from "
        + "; ".join(document.get("sources") or [_source_line(document, sources[0])])
        + f". {document.get('machine', {}).get('shared', '')}".rstrip(". ") + ".",
        "",
        "| figure | app | seed | bound / floor | target |",
        "|---|---|---|---|---|",
    ]
    for label, app, seed, bound, target in rows(flat, sizes, marks):
        label = f"↳ {label.strip()}" if label.startswith("  ") else label
        lines.append(f"| {label} | {_cell(app)} | {_cell(seed)} | {_cell(bound)} | {target} |")
    missing = [k for k in ("resync_small", "resync_large", "intake", "freshness", "portal_cost", "connect")
               if k not in document.get("details", {})]
    if missing:
        lines += ["", f"Not measured in this run: {', '.join(missing)}."]
    if document.get("errors"):
        lines += ["", "Failed in this run: " + "; ".join(f"{k}: {v}" for k, v in document["errors"].items())]
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.name


def write_readme(results: list[Path], readme: Path = ROOT / "README.md") -> None:
    documents = [(json.loads(p.read_text(encoding="utf-8")), _relative(p)) for p in results]
    combined = combine(documents) if len(documents) > 1 else documents[0][0]
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme.name}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    block = markdown(combined, [source for _, source in documents])
    readme.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report",
                                     description="Print a results file's table, or put it in the README")
    parser.add_argument("results", type=Path, nargs="+",
                        help="bench/results/<name>.json; later files' figures replace earlier ones'")
    parser.add_argument("--readme", action="store_true", help="rewrite the README's Performance table")
    args = parser.parse_args(argv)
    if args.readme:
        write_readme(args.results)
        return 0
    documents = [(json.loads(p.read_text(encoding="utf-8")), _relative(p)) for p in args.results]
    document = combine(documents) if len(documents) > 1 else documents[0][0]
    print(table(document, document["sizes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
