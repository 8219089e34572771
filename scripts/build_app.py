"""Build the double-clickable desktop app: ``dist/deal-monitor/`` (PyInstaller, one folder).

    python -m pip install ".[app]"          # PyInstaller
    python scripts/build_app.py             # Linux, Windows, macOS: the same steps and spec
    python scripts/build_app.py --installer # Windows: also the Inno Setup installer

Steps: compile the translations (``.ts`` → ``.qm``) with the ``lrelease`` of the installed
PySide6 wheel and render the icons into ``build/app/``; run PyInstaller on
``packaging/deal-monitor.spec``; on Linux put the menu entry (``deal-monitor.desktop``) and the
icon beside the executable; with ``--installer`` run Inno Setup's ``ISCC`` on
``packaging/windows/deal-monitor.iss`` (output: ``dist/installer/``). Everything it writes is
under ``build/`` and ``dist/`` (both ignored by git).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SPEC = ROOT / "packaging" / "deal-monitor.spec"
ISS = ROOT / "packaging" / "windows" / "deal-monitor.iss"
DESKTOP = ROOT / "packaging" / "linux" / "deal-monitor.desktop"
ISCC_DEFAULTS = (r"C:\Program Files (x86)\Inno Setup 6\ISCC.exe",
                 r"C:\Program Files\Inno Setup 6\ISCC.exe")


def project_version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data["project"]["version"]


def compile_translations(out: Path) -> list[Path]:
    """Every ``resources/i18n/*.ts`` → ``out/*.qm`` (the build fails if one cannot be compiled)."""
    from deal_monitor.gui import i18n

    written = []
    for lang in i18n.LANGUAGES:
        ts = i18n.ts_file(lang)
        qm = out / f"deal_monitor_{lang}.qm"
        i18n.compile_ts(ts, qm)
        written.append(qm)
    return written


def run_pyinstaller(generated: Path, dist: Path, work: Path) -> Path:
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean",
               "--distpath", str(dist), "--workpath", str(work), str(SPEC)]
    env = {**os.environ, "DEAL_MONITOR_BUILD_DIR": str(generated)}
    subprocess.run(command, check=True, cwd=ROOT, env=env)
    return dist / "deal-monitor"


def add_linux_menu_entry(bundle: Path, icons: Path) -> None:
    """The ``.desktop`` file and its icon, for installing the bundle per user (see README)."""
    shutil.copy2(DESKTOP, bundle / DESKTOP.name)
    shutil.copy2(icons / "deal-monitor.png", bundle / "deal-monitor.png")


def find_iscc() -> str | None:
    found = shutil.which("ISCC") or shutil.which("iscc")
    if found:
        return found
    return next((path for path in ISCC_DEFAULTS if Path(path).is_file()), None)


def build_installer(dist: Path, icons: Path) -> None:
    iscc = find_iscc()
    if iscc is None:
        raise SystemExit("Inno Setup 6 (ISCC.exe) was not found: install it from jrsoftware.org")
    subprocess.run([iscc, f"/DAppVersion={project_version()}", f"/DDistDir={dist}",
                    f"/DIconFile={icons / 'deal-monitor.ico'}", f"/O{dist / 'installer'}",
                    str(ISS)], check=True, cwd=ISS.parent)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the desktop app (PyInstaller).")
    parser.add_argument("--installer", action="store_true",
                        help="Windows: also build the installer with Inno Setup")
    args = parser.parse_args(argv)
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        print('error: PyInstaller is not installed: python -m pip install ".[app]"',
              file=sys.stderr)
        return 2
    from make_icons import make_icons

    started = time.monotonic()
    build, dist = ROOT / "build", ROOT / "dist"
    generated = build / "app"
    shutil.rmtree(generated, ignore_errors=True)
    for qm in compile_translations(generated / "i18n"):
        print(f"translation: {qm.relative_to(ROOT)}")
    make_icons(generated / "icons")
    bundle = run_pyinstaller(generated, dist, build / "pyinstaller")
    if sys.platform.startswith("linux"):
        add_linux_menu_entry(bundle, generated / "icons")
    if args.installer:
        if sys.platform != "win32":
            print("error: the installer is built on Windows only", file=sys.stderr)
            return 2
        build_installer(dist, generated / "icons")
    print(f"built {bundle} ({folder_size(bundle) / 2**20:.0f} MiB) "
          f"in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
