"""State DB migrations: the schema they make, earlier DBs, a DB from the future, failed steps."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from deal_monitor.store import migrations
from deal_monitor.store.engine import make_engine
from deal_monitor.store.migrations import MigrationFailed, SchemaTooNew
from deal_monitor.store.state import StateStore, metadata
from tests.e2e.test_shared_inbox import pg_database  # noqa: F401 - a fresh PostgreSQL database

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "state_db"

FAILING_STEP = '''
import sqlalchemy as sa
from alembic import op

revision = "0999"
down_revision = "{head}"


def upgrade():
    op.add_column("inbox", sa.Column("half_done", sa.Integer))
    op.execute("UPDATE inbox SET status = 'broken'")
    raise RuntimeError("disk full (simulated)")
'''


def sqlite_store(path: Path) -> StateStore:
    return StateStore(make_engine("sqlite:///" + path.as_posix()))


def fixture_copy(commit: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    for name in ("state.db", "state.db-wal"):
        shutil.copyfile(FIXTURES / commit / name, into / name)
    return into / "state.db"


def digests(folder: Path) -> dict[str, str]:
    """The state DB's files. Not the -shm index (rebuilt by any reader, not data) nor an empty
    -wal: a reader of a WAL-mode DB creates one where none was; no WAL and an empty one are
    the same database."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())
            if not p.name.endswith("-shm") and not (p.name.endswith("-wal") and not p.stat().st_size)}


def described(engine) -> dict[str, tuple[set[str], set[tuple[str, tuple[str, ...], bool]]]]:
    found = inspect(engine)
    return {
        name: ({c["name"] for c in found.get_columns(name)},
               {(i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in found.get_indexes(name)})
        for name in found.get_table_names() if name != "alembic_version"
    }


def declared() -> dict[str, tuple[set[str], set[tuple[str, tuple[str, ...], bool]]]]:
    return {
        table.name: ({c.name for c in table.columns},
                     {(i.name, tuple(c.name for c in i.columns), bool(i.unique))
                      for i in table.indexes})
        for table in metadata.sorted_tables
    }


def test_a_new_sqlite_db_has_exactly_the_schema_the_code_declares(tmp_path):
    # a column added to store/state.py without a migration step fails here
    store = sqlite_store(tmp_path / "state.db")
    store.create()
    assert described(store.engine) == declared()


@pytest.mark.postgres
def test_a_new_postgresql_db_has_exactly_the_schema_the_code_declares(pg_database):  # noqa: F811
    store = StateStore(make_engine(pg_database))
    store.create()
    store.create()  # a second start finds nothing to do
    assert described(store.engine) == declared()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    store.engine.dispose()


@pytest.mark.parametrize("commit", ["6e9e627", "d458347"])
def test_a_db_of_an_earlier_release_is_brought_forward_with_its_rows(tmp_path, commit):
    path = fixture_copy(commit, tmp_path / "Анна Петрова" / "data")  # a user folder as on Windows
    probe = fixture_copy(commit, tmp_path / "probe")
    conn = sqlite3.connect(probe)
    before = conn.execute("SELECT id, deal_id, status FROM inbox ORDER BY id").fetchall()
    history = conn.execute("SELECT count(*) FROM deal_history").fetchone()[0]
    conn.close()
    assert before and history

    store = sqlite_store(path)
    store.create()
    assert described(store.engine) == declared()
    store.engine.dispose()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT id, deal_id, status FROM inbox ORDER BY id").fetchall() == before
    assert conn.execute("SELECT count(*) FROM deal_history").fetchone()[0] == history
    # the columns added to old rows hold their defaults, not NULL
    assert conn.execute("SELECT count(*) FROM deal_history WHERE code IS NULL OR params IS NULL"
                        ).fetchone()[0] == 0
    conn.close()
    assert not (path.parent / "state.db.upgrading").exists()


def test_a_db_from_a_newer_release_is_refused_in_one_line_and_left_alone(tmp_path):
    path = tmp_path / "data" / "state.db"
    path.parent.mkdir()
    made = sqlite_store(path)
    made.create()
    made.engine.dispose()  # its last connection folds the WAL in now, not during the check
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = '7777_from_the_future'")
    conn.commit()
    conn.close()
    before = digests(path.parent)

    store = sqlite_store(path)
    with pytest.raises(SchemaTooNew) as caught:
        store.create()
    message = str(caught.value)
    assert "\n" not in message and "7777_from_the_future" in message
    assert digests(path.parent) == before


@pytest.fixture
def failing_step(tmp_path, monkeypatch) -> None:
    """The real steps plus one that changes things and then fails."""
    location = tmp_path / "steps"
    shutil.copytree(migrations.HERE / "versions", location / "versions",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (location / "versions" / "0999_fails.py").write_text(
        FAILING_STEP.format(head=migrations.head()), encoding="utf-8")
    monkeypatch.setattr(migrations, "HERE", location)


@pytest.mark.parametrize("commit", ["6e9e627", "d458347"])
def test_a_failed_migration_leaves_the_db_byte_identical(tmp_path, monkeypatch, commit,
                                                         failing_step):
    path = fixture_copy(commit, tmp_path / "data")
    before = digests(path.parent)
    store = sqlite_store(path)
    with pytest.raises(MigrationFailed) as caught:
        store.create()
    assert "disk full (simulated)" in str(caught.value)
    assert "left as it was" in caught.value.hint
    store.engine.dispose()
    assert digests(path.parent) == before
    assert not [p.name for p in path.parent.iterdir() if ".upgrading" in p.name]

    # the same DB upgrades once the step is fixed (here: without the failing step)
    monkeypatch.undo()
    store = sqlite_store(path)
    store.create()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM inbox WHERE status = 'queued'").fetchone()[0] == 4
    conn.close()


@pytest.mark.postgres
def test_a_failed_migration_on_postgresql_is_rolled_back(pg_database, failing_step):  # noqa: F811
    store = StateStore(make_engine(pg_database))
    with pytest.raises(MigrationFailed):
        store.create()
    store.engine.dispose()
    engine = create_engine(pg_database)
    assert inspect(engine).get_table_names() == []  # not even the base step stayed
    engine.dispose()


OLD_RELEASE_WRITES = """
import sys
import deal_monitor
assert deal_monitor.__file__.startswith(sys.argv[2]), deal_monitor.__file__  # the old code
from deal_monitor.model import Source
from deal_monitor.store.engine import make_engine
from deal_monitor.store.state import NewEvent, StateStore

store = StateStore(make_engine(sys.argv[1]))
store.create()
store.add_events([NewEvent(event="ONCRMDEALUPDATE", deal_id=n, source=Source.PUSH)
                  for n in (11, 12, 13)])
store.engine.dispose()
"""


@pytest.mark.postgres
def test_a_shared_postgresql_inbox_of_the_previous_release_is_stamped_and_kept(
        tmp_path, pg_database):  # noqa: F811
    import subprocess
    import sys
    import tarfile
    from io import BytesIO

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("needs a git checkout (the previous release is taken from its history)")
    archive = subprocess.run(["git", "archive", "d458347", "deal_monitor"], cwd=root,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "old", filter="data")
    subprocess.run([sys.executable, "-c", OLD_RELEASE_WRITES, pg_database, str(tmp_path / "old")],
                   cwd=tmp_path / "old",
                   env={"PYTHONPATH": str(tmp_path / "old"), "PATH": ""}, check=True, timeout=120)
    engine = create_engine(pg_database)
    assert "alembic_version" not in inspect(engine).get_table_names()  # made before migrations
    engine.dispose()

    store = StateStore(make_engine(pg_database))
    store.create()
    assert described(store.engine) == declared()
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT deal_id, status FROM inbox ORDER BY deal_id")).all()
    assert [tuple(r) for r in rows] == [(11, "queued"), (12, "queued"), (13, "queued")]
    store.engine.dispose()
