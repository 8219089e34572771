"""The frozen Linux app (``python scripts/build_app.py``) starts under Xvfb, in Russian.

Slow and opt-in: it needs the PyInstaller bundle in dist/ (a CPU-heavy build that CI does not
run) and Xvfb. ``scripts/frozen_smoke.py`` is the same check as a script that also writes the
screenshot for the docs.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import frozen_smoke  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux bundle"),
    pytest.mark.skipif(not frozen_smoke.DEFAULT_APP.is_file(),
                       reason="no frozen app in dist/: run python scripts/build_app.py"),
    pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xwininfo")),
                       reason="needs Xvfb and xwininfo (apt-get install xvfb x11-utils)"),
    pytest.mark.timeout(300),
]


def test_the_frozen_app_starts_in_russian_with_the_demo(tmp_path):
    shot = tmp_path / "frozen.png"
    result = frozen_smoke.run(frozen_smoke.DEFAULT_APP, shot, settle_seconds=1.0)
    assert frozen_smoke.problems(result) == [], result.log[-3000:]
    assert result.title.startswith("Deal Monitor — демо")
    assert "DealMonitor" in result.wm_class  # what the .desktop file's StartupWMClass names
    assert shot.is_file() and shot.stat().st_size > 20_000  # a real window, not a blank frame
