"""Where the app keeps its files: platformdirs locations, overridable by settings."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "DealMonitor"
APP_AUTHOR = "DealMonitor"


def data_dir(configured: str = "") -> Path:
    """The folder for the state DB, the default target DB and logs (created if missing)."""
    path = Path(configured).expanduser() if configured else Path(
        platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """The folder for the desktop app's settings file."""
    path = Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR))
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
