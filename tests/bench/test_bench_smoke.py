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
    "ack_p99_ms",
    "freshness_p50_ms",
    "freshness_p99_ms",
    "requests_per_event_distinct",
    "requests_per_event_bursty",
    "baseline_requests_per_event_bursty",
    "resync_10k_s",
    "resync_10k_bound_s",
    "resync_100k_s",
    "resync_100k_bound_s",
    "gui_load_100k_s",
    "gui_filter_100k_ms",
    "rss_mb",
]
REQUIRED_COUNTS = ["refusals", "baseline_corrupted_rows"]


@pytest.mark.timeout(150)
def test_quick_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text(encoding="utf-8"))

    assert data["quick"] is True
    assert not data["errors"], data["errors"]
    assert data["machine"]["cores"] >= 1
    assert data["machine"]["python"].count(".") == 2
    for key in REQUIRED_POSITIVE:
        value = data[key]
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)
    for key in REQUIRED_COUNTS:
        value = data[key]
        assert isinstance(value, int) and value >= 0, (key, value)
    assert data["freshness_p99_ms"] >= data["freshness_p50_ms"]
    # the seed's LIKE 'Сделка №1%' overwrote the rows of deals 10..19; the app keys by ID
    assert data["baseline_corrupted_rows"] == 10
    assert data["monitor_corrupted_rows"] == 0
    # the seed reads every event once; the app batches
    assert data["baseline_requests_per_event_bursty"] == pytest.approx(1.0)
    assert {t["key"] for t in data["targets"]} >= {"ack_p99_ms", "refusals", "rss_mb"}
    assert "model" in data and data["model"]
    assert "Deal Monitor benchmarks" in proc.stdout
