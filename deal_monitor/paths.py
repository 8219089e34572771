"""Where the app keeps its files: platformdirs locations, overridable by settings.

No "app author" level: on Windows the folder is ``%LOCALAPPDATA%\\DealMonitor``, not
``DealMonitor\\DealMonitor`` as earlier releases had it; a folder left there is moved up at
first use (macOS and Linux never had the extra level).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)

APP_NAME = "DealMonitor"
APP_AUTHOR = False  # platformdirs' appauthor: no DealMonitor\DealMonitor on Windows
LEGACY_AUTHOR = "DealMonitor"  # what earlier releases passed
PLATFORM_DIRS = platformdirs.PlatformDirs  # the rules of this OS (tests swap in another OS's)


def _user_dir(kind: str) -> Path:
    """``user_data_dir`` or ``user_config_dir``, after moving an earlier release's folder."""
    path = Path(getattr(PLATFORM_DIRS(APP_NAME, APP_AUTHOR), kind))
    legacy = Path(getattr(PLATFORM_DIRS(APP_NAME, LEGACY_AUTHOR), kind))
    if legacy != path and legacy.is_dir():
        move_legacy_folder(legacy, path)
    return path


def move_legacy_folder(legacy: Path, path: Path) -> bool:
    """Move the entries of an earlier release's folder into ``path`` (all or none).

    Not while an instance of that release runs there (its instance lock is held): then the old
    folder stays in use by it and this start says so. An entry whose name already exists in
    ``path`` is left where it is.
    """
    from .instance import InstanceLock

    lock = InstanceLock(legacy)
    if (legacy / lock.path.name).exists() and not lock.acquire():
        log.warning("an earlier Deal Monitor is running in %s; its files are moved to %s after "
                    "it stops", legacy, path)
        return False
    lock.release()
    path.mkdir(parents=True, exist_ok=True)
    moved: list[tuple[Path, Path]] = []
    try:
        for entry in sorted(legacy.iterdir()):
            target = path / entry.name
            if target.exists():
                continue
            entry.rename(target)
            moved.append((target, entry))
    except OSError as exc:
        for target, entry in reversed(moved):
            target.rename(entry)
        log.warning("could not move %s to %s (%s); will try again at the next start",
                    legacy, path, exc)
        return False
    with contextlib.suppress(OSError):  # something was left (a name in both): keep it
        legacy.rmdir()
    log.info("moved the files of an earlier release from %s to %s", legacy, path)
    return True


def data_dir(configured: str = "") -> Path:
    """The folder for the state DB, the default target DB and logs (created if missing)."""
    path = Path(configured).expanduser() if configured else _user_dir("user_data_dir")
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """The folder for the desktop app's settings file."""
    path = _user_dir("user_config_dir")
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_config_file() -> Path:
    return config_dir() / "deal-monitor.toml"


def sqlite_url(path: Path) -> str:
    """An SQLAlchemy URL for a SQLite file (forward slashes work on Windows too)."""
    return "sqlite:///" + path.resolve().as_posix()


def resources_dir() -> Path:
    """Icons and translation sources: ``deal_monitor/resources`` in an installed wheel, the
    top-level ``resources/`` folder in a source checkout (the same files, mapped by
    pyproject's package-dir)."""
    here = Path(__file__).resolve().parent
    installed = here / "resources"
    return installed if installed.is_dir() else here.parent / "resources"
