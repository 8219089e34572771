"""Running the real Monitor in the benchmark process, and small measuring helpers.

The Monitor runs here as the app would (real listener, real SQLite files with the product's
pragmas, real REST client, file logging at INFO like the headless app); the portal runs in a
process of its own (:mod:`bench.simhost`) and so does the event sender (:mod:`bench.loadgen`).
Results are read from the files the app writes, with plain ``sqlite3``.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deal_monitor import config, logs
from deal_monitor.credentials import MemoryStore
from deal_monitor.service import Monitor

LISTEN_PATH = "/bitrix24/events"


def monitor_settings(info: dict[str, str], data_dir: Path, **sections: dict[str, Any]):
    """Product defaults, pointed at the simulator; scheduled reconciliation and deletion checks
    off (the start-up reconciliation still runs) so they never add requests mid-measurement."""
    data: dict[str, dict[str, Any]] = {
        "portal": {
            "webhook_url": info["webhook_url"],
            "application_token": info["application_token"],
            "member_id": info["member_id"],
        },
        "listener": {"port": 0},
        "sync": {"reconcile_minutes": 0, "deletion_check_minutes": 0},
        "storage": {"data_dir": str(data_dir)},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config.from_mapping(data, env={})


@contextmanager
def running_monitor(settings, tokens: MemoryStore | None = None) -> Iterator[Monitor]:
    """A started Monitor whose start-up reconciliation has finished (``tokens``: an OAuth
    app's stored tokens, as the keyring would hold them)."""
    data_dir = Path(settings.storage.data_dir)
    logs.setup(data_dir / "logs", level=logging.INFO, console=False)
    monitor = Monitor(settings, secrets=MemoryStore(), tokens=tokens)
    monitor.start()
    try:
        wait_for(lambda: monitor.scheduler is not None and monitor.scheduler.runs >= 1, 60)
        yield monitor
    finally:
        monitor.stop()
        quiet_logging()


def quiet_logging() -> None:
    """No log handlers outside a running app; waitress's queue-depth notes are expected under
    load (the floor and the seed servers) and would only clutter the output."""
    logs.setup(None, console=False)
    logging.getLogger("waitress").setLevel(logging.ERROR)


def listener_url(monitor: Monitor) -> str:
    assert monitor.listener is not None
    return f"http://127.0.0.1:{monitor.listener.port}{LISTEN_PATH}"


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout:.0f} s")
        time.sleep(interval)


# -- reading the target --------------------------------------------------------------------------
class TargetReader:
    """Plain sqlite3 reads of the Monitor's target file (what a warehouse system would see)."""

    def __init__(self, data_dir: Path, table: str = "deal") -> None:
        self.path = Path(data_dir) / "target.db"
        self.table = table

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def count(self) -> int:
        if not self.path.exists():
            return 0
        conn = self._connect()
        try:
            return conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]
        except sqlite3.OperationalError:  # table not created yet
            return 0
        finally:
            conn.close()

    def rows(self, ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        conn = self._connect()
        conn.row_factory = sqlite3.Row
        try:
            if ids is None:
                cur = conn.execute(f"SELECT * FROM {self.table}")
            else:
                wanted = list(ids)
                found: list[sqlite3.Row] = []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    found.extend(
                        conn.execute(f"SELECT * FROM {self.table} WHERE bitrix_id IN ({marks})", chunk)
                    )
                cur = found  # type: ignore[assignment]
            return {int(r["bitrix_id"]): dict(r) for r in cur}
        finally:
            conn.close()

    def titles(self, ids: Sequence[int]) -> dict[int, str]:
        return {i: r["title"] for i, r in self.rows(ids).items()}


def synced_at_epoch(value: str) -> float:
    """The target's ``synced_at`` (naive UTC text) as a Unix timestamp."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


# -- numbers --------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "mean": statistics.fmean(values) if values else math.nan,
    }


def rss_mb(pid: int | None = None) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB (Linux)."""
    out = {"rss_mb": math.nan, "peak_mb": math.nan}
    try:
        with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024.0
                elif line.startswith("VmHWM:"):
                    out["peak_mb"] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return out


class MachineLoad:
    """How much of the machine other processes used while a step ran (Linux /proc).

    ``foreign_share`` is the CPU time of processes outside this benchmark's process tree
    divided by the step's wall time times the cores: 0.0 on a quiet machine, 0.5 when
    something else kept one of two cores busy. Latency figures from a busy machine are not
    comparable with those from a quiet one; the report says so next to each step.
    """

    def __init__(self) -> None:
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.cores = os.cpu_count() or 1
        self.t0 = time.monotonic()
        self.busy0 = self._busy()
        self.tree0 = self._tree()
        self.load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat", encoding="ascii") as fh:
                parts = [float(x) for x in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return math.nan
        idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
        return sum(parts[:8]) - idle

    @staticmethod
    def _tree() -> float:
        """utime+stime of this process and its live descendants, plus reaped children."""
        me = os.getpid()
        stats: dict[int, tuple[int, float, float]] = {}
        try:
            names = os.listdir("/proc")
        except OSError:
            return math.nan
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ppid = int(fields[1])
            own = float(fields[11]) + float(fields[12])
            reaped = float(fields[13]) + float(fields[14])
            stats[int(name)] = (ppid, own, reaped)
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        total, todo = 0.0, [me]
        while todo:
            pid = todo.pop()
            if pid in stats:
                _, own, reaped = stats[pid]
                total += own + reaped
            todo.extend(children.get(pid, []))
        return total

    def finish(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self.t0)
        busy = (self._busy() - self.busy0) / self.ticks
        ours = (self._tree() - self.tree0) / self.ticks
        foreign = max(0.0, busy - ours)
        return {
            "seconds": wall,
            "cpu_share_all": busy / (wall * self.cores),
            "cpu_share_ours": ours / (wall * self.cores),
            "foreign_share": foreign / (wall * self.cores),
            "loadavg_start": self.load0,
            "loadavg_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        }


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    @property
    def s(self) -> float:
        return time.perf_counter() - self.t0
