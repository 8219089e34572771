"""``backup PATH``: a consistent copy of the SQLite state DB, safe while an instance runs.

SQLite's online backup API copies the pages inside one read transaction; in WAL mode that
reader does not block the running instance's writers, and the copy is the state at one
moment. The copy is written next to PATH first, checked, and only then renamed to PATH, so a
failed backup never leaves a half-written file under the name.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from .errors import DealMonitorError
from .store.engine import is_sqlite


def backup_state(state_url: str, destination: Path) -> Path:
    """Copy the state DB to ``destination`` (a folder gets a dated file name); returns the file."""
    if not is_sqlite(state_url):
        raise DealMonitorError("backup copies a SQLite state DB",
                               "The state DB is PostgreSQL: back it up with pg_dump.")
    source = Path(state_url.removeprefix("sqlite:///").split("?", 1)[0])
    if not source.is_file():
        raise DealMonitorError(f"no state DB at {source}", "Start the instance once first.")
    if destination.is_dir():
        destination = destination / f"state-{datetime.now(UTC):%Y%m%d-%H%M%S}.db"
    if destination.resolve() == source.resolve():
        raise DealMonitorError("the backup would overwrite the state DB", "Name another file.")
    partial = destination.with_name(destination.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise DealMonitorError(f"the copy failed its integrity check: {check}", "Try again.")
    os.replace(partial, destination)
    return destination
