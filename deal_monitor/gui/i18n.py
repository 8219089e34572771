"""Interface languages: Russian and English, from the system locale, the settings or ``--lang``.

The translation sources (``resources/i18n/deal_monitor_<lang>.ts``) ship with the package;
the compiled ``.qm`` files are generated, not committed. The desktop build
(``scripts/build_app.py``) compiles them at build time and bundles them beside the sources
(no ``.ts``, no ``lrelease`` in the frozen app); a source checkout or an installed wheel has
only the ``.ts``, and then they are compiled at first use with the ``lrelease`` that ships in
the PySide6 wheel into the user cache folder, and compiled again whenever the ``.ts`` is newer.
``python -m deal_monitor.gui.i18n --out FOLDER`` (re)builds them.

English is the source language; its ``.ts`` only holds the plural forms ("1 deal",
"2 deals").
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import platformdirs
from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from .. import paths

log = logging.getLogger(__name__)

LANGUAGES = ("ru", "en")
SOURCE_LANGUAGE = "en"
TS_DIR = paths.resources_dir() / "i18n"
_CANONICAL = {
    "ru": (QLocale.Language.Russian, QLocale.Country.Russia),
    "en": (QLocale.Language.English, QLocale.Country.UnitedStates),
}


class TranslationError(Exception):
    """A translation could not be compiled (no lrelease, or it failed)."""


def ts_file(lang: str) -> Path:
    return TS_DIR / f"deal_monitor_{lang}.ts"


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(paths.APP_NAME, paths.APP_AUTHOR)) / "i18n"


def lrelease_path() -> Path | None:
    """The lrelease binary of the installed PySide6 wheel (or a ``pyside6-lrelease`` on PATH)."""
    import shutil

    import PySide6

    base = Path(PySide6.__file__).resolve().parent
    for candidate in (base / "lrelease.exe", base / "lrelease", base / "Qt" / "bin" / "lrelease"):
        if candidate.is_file():
            return candidate
    found = shutil.which("pyside6-lrelease")
    return Path(found) if found else None


def compile_ts(ts: Path, qm: Path) -> None:
    """Compile one ``.ts`` into ``.qm`` (written atomically)."""
    tool = lrelease_path()
    if tool is None:
        raise TranslationError("lrelease was not found in the PySide6 installation")
    qm.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=qm.stem, suffix=".qm.tmp", dir=qm.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console flash on Windows
        result = subprocess.run(
            [str(tool), "-silent", str(ts), "-qm", str(tmp)],
            capture_output=True,
            text=True,
            timeout=120,
            creationflags=flags,
        )
        if result.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
            problem = (result.stderr or result.stdout).strip()[:300]
            raise TranslationError(f"lrelease failed for {ts.name}: {problem}")
        os.replace(tmp, qm)
    except (OSError, subprocess.SubprocessError) as exc:
        raise TranslationError(f"cannot run lrelease: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def bundled_qm(lang: str) -> Path | None:
    """A ``.qm`` compiled at build time and shipped in the resources (not older than its ``.ts``)."""
    qm = TS_DIR / f"deal_monitor_{lang}.qm"
    if not qm.is_file():
        return None
    ts = ts_file(lang)
    if ts.exists() and ts.stat().st_mtime > qm.stat().st_mtime:
        return None
    return qm


def ensure_qm(lang: str, cache: Path | None = None) -> Path | None:
    """The compiled translation for ``lang``: the bundled one, else compiled into the cache now
    if missing or stale (the fallback for source checkouts); None if there is none."""
    bundled = bundled_qm(lang)
    if bundled is not None:
        return bundled
    ts = ts_file(lang)
    if not ts.exists():
        return None
    qm = (cache or cache_dir()) / f"deal_monitor_{lang}.qm"
    if not qm.exists() or qm.stat().st_mtime < ts.stat().st_mtime:
        try:
            compile_ts(ts, qm)
        except TranslationError as exc:
            log.warning("%s", exc)
            return qm if qm.exists() else None  # an older build beats none
    return qm


def system_language() -> str:
    """``ru`` when the system prefers Russian, else ``en``."""
    for name in QLocale.system().uiLanguages():
        code = name.replace("_", "-").split("-")[0].lower()
        if code in LANGUAGES:
            return code
    return "ru" if QLocale.system().language() == QLocale.Language.Russian else "en"


def resolve_language(requested: str | None) -> str:
    return requested if requested in LANGUAGES else system_language()


def locale_for(lang: str) -> QLocale:
    """The system locale when it speaks ``lang`` (keeps the user's formats), else a standard one."""
    system = QLocale.system()
    language, country = _CANONICAL.get(lang, _CANONICAL["en"])
    if system.language() == language:
        return system
    return QLocale(language, country)


class Translations:
    """Installs and swaps the app's and Qt's translators on the running application."""

    def __init__(self, cache: Path | None = None) -> None:
        self.cache = cache
        self.language = ""
        self._installed: list[QTranslator] = []

    def install(self, lang: str) -> str:
        """Switch the application to ``lang`` (``ru``/``en``); returns the language in use."""
        app = QCoreApplication.instance()
        lang = lang if lang in LANGUAGES else SOURCE_LANGUAGE
        for translator in self._installed:
            if app is not None:
                app.removeTranslator(translator)
        self._installed = []
        QLocale.setDefault(locale_for(lang))
        qt_dir = QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)
        qt = QTranslator()
        if qt.load(f"qtbase_{lang}", qt_dir):
            self._installed.append(qt)
        qm = ensure_qm(lang, self.cache)
        if qm is not None:
            ours = QTranslator()
            if ours.load(str(qm)):
                self._installed.append(ours)
                log.debug("interface language %s from %s", lang, qm)
            else:
                log.warning("could not load %s", qm)
        if app is not None:
            for translator in self._installed:
                app.installTranslator(translator)
        from . import texts

        texts.clear_cache()
        self.language = lang
        return lang


def main(argv: list[str] | None = None) -> int:
    """``python -m deal_monitor.gui.i18n``: compile every translation now."""
    parser = argparse.ArgumentParser(
        prog="python -m deal_monitor.gui.i18n", description="Compile the UI translations (.qm)."
    )
    parser.add_argument("--out", type=Path, help=f"folder for the .qm files (default: {cache_dir()})")
    args = parser.parse_args(argv)
    out = args.out or cache_dir()
    status = 0
    for lang in LANGUAGES:
        ts = ts_file(lang)
        if not ts.exists():
            continue
        qm = out / f"deal_monitor_{lang}.qm"
        try:
            compile_ts(ts, qm)
        except TranslationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{ts.name} -> {qm}")
    return status


if __name__ == "__main__":
    sys.exit(main())
