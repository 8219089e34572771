"""The core must import and run without Qt: a headless server has no PySide6 to spare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CORE_MODULES = [
    "deal_monitor.cli",
    "deal_monitor.service",
    "deal_monitor.simulator",
    "deal_monitor.sync.worker",
    "deal_monitor.sync.reconciler",
    "deal_monitor.listener.server",
    "deal_monitor.store.target",
    "deal_monitor.credentials",
]


def test_core_imports_without_pyside6():
    code = (
        "import sys, importlib\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6')))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_core_runs_when_pyside6_cannot_be_imported(tmp_path):
    """Block PySide6 outright; the headless status command must still work."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('PySide6', 'shiboken6'):\n"
        "            raise ImportError('PySide6 blocked for this test')\n"
        "sys.meta_path.insert(0, _Block())\n",
        encoding="utf-8",
    )
    config_file = tmp_path / "c.toml"
    config_file.write_text(f'[storage]\ndata_dir = "{(tmp_path / "data").as_posix()}"\n', encoding="utf-8")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "deal_monitor", "--config", str(config_file), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert '"inbox_depth": 0' in result.stdout
