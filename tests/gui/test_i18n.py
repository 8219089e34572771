"""Translations: complete, up to date with the code, compiled on demand; core texts in words."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication

from deal_monitor.gui import formatting, i18n, texts
from deal_monitor.model import EventStatus, HistoryEntry

pytestmark = pytest.mark.gui

GUI = Path(i18n.__file__).resolve().parent


def messages(ts: Path):
    for context in ET.parse(ts).getroot().iter("context"):
        for message in context.findall("message"):
            yield context.find("name").text, message


def test_russian_translation_is_complete():
    count = 0
    for context, message in messages(i18n.ts_file("ru")):
        count += 1
        translation = message.find("translation")
        source = message.find("source").text
        assert translation.get("type") is None, f"unfinished: {context}: {source}"
        if message.get("numerus") == "yes":
            forms = [f.text for f in translation.findall("numerusform")]
            assert len(forms) == 3 and all(forms), f"{context}: {source}"
        else:
            assert translation.text, f"{context}: {source}"
    assert count > 250


def test_translation_sources_match_the_code(tmp_path):
    """Every string the code translates is in the .ts (run lupdate on a copy)."""
    lupdate = shutil.which("pyside6-lupdate")
    if lupdate is None:
        pytest.skip("pyside6-lupdate is not on PATH")
    copy = tmp_path / "ru.ts"
    shutil.copy(i18n.ts_file("ru"), copy)
    sources = sorted(p.name for p in GUI.glob("*.py"))
    subprocess.run([lupdate, *sources, "-ts", str(copy), "-no-obsolete", "-locations", "none"],
                   cwd=GUI, check=True, capture_output=True, timeout=120)
    missing = [f"{c}: {m.find('source').text}" for c, m in messages(copy)
               if m.find("translation").get("type") == "unfinished"]
    assert missing == [], "run lupdate and translate: " + "; ".join(missing)


def test_qm_is_compiled_at_first_use_and_when_stale(tmp_path):
    qm = i18n.ensure_qm("ru", tmp_path)
    assert qm is not None and qm.exists() and qm.stat().st_size > 1000
    # older than its source (relative to the .ts, whatever age the checkout's files have)
    old = (i18n.TS_DIR / "deal_monitor_ru.ts").stat().st_mtime - 3600
    os.utime(qm, (old, old))
    again = i18n.ensure_qm("ru", tmp_path)
    assert again == qm and qm.stat().st_mtime > old + 60


def test_the_build_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "deal_monitor.gui.i18n", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "deal_monitor_ru.qm").exists()
    assert (tmp_path / "deal_monitor_en.qm").exists()


def test_switching_language_translates_and_formats(tmp_path):
    translations = i18n.Translations(cache=tmp_path)
    try:
        assert translations.install("ru") == "ru"
        assert texts.status_label(EventStatus.SKIPPED) == "пропущено по стадии"
        assert QCoreApplication.translate("MainWindow", "%n deal(s)", None, 22) == "22 сделки"
        assert QCoreApplication.translate("MainWindow", "%n deal(s)", None, 25) == "25 сделок"
        assert formatting.amount_text(Decimal("1234.5"), "RUB") == "1\xa0234,50\xa0₽"
        assert formatting.duration_text(150) == "2 мин"
    finally:
        translations.install("en")
    assert texts.status_label(EventStatus.SKIPPED) == "skipped by stage"
    assert QCoreApplication.translate("MainWindow", "%n deal(s)", None, 1) == "1 deal"
    assert formatting.amount_text(Decimal("1234.5"), "USD") == "$1,234.50"


def test_language_choice():
    assert i18n.resolve_language("ru") == "ru"
    assert i18n.resolve_language("en") == "en"
    assert i18n.resolve_language(None) in ("ru", "en")


def _entry(kind: str, code: str, **params: object) -> HistoryEntry:
    from deal_monitor.sync.notes import note

    made = note(kind, code, **params)
    return HistoryEntry(1, datetime.now(UTC), made.kind, made.text, (), made.code,
                        dict(made.params))


def test_core_texts_are_put_in_words():
    events = _entry("event", "events", summary="ONCRMDEALUPDATE (push) ×2, RESYNC (manual)")
    assert texts.history_text(events) == "Deal changed (push) ×2, Resync (manual)"
    assert texts.history_text(_entry("event", "events", summary="RECONCILE (reconcile)")) == (
        "Reconciliation")
    names = {"C1:NEW": "Order received"}.get
    assert texts.history_text(_entry("decision", "skipped_stage", stage="C1:NEW"), names) == (
        "Not sent to production: stage “Order received” is skipped by the stage filter")
    assert texts.history_text(_entry("write", "created")) == (
        "Written to the production database (new row)")
    assert texts.history_text(_entry("write", "products", count=3)) == "Product rows written: 3"
    read = texts.history_text(
        _entry("fetch", "fetched", stage="WON", modified="2026-03-14T10:00:00+03:00"))
    assert read.startswith("Read from the portal: stage “WON”, changed ")


def test_every_timeline_code_has_a_translation():
    """A new note code in the worker must not reach the Russian window in English."""
    from deal_monitor.sync.notes import TEMPLATES

    for code in TEMPLATES:
        params = {"summary": "RESYNC (manual)", "stage": "NEW", "modified": "2026-03-14T10:00:00+03:00",
                  "error": "Not found", "count": "1"}
        entry = _entry("write", code, **{k: v for k, v in params.items() if "{" + k + "}" in TEMPLATES[code]})
        assert texts.history_text(entry) != entry.text or code in ("failed",), code


    assert texts.error_text("wrong application token") == "wrong application token"
    assert texts.error_text("NO_AUTH_FOUND: Wrong authorization data").startswith(
        "the webhook URL is wrong or was revoked")
    assert texts.error_text("something new") == "something new"
    assert texts.event_label("HTTP 401") == "Request refused (HTTP 401)"
