"""Full resync through the direct path, end to end: the real Monitor, the portal simulator
over HTTP, and each real target engine (``target_url``: SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import MetaData, Table, select, update

from deal_monitor import config
from deal_monitor.model import DealState, EventStatus, NullSink, Progress, Source
from deal_monitor.service import Monitor
from deal_monitor.simulator import PortalSimulator
from deal_monitor.store.state import NewEvent
from tests.e2e.harness import wait_for
from tests.e2e.test_mapping import product_rows, seed_table
from tests.oracle import monitor_target, target_table


@pytest.fixture
def sim():
    with PortalSimulator() as simulator:
        yield simulator


class Recorder(NullSink):
    def __init__(self) -> None:
        self.synced = []
        self.progress: list[Progress] = []
        self.on_progress = None

    def deal_synced(self, outcome) -> None:
        self.synced.append(outcome)

    def progress_changed(self, progress: Progress) -> None:
        self.progress.append(progress)
        if self.on_progress is not None:
            self.on_progress(progress)

    def finished(self) -> Progress | None:
        done = [p for p in self.progress if p.job == "resync" and p.finished]
        return done[-1] if done else None


def start(sim, tmp_path, target_url, table_name, recorder, **mapping) -> Monitor:
    settings = config.from_mapping(
        {
            "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
            "listener": {"enabled": False},
            "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0, "deletion_check_minutes": 0,
                     "skip_stages": ["NEW"]},
            "target": {"url": target_url, "table": table_name},
            "mapping": mapping,
            "storage": {"data_dir": str(tmp_path / "data")},
        },
        env={},
    )
    monitor = Monitor(settings, sink=recorder)
    monitor.start()
    # the start-up reconciliation runs against an empty portal: the resync does all the work
    wait_for(lambda: monitor.scheduler.runs >= 1, timeout=30)
    return monitor


def resync_all(monitor: Monitor, recorder: Recorder) -> Progress:
    recorder.progress.clear()
    assert monitor.resync_all()
    monitor._job.join(120)
    finished = recorder.finished()
    assert finished is not None and not finished.error, finished
    return finished


def target_rows(monitor: Monitor) -> dict[int, dict]:
    return target_table(*monitor_target(monitor))  # plain SQL, not the writer


def test_every_deal_reaches_the_target_without_the_inbox(sim, tmp_path, target_url, table_name):
    recorder = Recorder()
    monitor = start(sim, tmp_path, target_url, table_name, recorder)
    try:
        ids = sim.portal.bulk_add(3_000, STAGE_ID="EXECUTING")
        held = sim.portal.bulk_add(20, STAGE_ID="NEW")
        sim.reset_stats()
        finished = resync_all(monitor, recorder)
        assert finished.done == 3_020 and finished.total == 3_020 and not finished.cancelled
        assert sim.stats.http_requests <= 4  # count, first page, two batches of 50 pages
        # the target holds every deal at once: nothing waits in the inbox for the worker
        assert sorted(target_rows(monitor)) == ids
        assert monitor.state.count_by_status() == {}
        # the deals table and each deal's timeline are up to date
        views = {v.id: v for v in monitor.deals()}
        assert len(views) == 3_020
        assert views[ids[0]].state == DealState.SYNCED and views[held[0]].state == DealState.SKIPPED
        assert [e.code for e in monitor.history(ids[5])] == ["events", "created"]
        assert [e.code for e in monitor.history(held[0])] == ["events", "skipped_stage"]
        # the window heard of each deal, with the ones that reached production
        reported = {o.deal_id: o for o in recorder.synced}
        assert set(reported) == set(ids) | set(held)
        assert reported[ids[0]].reached_production and not reported[held[0]].reached_production
        assert reported[held[0]].status == EventStatus.SKIPPED
        assert monitor.state.get_value("resync.cursor") is None
        assert monitor.status().last_sync_at is not None
    finally:
        monitor.stop()


def test_newer_rows_in_the_target_survive_and_changes_are_written(sim, tmp_path, target_url, table_name):
    recorder = Recorder()
    monitor = start(sim, tmp_path, target_url, table_name, recorder)
    try:
        ids = sim.portal.bulk_add(200, STAGE_ID="EXECUTING")
        resync_all(monitor, recorder)
        # another writer put newer data into deal ids[3]'s row; the portal changed ids[4]
        future = datetime.utcnow().replace(microsecond=0) + timedelta(days=1)
        table = monitor.target.table
        with monitor.target.engine.begin() as conn:
            conn.execute(update(table).where(table.c.bitrix_id == ids[3])
                         .values(title="newer in the warehouse", date_modify=future))
        sim.portal.update_deal(ids[4], {"TITLE": "Шкаф-купе"})
        resync_all(monitor, recorder)
        rows = target_rows(monitor)
        assert rows[ids[3]]["title"] == "newer in the warehouse"
        assert rows[ids[3]]["date_modify"] == future
        assert rows[ids[4]]["title"] == "Шкаф-купе"
        assert monitor.history(ids[3])[-1].code == "stale"
        last = monitor.history(ids[4])[-1]
        assert last.code == "updated" and ("TITLE", f"Сделка #{ids[4]}", "Шкаф-купе") in {
            (c.field, c.old, c.new) for c in last.changes}
        assert monitor.state.deal(ids[4]).title == "Шкаф-купе"
    finally:
        monitor.stop()


def test_a_deal_with_queued_events_is_synced_once_by_the_worker(sim, tmp_path, target_url, table_name):
    recorder = Recorder()
    monitor = start(sim, tmp_path, target_url, table_name, recorder)
    try:
        ids = sim.portal.bulk_add(300, STAGE_ID="EXECUTING")
        deal_id = ids[120]
        # an event for the deal waits in the inbox (its retry delay is not over)
        [event] = monitor.state.add_events([NewEvent("ONCRMDEALUPDATE", deal_id, Source.PUSH)])
        monitor.state.retry_rows([event.id], "portal busy", 300)
        sim.reset_stats()
        resync_all(monitor, recorder)
        wait_for(lambda: deal_id in target_rows(monitor), timeout=20)
        wait_for(lambda: monitor.status().inbox_depth == 0)
        assert len(target_rows(monitor)) == 300
        # the resync left the deal to the worker, which read it once and finished both rows
        assert deal_id not in {o.deal_id for o in recorder.synced if o.event_ids == ()}
        assert sim.stats.calls_by_method.get("crm.deal.get", 0) == 1
        rows = [r for r in monitor.events() if r.deal_id == deal_id]
        assert sorted((r.event, r.status) for r in rows) == [
            ("ONCRMDEALUPDATE", EventStatus.SYNCED), ("RESYNC", EventStatus.SYNCED)]
        timeline = monitor.history(deal_id)
        assert [e.code for e in timeline] == ["events", "fetched", "created"]
        assert timeline[0].params["summary"] == "ONCRMDEALUPDATE (push), RESYNC (manual)"
        assert [e.code for e in monitor.history(ids[121])] == ["events", "created"]
    finally:
        monitor.stop()


def test_cancel_and_resume_across_engines(sim, tmp_path, target_url, table_name):
    recorder = Recorder()
    monitor = start(sim, tmp_path, target_url, table_name, recorder)
    try:
        ids = sim.portal.bulk_add(5_100, STAGE_ID="EXECUTING")
        recorder.on_progress = lambda p: p.done >= 50 and not p.finished and monitor.cancel_job()
        stopped = resync_all(monitor, recorder)
        assert stopped.cancelled and stopped.done < 5_100
        cursor = int(monitor.state.get_value("resync.cursor"))
        assert sorted(target_rows(monitor)) == [i for i in ids if i <= cursor]
        assert len(monitor.deals()) == len([i for i in ids if i <= cursor])
        recorder.on_progress = None
        finished = resync_all(monitor, recorder)
        assert not finished.cancelled and finished.done == len([i for i in ids if i > cursor])
        assert sorted(target_rows(monitor)) == ids and len(monitor.deals()) == 5_100
        assert monitor.state.get_value("resync.cursor") is None
        assert monitor.state.count_by_status() == {}
    finally:
        monitor.stop()


def test_seed_table_and_product_rows_take_the_direct_path(sim, tmp_path, target_url, table_name):
    from deal_monitor.store.engine import make_engine

    engine = make_engine(target_url, synchronous="NORMAL")
    table = seed_table(engine, table_name)
    recorder = Recorder()
    products_table = f"{table_name}_product"
    monitor = start(sim, tmp_path, target_url, table_name, recorder, preset="seed",
                    products=True, product_table=products_table)
    try:
        ids = sim.portal.bulk_add(120, STAGE_ID="EXECUTING")
        sim.portal.set_product_rows(ids[7], [
            {"PRODUCT_ID": 12, "PRODUCT_NAME": "Ножка", "PRICE": 1200, "QUANTITY": 4},
        ])
        resync_all(monitor, recorder)
        with engine.connect() as conn:
            names = {r.name for r in conn.execute(select(table))}
        assert len(names) == 120 and f"Сделка №{ids[7]} — Сделка #{ids[7]}" in names
        assert [r["name"] for r in product_rows(engine, products_table).values()] == ["Ножка"]
        assert [e.code for e in monitor.history(ids[7])] == ["events", "created", "products"]
        assert monitor.state.count_by_status() == {}
        link = Table(f"{table_name}_link", MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            assert len(conn.execute(select(link)).all()) == 120
    finally:
        monitor.stop()
        engine.dispose()
