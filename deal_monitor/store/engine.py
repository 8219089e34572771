"""Creating SQLAlchemy engines with the settings each database needs.

SQLite: WAL journal, a busy timeout, and ``BEGIN IMMEDIATE`` for write transactions (a
deferred transaction that reads first and writes later can fail at once with SQLITE_BUSY).
The inbox runs with ``synchronous=FULL`` because a 200 sent to Bitrix24 cannot be taken back;
a SQLite target may use NORMAL since reconciliation can rebuild it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from ..envconfig import with_password

WRITE = {"deal_monitor_write": True}


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str | URL, *, synchronous: str = "FULL", busy_timeout_s: float = 10.0) -> Engine:
    """An engine for ``url``; use ``engine.execution_options(**WRITE)`` for write transactions."""
    url = with_password(url)  # a DB password kept as a secret, not in the configured URL
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs: dict = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
        # a row another session holds must not stop the one worker: wait a while, then fail
        # (transient) and retry later
        if parsed.get_backend_name() == "postgresql":
            kwargs["connect_args"] = {
                "connect_timeout": 5,
                "options": "-c lock_timeout=10000 -c statement_timeout=60000",
            }
        elif parsed.get_backend_name() in ("mysql", "mariadb"):
            kwargs["connect_args"] = {
                "connect_timeout": 5,
                "charset": "utf8mb4",
                "init_command": "SET SESSION innodb_lock_wait_timeout=10",
            }
            kwargs["pool_recycle"] = 3600
        return create_engine(url, **kwargs)

    engine = create_engine(
        url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        if conn.get_execution_options().get("deal_monitor_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def utcnow() -> datetime:
    """Naive UTC 'now', the form every timestamp takes in our tables."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_db_time(value: datetime | None) -> datetime | None:
    """Aware datetime -> naive UTC for storage; naive values are taken as UTC already."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def from_db_time(value: datetime | None) -> datetime | None:
    """Naive UTC from the DB -> aware UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
