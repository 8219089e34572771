"""Start the frozen Linux app with ``--demo`` under Xvfb, check it speaks Russian, screenshot it.

    python scripts/build_app.py
    python scripts/frozen_smoke.py [--app dist/deal-monitor/deal-monitor]
                                   [--out docs/screenshots/frozen_linux_ru.png]

Needs ``Xvfb`` and ``xwininfo`` (Debian: ``apt-get install xvfb x11-utils``) and the X11
libraries Qt's xcb plugin loads (``libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1``). The app
runs with fresh, empty user folders (no settings, no keyring) and no PYTHONPATH, so only what
the bundle carries is used. Checks: the main window appears with its Russian title, the
translations came from the bundle (nothing compiled into the cache), the demo deals are
listed, no traceback, and SIGTERM ends it with exit code 0. The screenshot is taken by Qt
(``QScreen.grabWindow``) from a separate process on the same display.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_APP = ROOT / "dist" / "deal-monitor" / "deal-monitor"
DEFAULT_OUT = ROOT / "docs" / "screenshots" / "frozen_linux_ru.png"
RUSSIAN_TITLE = "Deal Monitor — демо"  # MainWindow's title in --demo mode, translated
WINDOW_SIZE = (1360, 820)  # the main window's first-start size


@dataclass
class SmokeResult:
    title: str
    wm_class: str
    geometry: tuple[int, int, int, int]
    log: str
    exit_code: int
    compiled_at_run_time: list[str]


def free_display() -> int:
    for number in range(91, 200):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(
                f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number")


def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None,
               log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            output = log.read_text(errors="replace") if log else ""
            raise RuntimeError(f"the app exited with {proc.returncode} before {what}:\n{output}")
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def top_windows(display: str) -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """(name, WM_CLASS, (x, y, width, height)) of the root window's children."""
    out = subprocess.run(["xwininfo", "-display", display, "-root", "-tree"], capture_output=True,
                         text=True, timeout=30).stdout
    windows = []
    pattern = re.compile(r'^\s+0x[0-9a-f]+ "(.*)": \((.*)\)\s+(\d+)x(\d+)\+(-?\d+)\+(-?\d+)')
    for line in out.splitlines():
        match = pattern.match(line)
        if match:
            name, wm_class = match.group(1), match.group(2)
            w, h, x, y = (int(match.group(i)) for i in range(3, 7))
            windows.append((name, wm_class, (x, y, w, h)))
    return windows


def grab(display: str, geometry: tuple[int, int, int, int], out: Path) -> None:
    x, y, w, h = geometry
    code = ("import sys\nfrom PySide6.QtGui import QGuiApplication\n"
            "app = QGuiApplication(sys.argv[:1])\n"
            f"image = app.primaryScreen().grabWindow(0, {x}, {y}, {w}, {h})\n"
            f"sys.exit(0 if image.save({str(out)!r}) else 1)\n")
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def run(app: Path, out: Path, settle_seconds: float = 6.0) -> SmokeResult:
    """Start ``app --demo --lang ru`` under a fresh Xvfb, screenshot it, stop it."""
    if not app.is_file():
        raise FileNotFoundError(f"{app} does not exist: run python scripts/build_app.py")
    work = Path(tempfile.mkdtemp(prefix="deal-monitor-frozen-"))
    number = free_display()
    display = f":{number}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = None
    try:
        wait_until(lambda: Path(f"/tmp/.X11-unix/X{number}").exists(), 30, "Xvfb")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "QT_", "DEAL_MONITOR_", "XDG_"))}
        env.update({"DISPLAY": display, "HOME": str(work / "home"),
                    "XDG_CONFIG_HOME": str(work / "config"), "XDG_DATA_HOME": str(work / "data"),
                    "XDG_CACHE_HOME": str(work / "cache"), "XDG_STATE_HOME": str(work / "state"),
                    "LANG": "C.UTF-8"})  # Russian must come from --lang, not the locale
        log = work / "app.log"
        with open(log, "wb") as sink:
            proc = subprocess.Popen([str(app), "--demo", "--lang", "ru"], cwd=work, env=env,
                                    stdout=sink, stderr=subprocess.STDOUT)

        def main_window():
            for name, wm_class, geometry in top_windows(display):
                if name.startswith("Deal Monitor") and geometry[2] >= 400:
                    return name, wm_class, geometry
            return None

        # 60 s: the first start of a frozen app unpacks nothing, but the machine may be busy
        title, wm_class, geometry = wait_until(main_window, 60, "the main window", proc, log)

        def demo_listed():
            return "synced" in log.read_text(errors="replace")

        wait_until(demo_listed, 60, "the first synced deals", proc, log)
        time.sleep(settle_seconds)  # let the table fill and the status bar settle
        grab(display, geometry, out)
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(timeout=60)
        cache = work / "cache"
        compiled = [str(p.relative_to(cache)) for p in cache.rglob("*.qm")] if cache.exists() else []
        return SmokeResult(title, wm_class, geometry, log.read_text(errors="replace"), exit_code,
                           compiled)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        xvfb.terminate()
        xvfb.wait(timeout=30)


def problems(result: SmokeResult) -> list[str]:
    found = []
    if not result.title.startswith(RUSSIAN_TITLE):
        found.append(f"window title {result.title!r} is not the Russian {RUSSIAN_TITLE!r}")
    if result.compiled_at_run_time:
        found.append(f"translations were compiled at run time: {result.compiled_at_run_time}")
    if "Traceback" in result.log:
        found.append("a traceback in the app's output")
    if result.exit_code != 0:
        found.append(f"exit code {result.exit_code} after SIGTERM")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", type=Path, default=DEFAULT_APP)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    result = run(args.app, args.out)
    print(f"window: {result.title!r} class {result.wm_class} at {result.geometry}")
    print(f"screenshot: {args.out}")
    found = problems(result)
    for problem in found:
        print(f"FAILED: {problem}", file=sys.stderr)
    if found:
        print(result.log[-3000:], file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
