"""The wheel as a user gets it: built, installed into a fresh venv, run from outside the checkout.

A module or resource left out of the wheel passes every other test (they import the source
tree); here the installed copy is the only one on the path: the venv's site-packages come
before the system's (where an editable install may point at a checkout), the commands run with
no PYTHONPATH and with the working directory outside the repository, and the test checks which
folder the package was imported from. Everything is offline: the wheel is built without build
isolation and installed with ``--no-deps --no-index`` (the dependencies come from the system
site-packages through ``--system-site-packages``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from deal_monitor import config
from tests.e2e.harness import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = "Scripts" if sys.platform == "win32" else "bin"
EXE = ".exe" if sys.platform == "win32" else ""
# generous bounds (>= 10x what each step takes here): they only stop a hang
BUILD_TIMEOUT = 300
RUN_TIMEOUT = 120

pytestmark = pytest.mark.timeout(900)


@dataclass
class Installed:
    wheel: Path
    venv: Path
    cwd: Path  # outside the repository
    env: dict[str, str]

    def command(self, name: str) -> Path:
        return self.venv / BIN / f"{name}{EXE}"

    def run(self, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([*args], cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def python(self, code: str) -> str:
        result = self.run(str(self.command("python")), "-c", code)
        assert result.returncode == 0, result.stderr
        return result.stdout


def _clean_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "DEAL_MONITOR_", "VIRTUAL_ENV", "XDG_"))}
    env.update({"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
                "QT_QPA_PLATFORM": "offscreen", "PYTHONNOUSERSITE": "1",
                "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
                "XDG_CACHE_HOME": str(home / "cache"), "XDG_STATE_HOME": str(home / "state")})
    return env


def _hide_editable_install(venv: Path) -> None:
    """``pip install -e`` of a checkout puts an import hook in the system site-packages that
    quietly supplies any ``deal_monitor`` module the wheel lacks; the venv gets a no-op module
    of the same name, found first."""
    site_dir = next(iter(venv.glob("lib/python*/site-packages")), venv / "Lib" / "site-packages")
    for folder in site.getsitepackages():
        for finder in Path(folder).glob("__editable___deal_monitor_*finder.py"):
            (site_dir / finder.name).write_text(
                "def install():\n    pass  # the editable checkout is hidden from this venv\n",
                encoding="utf-8")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    # build from a copy, so the checkout gets no build/ or egg-info folders
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".pytest_cache",
        ".ruff_cache", ".hypothesis", "*.db", "*.qm"))
    wheels = work / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(wheels), str(source)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, cwd=work)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = wheels.glob("deal_monitor-*.whl")

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=BUILD_TIMEOUT)
    _hide_editable_install(venv)
    cwd = work / "elsewhere"
    cwd.mkdir()
    env = _clean_env(work / "home")
    python = venv / BIN / f"python{EXE}"
    # pip from the system site-packages, running in the venv, installs into the venv
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
         "--no-warn-script-location", str(wheel)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, cwd=cwd, env=env)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return Installed(wheel, venv, cwd, env)


def test_the_installed_package_is_the_wheel_and_has_every_module_and_resource(installed):
    info = json.loads(installed.python(
        "import json, deal_monitor, deal_monitor.paths as p\n"
        "print(json.dumps({'package': deal_monitor.__file__, "
        "'resources': str(p.resources_dir())}))"))
    package = Path(info["package"]).parent
    resources = Path(info["resources"])
    assert package.is_relative_to(installed.venv), f"imported from {package}, not the wheel"
    assert resources == package / "resources"

    # what the checkout has is what the installed copy must have
    modules = {p.relative_to(ROOT / "deal_monitor").as_posix()
               for p in (ROOT / "deal_monitor").rglob("*.py")}
    shipped = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    assert modules - shipped == set(), "modules missing from the wheel"
    wanted = {p.relative_to(ROOT / "resources").as_posix()
              for pattern in ("icons/*.svg", "i18n/*.ts")
              for p in (ROOT / "resources").glob(pattern)}
    present = {p.relative_to(resources).as_posix() for p in resources.rglob("*") if p.is_file()}
    assert wanted and wanted - present == set(), "resources missing from the wheel"

    # both entry points are declared in the wheel's metadata
    with zipfile.ZipFile(installed.wheel) as archive:
        entry_points = next(archive.read(name).decode() for name in archive.namelist()
                            if name.endswith(".dist-info/entry_points.txt"))
    assert "[console_scripts]\ndeal-monitor = deal_monitor.cli:main" in entry_points
    assert "[gui_scripts]\ndeal-monitor-gui = deal_monitor.cli:main" in entry_points


def test_the_console_and_gui_scripts_start(installed):
    for name in ("deal-monitor", "deal-monitor-gui"):
        result = installed.run(str(installed.command(name)), "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: deal-monitor" in result.stdout, name


def test_the_installed_app_compiles_its_translations(installed, tmp_path):
    """The wheel carries the .ts sources; an installed copy compiles them at first use."""
    out = installed.python(
        "from pathlib import Path\nfrom deal_monitor.gui import i18n\n"
        f"print(i18n.ensure_qm('ru', Path({str(tmp_path)!r})))")
    qm = Path(out.strip())
    assert qm.parent == tmp_path and qm.stat().st_size > 1000


def test_a_short_headless_sync_against_the_simulator(installed, sim, tmp_path):
    in_production = sim.portal.add_deal({"TITLE": "Стеллаж", "STAGE_ID": "PREPARATION",
                                         "OPPORTUNITY": "1500.00"})
    start_stage = sim.portal.add_deal({"TITLE": "Заявка", "STAGE_ID": "NEW"})
    port = free_port()
    settings = config.from_mapping({
        "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
        "listener": {"port": port},
        "sync": {"debounce_seconds": 0.1},  # reconciliation runs once at start
        "storage": {"data_dir": str(tmp_path / "data")},
    }, env={})
    config_file = tmp_path / "deal-monitor.toml"
    config_file.write_text(config.to_toml(settings), encoding="utf-8")
    log = tmp_path / "console.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [str(installed.command("deal-monitor")), "--headless", "--config", str(config_file)],
            cwd=installed.cwd, env=installed.env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        def healthy():
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_for(healthy, timeout=RUN_TIMEOUT)
        sim.add_outgoing_webhook(f"http://127.0.0.1:{port}/bitrix24/events")
        pushed = sim.portal.add_deal({"TITLE": "Верстак", "STAGE_ID": "EXECUTING"})
        expected = {deal_id: sim.portal.get_deal(deal_id) for deal_id in (in_production, pushed)}

        target = create_engine(f"sqlite:///{tmp_path / 'data' / 'target.db'}")

        def rows():
            try:
                with target.connect() as conn:
                    return {r.bitrix_id: (r.title, r.stage_id) for r in conn.execute(
                        text("SELECT bitrix_id, title, stage_id FROM deal"))}
            except Exception:  # noqa: BLE001 - the table is created by the first sync
                return {}

        want = {deal_id: (raw["TITLE"], raw["STAGE_ID"]) for deal_id, raw in expected.items()}
        wait_for(lambda: rows() == want or None, timeout=RUN_TIMEOUT)
        assert start_stage not in rows()  # the start stage is skipped by default
        target.dispose()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if sys.platform != "win32" else signal.CTRL_BREAK_EVENT)
        code = proc.wait(timeout=RUN_TIMEOUT)
    console = log.read_text(errors="replace")
    assert code == 0, console
    assert "Traceback" not in console
