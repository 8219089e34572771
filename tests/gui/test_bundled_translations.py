"""Translations compiled at build time are used as shipped; compiling at first use is the fallback."""

from __future__ import annotations

import os
import shutil

import pytest
from PySide6.QtCore import QCoreApplication

from deal_monitor.gui import i18n

pytestmark = pytest.mark.gui

SOURCE_TS = i18n.ts_file("ru")  # the checkout's translation source


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A resources/i18n folder as the desktop build lays it out: compiled .qm files, no .ts."""
    folder = tmp_path / "bundle" / "i18n"
    i18n.compile_ts(SOURCE_TS, folder / "deal_monitor_ru.qm")
    monkeypatch.setattr(i18n, "TS_DIR", folder)
    return folder


def test_the_frozen_app_loads_the_bundled_qm_without_lrelease(shipped, tmp_path, monkeypatch):
    monkeypatch.setattr(i18n, "lrelease_path", lambda: None)  # a frozen app carries no lrelease
    cache = tmp_path / "cache"
    assert i18n.ensure_qm("ru", cache) == shipped / "deal_monitor_ru.qm"
    translations = i18n.Translations(cache=cache)
    try:
        assert translations.install("ru") == "ru"
        assert QCoreApplication.translate("MainWindow", "demo") == "демо"
    finally:
        translations.install("en")
    assert not cache.exists(), "nothing is compiled at run time"


def test_a_stale_bundled_qm_gives_way_to_a_fresh_compile(shipped, tmp_path):
    ts = shipped / "deal_monitor_ru.ts"
    shutil.copy(SOURCE_TS, ts)
    qm = shipped / "deal_monitor_ru.qm"
    old = ts.stat().st_mtime - 3600
    os.utime(qm, (old, old))  # the source was edited after the build
    cache = tmp_path / "cache"
    compiled = i18n.ensure_qm("ru", cache)
    assert compiled == cache / "deal_monitor_ru.qm" and compiled.stat().st_size > 1000
