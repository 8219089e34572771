"""Versioned state DB schema: Alembic steps in ``versions/``, run at start by ``upgrade()``.

Called before anything reads the state, by the process holding the instance lock. A DB whose
version this code does not know (made by a newer release) is refused. A failed step leaves the
old DB as it was: a SQLite file is migrated as a copy (read through a read-only connection, so
neither the file nor a WAL left by a crash is touched) that replaces the original only once it
is complete; PostgreSQL migrates inside one transaction, under an advisory lock so instances
sharing the inbox take turns. How to add a step: README.md in this folder.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

# before alembic is imported (it logs its plugins then): one line of ours says what happened
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic.config import Config  # noqa: E402
from alembic.runtime.environment import EnvironmentContext  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Connection, Engine, create_engine, inspect, text  # noqa: E402

from ...errors import DealMonitorError  # noqa: E402

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PG_LOCK_KEY = 0x6465616C  # pg_advisory_xact_lock key of the state DB migration ("deal")


class SchemaTooNew(DealMonitorError):
    hint = ("Start the newer Deal Monitor that made it, or restore the copy of the data folder "
            "made before the upgrade.")


class MigrationFailed(DealMonitorError):
    hint = ("The state database was left as it was. Start the previous version of Deal Monitor "
            "to keep working, and report this message.")


def script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return ScriptDirectory.from_config(config)


def head() -> str:
    """The newest schema version this code knows."""
    revision = script_directory().get_current_head()
    assert revision is not None
    return revision


def current(conn: Connection) -> str | None:
    """The DB's schema version; None when it has none (empty, or made before migrations)."""
    return MigrationContext.configure(conn).get_current_revision()


def _known() -> set[str]:
    return {script.revision for script in script_directory().walk_revisions()}


def _describe(engine: Engine) -> str:
    url = engine.url
    return url.database if url.get_backend_name() == "sqlite" else url.render_as_string()


def check_version(version: str | None, where: str) -> None:
    """Refuse a DB made by a newer release (a version this code does not know)."""
    if version is not None and version not in _known():
        raise SchemaTooNew(
            f"the state database {where} has schema version {version}, newer than this "
            f"Deal Monitor knows ({head()})."
        )


def needs_upgrade(engine: Engine) -> bool:
    """True when ``upgrade()`` would change the DB (raises SchemaTooNew for a future one)."""
    path = _sqlite_file(engine)
    if path is not None and not path.exists():
        return True
    probe = _read_only(path) if path is not None else engine
    try:
        with probe.connect() as conn:
            version = current(conn)
    finally:
        if probe is not engine:
            probe.dispose()
    check_version(version, _describe(engine))
    return version != head()


def upgrade(engine: Engine) -> None:
    """Bring the state DB to the newest schema (nothing to do when it is there already)."""
    if not needs_upgrade(engine):
        return
    path = _sqlite_file(engine)
    if path is None:
        _upgrade_in_transaction(engine)
    elif not path.exists() or path.stat().st_size == 0:
        _upgrade_in_transaction(engine)  # a new DB: nothing to lose
    else:
        _upgrade_sqlite_copy(engine, path)


def _run(conn: Connection, where: str) -> None:
    script = script_directory()
    before = current(conn)
    check_version(before, where)
    legacy = before is None and "inbox" in inspect(conn).get_table_names()

    def steps(revision, _context):
        return script._upgrade_revs("head", revision)

    with EnvironmentContext(Config(), script, fn=steps, destination_rev="head") as env:
        env.configure(connection=conn, render_as_batch=True)
        with env.begin_transaction():
            env.run_migrations()
    if legacy:
        log.info("state database %s: brought forward from a release before migrations", where)
    log.info("state database %s: schema %s -> %s", where, before or "none", head())


def _upgrade_in_transaction(engine: Engine) -> None:
    where = _describe(engine)
    try:
        with engine.execution_options(deal_monitor_write=True).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            _run(conn, where)
    except DealMonitorError:
        raise
    except Exception as exc:
        raise MigrationFailed(f"upgrading the state database {where} failed: {_short(exc)}") from exc


def _upgrade_sqlite_copy(engine: Engine, path: Path) -> None:
    """Migrate a snapshot of the file, then put it in the file's place."""
    from ..engine import make_engine

    work = path.with_name(path.name + ".upgrading")
    _remove_db(work)  # left by a start that died while upgrading
    try:
        source = _read_only(path)
        try:
            with source.connect() as conn:
                raw_src = conn.connection.driver_connection
                target = make_engine("sqlite:///" + work.as_posix())
                try:
                    with target.connect() as dst_conn:
                        raw_src.backup(dst_conn.connection.driver_connection)
                    with target.begin() as dst:
                        _run(dst, str(path))
                    with target.connect() as dst_conn:
                        dst_conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    target.dispose()
        finally:
            source.dispose()
    except Exception as exc:
        _remove_db(work)
        if isinstance(exc, DealMonitorError):
            raise
        raise MigrationFailed(f"upgrading the state database {path} failed: {_short(exc)}") from exc
    # the snapshot is complete: fold the original's WAL in (same data, nobody else writes under
    # the instance lock), drop it so it can never be replayed onto the new file, then swap
    try:
        engine.dispose()
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        for suffix in ("-wal", "-shm"):
            _remove(Path(str(path) + suffix))
            _remove(Path(str(work) + suffix))
        os.replace(work, path)
    except Exception as exc:  # e.g. Windows: another program has the file open
        _remove_db(work)
        raise MigrationFailed(f"could not put the upgraded state database in place of {path}: "
                              f"{_short(exc)}") from exc


def _sqlite_file(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _read_only(path: Path) -> Engine:
    """A connection that cannot change the file (no checkpoint on close, no WAL replay).

    Made by hand: an SQLAlchemy URL would mangle a folder name with ``?``, ``#`` or ``%``."""
    uri = path.resolve().as_uri() + "?mode=ro"
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(
        uri, uri=True, check_same_thread=False))


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        _remove(Path(str(path) + suffix))


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _short(exc: Exception) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text_[:300]


__all__ = ["MigrationFailed", "SchemaTooNew", "check_version", "current", "head",
           "needs_upgrade", "upgrade"]
