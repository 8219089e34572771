"""Desktop figure: the real desktop app, started on a state DB that already holds N deals.

``measure(...)`` (parent side) writes a settings file and starts ``python -m bench.desktop``
as a process of its own (``QT_QPA_PLATFORM=offscreen``, isolated user folders), so its RSS is
the whole app's: Qt, the main window, the models, and the sync core running (listener,
worker, scheduler with its start-up reconciliation against the simulator).

The probe times:

* ``load_s``: from ``DesktopApp.prepare()`` (window built, core starting) to the
  controller's ``loaded`` signal: the core started, N deals read from the state DB and put in
  the deals model (sorted, as the window shows them) — what a user waits for;
* ``read_s`` / ``model_load_s``: the two halves of a second load, timed apart
  (``Monitor.deals()``, then ``DealsModel.load``);
* filtering as the window does it (text in the filter box, then ``_apply_filters``), right
  after the load, while the app's start-up reconciliation still runs: the first keystroke,
  then a typed query, one refilter per keystroke — each from the key to the repainted view
  (``*_ms``), and the GUI thread's own CPU time for it (``*_cpu_ms``: the rest is waiting,
  mostly for the GIL, which the core's threads hold in bursts while they reconcile);
* ``rss_mb`` after load, filter and the start-up reconciliation, and ``peak_mb`` (VmHWM);
* the same query once more with the app idle (``filter_idle_*``), and typed through the
  window's own path (text changed -> filter timer -> ``_apply_filters`` -> repaint,
  ``filter_via_timer_*``): what a key costs including any debounce;
* ``rss_after_reload_mb`` once more after the second load.

``python -m bench.desktop --deals 100000`` gives this figure alone (it prepares a simulator
and a synced data folder first, as ``python -m bench`` does). Analysis hooks, which skew the
figures: ``BENCH_DESKTOP_PROFILE=<file>`` (cProfile of the first filtering, GUI thread) and
``BENCH_DESKTOP_TRACEMALLOC=<file>`` (live Python allocations at the memory figure).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TYPED = "сделка #12345"  # typed one character at a time, as a user would


def measure(info: dict[str, str], data_dir: Path, expected: int, timeout: float = 300.0) -> dict:
    """Run the probe on ``data_dir`` (which holds ``expected`` synced deals); returns its figures."""
    from deal_monitor import config

    from .harness import monitor_settings

    work = Path(tempfile.mkdtemp(prefix="bench-desktop-"))
    settings = monitor_settings(info, data_dir)
    config_path = work / "deal-monitor.toml"
    config_path.write_text(config.to_toml(settings), encoding="utf-8")
    out = work / "desktop.json"
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        XDG_CONFIG_HOME=str(work / "config"),
        XDG_DATA_HOME=str(work / "data"),
        XDG_CACHE_HOME=str(work / "cache"),
        XDG_STATE_HOME=str(work / "state"),
        XDG_RUNTIME_DIR=str(work / "runtime"),
    )
    (work / "runtime").mkdir(mode=0o700)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.desktop", "--config", str(config_path), "--out", str(out),
             "--expected", str(expected)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout)[-2000:]
            raise RuntimeError(f"desktop probe failed ({proc.returncode}): {tail}")
        return json.loads(out.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the probe (runs in its own process) ------------------------------------------------------
def _wait(app, predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.005)
    return True


def _dump_allocations(path: Path) -> None:
    """The live Python allocations by line and by trace (``BENCH_DESKTOP_TRACEMALLOC``)."""
    import tracemalloc

    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("lineno")
    lines = [f"traced {sum(s.size for s in stats) / 2**20:.1f} MiB"]
    lines += [str(s) for s in stats[:40]]
    for s in snapshot.statistics("traceback")[:12]:
        lines.append(f"--- {s.size / 2**20:.1f} MiB in {s.count} blocks")
        lines += [f"    {frame}" for frame in s.traceback.format()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _probe(config_path: Path, expected: int) -> dict:
    from PySide6.QtCore import QCoreApplication

    from deal_monitor.credentials import MemoryStore
    from deal_monitor.gui.app import DesktopApp, make_application

    from .harness import rss_mb

    trace_out = os.environ.get("BENCH_DESKTOP_TRACEMALLOC")
    if trace_out:
        import tracemalloc

        tracemalloc.start(4)
    app = make_application(["deal-monitor"])
    QCoreApplication.setApplicationName("DealMonitorBench")
    args = argparse.Namespace(config=str(config_path), lang="en", verbose=False, demo=False)
    shell = DesktopApp(app, args, tray_available=False, interactive=False, secret_store=MemoryStore())
    flags = {"loaded": False, "pipelines": False}
    t0 = time.perf_counter()
    code = shell.prepare()
    if code is not None:
        raise RuntimeError(f"the app did not start (exit code {code})")
    controller, window = shell.controller, shell.window
    controller.loaded.connect(lambda: flags.__setitem__("loaded", True))
    controller.pipelines_loaded.connect(lambda: flags.__setitem__("pipelines", True))
    if not _wait(app, lambda: flags["loaded"], 240):
        raise RuntimeError("deals were not loaded in time")
    load_s = time.perf_counter() - t0
    rows = controller.deals_model.rowCount()
    _wait(app, lambda: flags["pipelines"], 30)  # stage names arrive; the search cache is reset
    monitor = controller.monitor

    cpu: list[float] = []  # the GUI thread's own CPU time of each filter_ms, in order

    def filter_ms(text: str) -> float:
        start, start_cpu = time.perf_counter(), time.thread_time()
        window.deals_filter.setText(text)
        window._apply_filters()
        app.processEvents()
        cpu.append((time.thread_time() - start_cpu) * 1000.0)
        return (time.perf_counter() - start) * 1000.0

    def via_timer_ms(text: str) -> float:
        """Key to repainted view the way a key press goes: the box's textChanged starts the
        window's filter timer, whose timeout applies the filters (any debounce included)."""
        start = time.perf_counter()
        window.deals_filter.setText(text)
        while window._filter_timer.isActive():
            app.processEvents()
        app.processEvents()
        return (time.perf_counter() - start) * 1000.0

    def query(measure) -> list[float]:
        return [measure(TYPED[: n + 1]) for n in range(1, len(TYPED))]

    profile = None
    if os.environ.get("BENCH_DESKTOP_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    cold_ms = filter_ms(TYPED[0])
    cold_cpu_ms = cpu[-1]
    shown_cold = window.deals_proxy.rowCount()
    typed = query(filter_ms)
    typed_cpu = cpu[-len(typed):]
    shown_typed = window.deals_proxy.rowCount()
    clear_ms = filter_ms("")
    warm_ms = filter_ms(TYPED[0])
    filter_ms("")
    if profile is not None:
        profile.disable()
        profile.dump_stats(os.environ["BENCH_DESKTOP_PROFILE"])

    _wait(app, lambda: monitor.scheduler is not None and monitor.scheduler.runs >= 1, 240)
    _wait(app, lambda: False, 1.0)  # let the queues settle
    memory = rss_mb()  # steady state: started, loaded, filtered, start-up reconciliation done
    if trace_out:
        _dump_allocations(Path(trace_out))

    # the app idle: the same query again, then typed through the window's filter timer
    idle_first_ms = filter_ms(TYPED[0])
    idle_typed = query(filter_ms)
    idle_typed_cpu = cpu[-len(idle_typed):]
    filter_ms("")
    timer_first_ms = via_timer_ms(TYPED[0])
    timer_typed = query(via_timer_ms)
    via_timer_ms("")

    # a second load, split into its halves (after the memory figure: a reload holds the old
    # and the new list at once for a moment, and CPython keeps that peak's arenas)
    start = time.perf_counter()
    deals = monitor.deals()
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    controller.deals_model.load(deals)
    model_load_s = time.perf_counter() - start
    del deals
    after_reload = rss_mb()
    result = {
        "rows": rows,
        "expected": expected,
        "load_s": load_s,
        "read_s": read_s,
        "model_load_s": model_load_s,
        "filter_cold_ms": cold_ms,
        "filter_cold_cpu_ms": cold_cpu_ms,
        "filter_typed_ms": typed,
        "filter_typed_max_ms": max(typed),
        "filter_typed_median_ms": _median(typed),
        "filter_typed_cpu_ms": typed_cpu,
        "filter_typed_cpu_max_ms": max(typed_cpu),
        "filter_clear_ms": clear_ms,
        "filter_warm_ms": warm_ms,
        "filter_idle_first_ms": idle_first_ms,
        "filter_idle_typed_ms": idle_typed,
        "filter_idle_typed_max_ms": max(idle_typed),
        "filter_idle_typed_median_ms": _median(idle_typed),
        "filter_idle_typed_cpu_max_ms": max(idle_typed_cpu),
        "filter_via_timer_first_ms": timer_first_ms,
        "filter_via_timer_typed_ms": timer_typed,
        "filter_via_timer_max_ms": max(timer_typed),
        "shown_after_first_key": shown_cold,
        "shown_after_query": shown_typed,
        "query": TYPED,
        **memory,
        "rss_after_reload_mb": after_reload["rss_mb"],
    }
    shell.quit()
    return result


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


# -- the desktop figure alone ------------------------------------------------------------------
def standalone(deals: int, rounds: int = 1) -> list[dict]:
    """The desktop figure without the rest of ``python -m bench``: a fresh simulator holding
    ``deals`` deals, a full resync into a fresh data folder (as ``scenarios.resync`` does),
    then ``rounds`` probes on that folder, each in a process of its own."""
    from . import simhost
    from .harness import TargetReader, monitor_settings, quiet_logging, running_monitor, wait_for
    from .scenarios import sim_options, workdir

    quiet_logging()
    results = []
    try:
        with simhost.simulator(**sim_options()) as host:
            info = host.info()
            folder = workdir("desktop")
            try:
                settings = monitor_settings(info, folder, listener={"enabled": False})
                with running_monitor(settings) as monitor:
                    host.bulk_add(deals)
                    host.reset_limits()
                    assert monitor.resync_all()
                    target = TargetReader(folder)
                    wait_for(lambda: target.count() >= deals, 900, interval=0.2)
                    wait_for(lambda: len(monitor.deals()) >= deals, 120, interval=0.5)
                for _ in range(rounds):
                    host.reset_limits()
                    results.append(measure(info, folder, deals))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        simhost.shutdown()
    return results


def summary(result: dict) -> str:
    """The figures of one probe, as lines of text."""
    r = result
    return "\n".join((
        f"{r['rows']} deals: load {r['load_s']:.2f} s (read {r['read_s']:.2f} s, model "
        f"{r['model_load_s']:.2f} s); RSS {r['rss_mb']:.0f} MB (peak {r['peak_mb']:.0f} MB, "
        f"after a reload {r['rss_after_reload_mb']:.0f} MB)",
        f"  filter during the start-up reconciliation: first key {r['filter_cold_ms']:.0f} ms "
        f"(GUI thread CPU {r['filter_cold_cpu_ms']:.0f} ms, {r['shown_after_first_key']} shown); "
        f"typed worst {r['filter_typed_max_ms']:.0f} ms (CPU {r['filter_typed_cpu_max_ms']:.0f}"
        f" ms), median {r['filter_typed_median_ms']:.0f} ms; clear {r['filter_clear_ms']:.0f}"
        f" ms, first key again {r['filter_warm_ms']:.0f} ms",
        f"  filter with the app idle: first key {r['filter_idle_first_ms']:.0f} ms; typed worst "
        f"{r['filter_idle_typed_max_ms']:.0f} ms (CPU {r['filter_idle_typed_cpu_max_ms']:.0f} "
        f"ms), median {r['filter_idle_typed_median_ms']:.0f} ms",
        f"  through the window's filter timer: first key {r['filter_via_timer_first_ms']:.0f} "
        f"ms, typed worst {r['filter_via_timer_max_ms']:.0f} ms",
    ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.desktop",
        description="The desktop figure. `--deals N` prepares a simulator and a synced data "
        "folder, runs the probe and prints the figures; `--config`/`--out` is the probe "
        "itself, as `python -m bench` starts it.",
    )
    parser.add_argument("--deals", type=int, help="prepare this many deals, then probe")
    parser.add_argument("--rounds", type=int, default=1, help="probes of the prepared folder")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--out", type=Path, help="the figures as JSON (the last round's)")
    parser.add_argument("--expected", type=int, default=0)
    args = parser.parse_args(argv)
    if args.deals:
        for result in standalone(args.deals, args.rounds):
            print(summary(result), flush=True)
            if args.out:
                args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
        return 0
    if args.config is None or args.out is None:
        parser.error("give --deals N, or --config and --out")
    result = _probe(args.config, args.expected)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
