"""``python -m bench --quick`` runs end to end and writes a complete, sane results file.

Timings are never asserted here (they depend on the machine and its load); only that every
figure exists, is a finite number where it must be, and that the deterministic figures (the
seed's corrupted rows) come out as the scenario defines them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

REQUIRED_POSITIVE = [
    "intake_events_per_s",
    "baseline_intake_own_events_per_s",
    "ack_p99_ms",
    "freshness_steady_p50_ms",
    "freshness_steady_p99_ms",
    "freshness_storm_p99_ms",
    "baseline_freshness_steady_p50_ms",
    "requests_per_event_distinct",
    "requests_per_event_bursty",
    "baseline_requests_per_event_bursty",
    "gui_load_s",
    "gui_filter_ms",
    "rss_mb",
    "connect_pull_2s_p50_ms",
    "connect_offline_2s_p50_ms",
    "connect_pull_2s_requests_per_change",
]
REQUIRED_COUNTS = ["refusals", "baseline_corrupted_rows"]
SHARES = ["freshness_steady_lost_share", "freshness_storm_lost_share", "baseline_freshness_storm_lost_share",
          "cost_deals_final_share", "baseline_cost_deals_final_share",
          "connect_pull_2s_lost_share", "connect_offline_2s_lost_share"]


# A hang guard only: the quick run takes ~4-5 min on a busy 2-core machine (the realistic
# portal really spends its latency); 10x that.
@pytest.mark.timeout(3000)
def test_quick_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=2900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text(encoding="utf-8"))

    assert data["quick"] is True
    assert not data["errors"], data["errors"]
    assert data["machine"]["cores"] >= 1
    assert data["machine"]["python"].count(".") == 2
    assert "shared" in data["machine"]["shared"]
    for key in REQUIRED_POSITIVE:
        value = data[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)
    for key in REQUIRED_COUNTS:
        value = data[key]
        assert isinstance(value, int) and value >= 0, (key, value)
    for key in SHARES:  # measured, so a number in [0, 1], never a constant placeholder
        assert isinstance(data[key], int | float) and 0 <= data[key] <= 1, (key, data[key])
    # the quick sizes name their own figures; nothing lands under the full run's names
    small, large = data["sizes"]["resync_small"], data["sizes"]["resync_large"]
    assert (small, large) != (10_000, 100_000)
    for n in (small, large):
        name = f"{n // 1000}k" if n % 1000 == 0 else str(n)
        for key in (f"resync_{name}_s", f"resync_{name}_bound_s", f"resync_{name}_model_s"):
            assert math.isfinite(data[key]) and data[key] > 0, (key, data[key])
    assert not any(k.startswith(("resync_10k", "resync_100k")) for k in data)
    # no verdict from a quick run
    assert data["targets"] and all(t["met"] is None for t in data["targets"])
    assert "[MET " not in proc.stdout and "[MISS]" not in proc.stdout
    assert data["freshness_steady_p99_ms"] >= data["freshness_steady_p50_ms"]
    # the seed's LIKE 'Сделка №1%' overwrote the rows of deals 10..19; the app keys by ID
    assert data["baseline_corrupted_rows"] == 10
    assert data["monitor_corrupted_rows"] == 0
    # the seed reads every event it takes once (the portal's duplicates are events too)
    assert data["baseline_requests_per_event_bursty"] >= 1.0
    assert {t["key"] for t in data["targets"]} >= {"ack_p99_ms", "refusals", "rss_mb"}
    assert "model" in data and data["model"]
    assert "Deal Monitor benchmarks" in proc.stdout
    # the README block renders from this file
    from bench import report

    block = report.markdown(data, "quick.json")
    assert "| figure | app | seed | bound / floor | target |" in block and data["git"]["commit"][:10] in block
