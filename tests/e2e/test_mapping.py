"""Writing into the warehouse's own tables: mappings, the seed preset, product rows, dry run.

Each test runs against SQLite, PostgreSQL and MariaDB (the ``target_url`` fixture), with the
real Monitor reading deals from the portal simulator.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Column, Date, Integer, MetaData, Numeric, String, Table, Text, select

from deal_monitor import config
from deal_monitor.errors import TargetError
from deal_monitor.service import Monitor
from deal_monitor.simulator import PortalSimulator
from deal_monitor.store.engine import make_engine
from tests.e2e.harness import wait_for
from tests.oracle import live_ids, monitor_target


@pytest.fixture
def sim():
    with PortalSimulator() as simulator:
        yield simulator


@pytest.fixture
def engine(target_url):
    engine = make_engine(target_url, synchronous="NORMAL")
    yield engine
    engine.dispose()


def seed_table(engine, name: str, *extra: Column) -> Table:
    """The seed's table: deal(name, date, amount, comment, accounting) with its own PK."""
    table = Table(
        name,
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(255)),
        Column("date", Date),
        Column("amount", Numeric(12, 2)),
        Column("comment", Text),
        Column("accounting", Integer),
        *extra,
        mysql_charset="utf8mb4",
    )
    table.metadata.create_all(engine)
    return table


def start_monitor(sim, tmp_path, target_url, table_name, **mapping) -> Monitor:
    settings = config.from_mapping(
        {
            "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
            "listener": {"enabled": False},
            "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0, "deletion_check_minutes": 0},
            "target": {"url": target_url, "table": table_name},
            "mapping": mapping,
            "storage": {"data_dir": str(tmp_path / "data")},
        },
        env={},
    )
    monitor = Monitor(settings)
    monitor.start()
    return monitor


def rows(engine, table: Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]


def synced(monitor: Monitor, deal_id: int, status: str = "synced") -> None:
    wait_for(lambda: any(e.deal_id == deal_id and e.status.value == status for e in monitor.events()))
    wait_for(lambda: monitor.status().inbox_depth == 0)


def test_seed_preset_keys_by_id_so_deal_1_never_touches_10_to_19(sim, tmp_path, target_url, engine, table_name):
    table = seed_table(engine, table_name)
    for n in range(1, 20):
        sim.portal.add_deal({"TITLE": f"Заказ {n}", "STAGE_ID": "PREPARATION", "OPPORTUNITY": f"{n}00.50",
                             "CLOSEDATE": "2025-03-14T00:00:00+03:00", "COMMENTS": f"[B]{n}[/B]"})
    monitor = start_monitor(sim, tmp_path, target_url, table_name, preset="seed")
    try:
        wait_for(lambda: len(rows(engine, table)) == 19, timeout=30)
        sim.portal.update_deal(1, {"TITLE": "Заказ 1 изменён", "OPPORTUNITY": "1.00"})
        monitor.resync([1])
        wait_for(lambda: any(r["name"] == "Сделка №1 — Заказ 1 изменён" for r in rows(engine, table)))
        stored = {r["name"]: r for r in rows(engine, table)}
        assert len(stored) == 19  # updated in place, nothing added
        for n in range(10, 20):
            row = stored[f"Сделка №{n} — Заказ {n}"]
            assert row["amount"] == Decimal(f"{n}00.50") and row["comment"] == f"[B]{n}[/B]"
            assert row["date"] == date(2025, 3, 14) and row["accounting"] == 1
        assert stored["Сделка №1 — Заказ 1 изменён"]["amount"] == Decimal("1.00")
    finally:
        monitor.stop()


def test_custom_mapping_with_every_source_kind(sim, tmp_path, target_url, engine, table_name):
    table = Table(
        table_name,
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("caption", String(255)),
        Column("sum_rub", Numeric(14, 2)),
        Column("ship_on", Date),
        Column("note", Text),
        Column("is_open", Integer),
        Column("source", String(20)),
        Column("stage_name", String(100)),
        Column("pipeline", String(100)),
        Column("manager", String(100)),
        Column("uf_value", String(100)),
        mysql_charset="utf8mb4",
    )
    table.metadata.create_all(engine)
    deal_id = sim.portal.add_deal({
        "TITLE": "Кухня", "STAGE_ID": "C1:PREPARATION", "CATEGORY_ID": "1", "OPPORTUNITY": "250000.75",
        "CLOSEDATE": "2025-12-31T00:00:00+03:00", "COMMENTS": "[B]Срочно[/B] [I]до НГ[/I]",
        "OPENED": "Y", "ASSIGNED_BY_ID": "1", "UF_CRM_1721244482250": "Привет",
    })
    monitor = start_monitor(
        sim, tmp_path, target_url, table_name, preset="custom", key_column="id",
        columns={
            "caption": "template:№{ID}: {TITLE}",
            "sum_rub": "field:OPPORTUNITY|decimal",
            "ship_on": "field:CLOSEDATE|date",
            "note": "field:COMMENTS|plain",
            "is_open": "field:OPENED|bool",
            "source": "const:bitrix24",
            "stage_name": "lookup:stage_name",
            "pipeline": "lookup:pipeline_name",
            "manager": "lookup:user_name:ASSIGNED_BY_ID",
            "uf_value": "field:UF_CRM_1721244482250",
        },
    )
    try:
        wait_for(lambda: len(rows(engine, table)) == 1, timeout=30)
        (row,) = rows(engine, table)
        stages = {s.id: s.name for p in monitor.pipelines() for s in p.stages}
        pipelines = {p.id: p.name for p in monitor.pipelines()}
        assert row["id"] == deal_id and row["caption"] == f"№{deal_id}: Кухня"
        assert row["sum_rub"] == Decimal("250000.75") and row["ship_on"] == date(2025, 12, 31)
        assert row["note"] == "Срочно до НГ" and row["is_open"] == 1 and row["source"] == "bitrix24"
        assert row["stage_name"] == stages["C1:PREPARATION"] and row["pipeline"] == pipelines[1]
        assert row["manager"] and row["manager"] != "1"  # a person's name, not the ID
        assert row["uf_value"] == "Привет"
    finally:
        monitor.stop()


def test_mapping_that_names_a_missing_column_fails_before_any_write(sim, tmp_path, target_url, engine, table_name):
    table = seed_table(engine, table_name)
    sim.portal.add_deal({"TITLE": "x", "STAGE_ID": "WON"})
    with pytest.raises(TargetError) as info:
        start_monitor(sim, tmp_path, target_url, table_name, preset="custom",
                      columns={"name": "field:TITLE", "warehouse_code": "field:UF_CRM_1"})
    assert "warehouse_code" in str(info.value) and not info.value.transient
    assert rows(engine, table) == []


def test_bad_mapping_source_is_a_config_error_naming_the_column():
    with pytest.raises(config.ConfigError) as info:
        config.from_mapping({"mapping": {"preset": "custom", "columns": {"name": "title"}}}, env={})
    assert info.value.key == "mapping.columns.name"
    with pytest.raises(config.ConfigError) as info:
        config.from_mapping(
            {"mapping": {"preset": "custom", "columns": {"who": "lookup:boss"}}}, env={}
        )
    assert info.value.key == "mapping.columns.who"


def product_rows(engine, name: str) -> dict[int, dict]:
    table = Table(name, MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return {r.row_id: dict(r._mapping) for r in conn.execute(select(table))}


def test_product_rows_added_changed_and_removed(sim, tmp_path, target_url, engine, table_name):
    deal_id = sim.portal.add_deal({"TITLE": "Стол", "STAGE_ID": "EXECUTING"})
    sim.portal.set_product_rows(deal_id, [
        {"PRODUCT_ID": 11, "PRODUCT_NAME": "Столешница дуб", "PRICE": 15000.5, "QUANTITY": 1},
        {"PRODUCT_ID": 12, "PRODUCT_NAME": "Ножка", "PRICE": 1200, "QUANTITY": 4, "MEASURE_CODE": 796},
    ])
    products_table = f"{table_name}_product"
    monitor = start_monitor(sim, tmp_path, target_url, table_name, products=True,
                            product_table=products_table)
    try:
        wait_for(lambda: len(live_ids(*monitor_target(monitor))) == 1, timeout=30)
        wait_for(lambda: len(product_rows(engine, products_table)) == 2)
        first = product_rows(engine, products_table)
        names = sorted(r["name"] for r in first.values())
        assert names == ["Ножка", "Столешница дуб"]
        legs = next(r for r in first.values() if r["name"] == "Ножка")
        # (SQLite keeps exact decimals as text: compare by value)
        assert Decimal(str(legs["quantity"])) == 4 and Decimal(str(legs["price"])) == 1200
        assert legs["measure"] == "шт" and legs["deal_id"] == deal_id

        sim.portal.set_product_rows(deal_id, [
            {"PRODUCT_ID": 12, "PRODUCT_NAME": "Ножка", "PRICE": 1300, "QUANTITY": 6},
        ])
        monitor.resync([deal_id])
        wait_for(lambda: [Decimal(str(r["quantity"])) for r in
                          product_rows(engine, products_table).values()] == [6])
        (only,) = product_rows(engine, products_table).values()
        assert Decimal(str(only["price"])) == 1300 and only["name"] == "Ножка"
    finally:
        monitor.stop()


def test_dry_run_shows_the_rows_and_the_differences_without_writing(sim, tmp_path, target_url, engine, table_name):
    table = seed_table(engine, table_name)
    deal_id = sim.portal.add_deal({"TITLE": "Шкаф", "STAGE_ID": "PREPARATION", "OPPORTUNITY": "900.00"})
    monitor = start_monitor(sim, tmp_path, target_url, table_name, preset="seed")
    try:
        wait_for(lambda: len(rows(engine, table)) == 1, timeout=30)
        monitor.pause()
        sim.portal.update_deal(deal_id, {"TITLE": "Шкаф-купе", "OPPORTUNITY": "950.00"})
        before = rows(engine, table)
        [result] = monitor.dry_run([deal_id])
        preview = result.preview
        assert result.decision == "update"
        changed = {column: (old, new) for column, old, new in preview.changes}
        assert changed["name"] == ("Сделка №1 — Шкаф", "Сделка №1 — Шкаф-купе")
        assert Decimal(str(changed["amount"][0])) == Decimal("900.00")
        assert changed["amount"][1] == Decimal("950.00")
        assert "accounting" not in changed  # unchanged columns are not listed
        assert rows(engine, table) == before  # nothing was written

        new_id = sim.portal.add_deal({"TITLE": "Новая", "STAGE_ID": "NEW"})
        [result] = monitor.dry_run([new_id])
        assert result.decision == "skip_stage" and result.preview.current is None
        [gone] = monitor.dry_run([99_999])  # the portal has no such deal
        assert gone.decision == "deleted" and gone.preview is None and gone.problem
        assert rows(engine, table) == before
    finally:
        monitor.stop()


def test_table_that_requires_an_unmapped_column_is_refused_before_any_write(sim, tmp_path, target_url, engine, table_name):
    table = seed_table(engine, table_name, Column("warehouse_id", Integer, nullable=False))
    sim.portal.add_deal({"TITLE": "Стол", "STAGE_ID": "PREPARATION"})
    with pytest.raises(TargetError) as caught:
        start_monitor(sim, tmp_path, target_url, table_name, preset="seed")
    assert "warehouse_id" in str(caught.value) and "NOT NULL" in str(caught.value)
    assert rows(engine, table) == []


def test_dry_run_of_an_unsaved_mapping_creates_and_writes_nothing(sim, tmp_path, target_url, engine, table_name):
    """The GUI's mapping page tries a mapping on a deal before it is saved."""
    from sqlalchemy import inspect

    table = seed_table(engine, table_name)
    long_title = "Шкаф-купе " * 20  # 200 characters
    deal_id = sim.portal.add_deal({"TITLE": long_title, "STAGE_ID": "PREPARATION",
                                   "OPPORTUNITY": "1500.50", "CLOSEDATE": "2026-12-01T00:00:00+03:00"})
    running = config.from_mapping({
        "portal": {"webhook_url": sim.webhook_url, "application_token": sim.application_token},
        "listener": {"enabled": False},
        "sync": {"reconcile_minutes": 0, "deletion_check_minutes": 0},
        "storage": {"data_dir": str(tmp_path / "data")},  # default preset into a local SQLite file
    }, env={})
    monitor = Monitor(running)
    monitor.start()
    try:
        monitor.pause()
        edited = running.replace("target", url=target_url, table=table_name)
        edited = edited.replace("mapping", preset="seed", products=True)
        [result] = monitor.dry_run([deal_id], edited)
        assert result.decision == "insert"
        preview = result.preview
        assert preview.table == table_name and preview.current is None
        assert preview.row["name"] == f"Сделка №{deal_id} — {long_title}"
        assert preview.row["amount"] == Decimal("1500.50") and preview.row["date"] == date(2026, 12, 1)
        assert not result.refused  # VARCHAR(255) holds it

        narrow = edited.replace("mapping", preset="custom", columns={"comment": "field:TITLE"})
        narrow_table = Table(table_name + "_product", MetaData(),
                             Column("id", Integer, primary_key=True, autoincrement=True),
                             Column("comment", String(40)), mysql_charset="utf8mb4")
        narrow_table.metadata.create_all(engine)
        narrow = narrow.replace("target", table=narrow_table.name)
        narrow = narrow.replace("mapping", products=False)
        [refused] = monitor.dry_run([deal_id], narrow)
        assert refused.refused
        assert [(p.column, p.code) for p in refused.preview.problems] == [("comment", "too_long")]

        names = set(inspect(engine).get_table_names())
        assert table_name + "_link" not in names  # the dry run created no link table
        assert rows(engine, table) == []
    finally:
        monitor.stop()


def test_product_table_that_requires_an_unmapped_column_is_refused_before_any_write(sim, tmp_path, target_url, engine, table_name):
    table = seed_table(engine, table_name)
    Table(table_name + "_product", MetaData(),
          Column("row_id", Integer, primary_key=True, autoincrement=False),
          Column("deal_id", Integer, nullable=False),
          Column("item", String(80)),
          Column("line_no", Integer, nullable=False),
          mysql_charset="utf8mb4").create(engine)
    sim.portal.add_deal({"TITLE": "Стол", "STAGE_ID": "PREPARATION"})
    with pytest.raises(TargetError) as caught:
        start_monitor(sim, tmp_path, target_url, table_name, preset="seed", products=True,
                      product_table=table_name + "_product",
                      product_columns={"item": "field:PRODUCT_NAME"})
    assert "line_no" in str(caught.value) and "NOT NULL" in str(caught.value)
    assert rows(engine, table) == []


def test_product_rows_into_a_table_with_its_own_key_names(sim, tmp_path, target_url, engine, table_name):
    """A warehouse order-line table names its keys itself: order_deal, line_id."""
    lines = Table(table_name + "_product", MetaData(),
                  Column("line_id", Integer, primary_key=True, autoincrement=False),
                  Column("order_deal", Integer, nullable=False),
                  Column("item", String(80)),
                  Column("qty", Numeric(12, 3)),
                  mysql_charset="utf8mb4")
    lines.create(engine)
    deal_id = sim.portal.add_deal({"TITLE": "Стеллаж", "STAGE_ID": "EXECUTING"})
    sim.portal.set_product_rows(deal_id, [
        {"PRODUCT_NAME": "Полка", "PRICE": 1500, "QUANTITY": 4},
        {"PRODUCT_NAME": "Стойка", "PRICE": 800, "QUANTITY": 2}])
    monitor = start_monitor(sim, tmp_path, target_url, table_name, products=True,
                            product_table=lines.name, product_deal_column="order_deal",
                            product_row_column="line_id",
                            product_columns={"item": "field:PRODUCT_NAME",
                                             "qty": "field:QUANTITY|decimal"})

    def stored() -> list[tuple[int, str, Decimal]]:
        with engine.connect() as conn:
            return sorted((r.order_deal, r.item, Decimal(str(r.qty)))
                          for r in conn.execute(select(lines)))

    try:
        wait_for(lambda: stored() == [(deal_id, "Полка", Decimal(4)), (deal_id, "Стойка", Decimal(2))])
        sim.portal.set_product_rows(deal_id, [{"PRODUCT_NAME": "Полка", "PRICE": 1500, "QUANTITY": 5}])
        monitor.resync([deal_id])
        wait_for(lambda: stored() == [(deal_id, "Полка", Decimal(5))])  # the removed row is gone
        [result] = monitor.dry_run([deal_id])
        assert result.decision == "no_change"  # products compared by line_id
    finally:
        monitor.stop()


def test_product_key_columns_must_differ():
    with pytest.raises(config.ConfigError) as info:
        config.from_mapping({"mapping": {"products": True, "product_deal_column": "x",
                                         "product_row_column": "x"}}, env={})
    assert info.value.key == "mapping.product_row_column"
