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
* filtering as the window does it (text in the filter box, then ``_apply_filters``):
  the first keystroke after load (cold: builds the search text of every row) and then
  a typed query, one refilter per keystroke;
* ``rss_mb`` after load, filter and the start-up reconciliation, and ``peak_mb`` (VmHWM);
  ``rss_after_reload_mb`` once more after the second load.
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


def _probe(config_path: Path, expected: int) -> dict:
    from PySide6.QtCore import QCoreApplication

    from deal_monitor.credentials import MemoryStore
    from deal_monitor.gui.app import DesktopApp, make_application

    from .harness import rss_mb

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

    def filter_ms(text: str) -> float:
        start = time.perf_counter()
        window.deals_filter.setText(text)
        window._apply_filters()
        app.processEvents()
        return (time.perf_counter() - start) * 1000.0

    cold_ms = filter_ms(TYPED[0])
    shown_cold = window.deals_proxy.rowCount()
    typed = [filter_ms(TYPED[: n + 1]) for n in range(1, len(TYPED))]
    shown_typed = window.deals_proxy.rowCount()
    clear_ms = filter_ms("")
    warm_ms = filter_ms(TYPED[0])
    filter_ms("")

    _wait(app, lambda: monitor.scheduler is not None and monitor.scheduler.runs >= 1, 240)
    _wait(app, lambda: False, 1.0)  # let the queues settle
    memory = rss_mb()  # steady state: started, loaded, filtered, start-up reconciliation done

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
        "filter_typed_ms": typed,
        "filter_typed_max_ms": max(typed),
        "filter_typed_median_ms": sorted(typed)[len(typed) // 2],
        "filter_clear_ms": clear_ms,
        "filter_warm_ms": warm_ms,
        "shown_after_first_key": shown_cold,
        "shown_after_query": shown_typed,
        "query": TYPED,
        **memory,
        "rss_after_reload_mb": after_reload["rss_mb"],
    }
    shell.quit()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.desktop")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--expected", type=int, default=0)
    args = parser.parse_args(argv)
    result = _probe(args.config, args.expected)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
