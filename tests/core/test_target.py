"""The target writer against real SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from deal_monitor.bitrix.deal import parse_deal
from deal_monitor.errors import TargetError
from deal_monitor.store.engine import make_engine
from deal_monitor.store.target import TargetWriter
from tests.oracle import DEAL_COLUMNS, comparable, expected_row, target_table


def raw(deal_id: int, modified: str = "2024-08-30T14:29:00+02:00", **fields) -> dict:
    base = {
        "ID": str(deal_id),
        "TITLE": f"Сделка {deal_id}",
        "STAGE_ID": "PREPARATION",
        "CATEGORY_ID": "0",
        "OPPORTUNITY": "1000000.10",
        "CURRENCY_ID": "RUB",
        "CLOSEDATE": "2024-09-09T00:00:00+03:00",
        "COMMENTS": "[B]важно[/B]",
        "DATE_MODIFY": modified,
    }
    base.update(fields)
    return base


@pytest.fixture
def writer(target_url, table_name):
    engine = make_engine(target_url, synchronous="NORMAL")
    w = TargetWriter(engine, table_name)
    w.prepare()
    yield w
    engine.dispose()


def rows(writer: TargetWriter) -> dict[int, dict]:
    """The stored rows, read with plain SQL (not through the writer), in comparable types."""
    url = writer.engine.url.render_as_string(hide_password=False)
    return {deal_id: comparable(row) for deal_id, row in target_table(url, writer.table_name).items()}


def test_insert_keeps_exact_amount_and_portal_day(writer):
    result = writer.write([parse_deal(raw(5))])
    assert result.created == {5} and result.written == {5}
    row = rows(writer)[5]
    assert row["amount"] == Decimal("1000000.10")
    assert row["close_date"] == date(2024, 9, 9)  # not the 8th, as a UTC conversion would give
    assert row["title"] == "Сделка 5"
    assert row["deleted"] is False
    assert row["date_modify"] == datetime(2024, 8, 30, 12, 29)  # stored as UTC
    assert {k: row[k] for k in DEAL_COLUMNS} == expected_row(raw(5))  # the oracle agrees


def test_older_data_never_overwrites_newer(writer):
    writer.write([parse_deal(raw(7, "2024-08-30T15:00:00+02:00", TITLE="new"))])
    result = writer.write([parse_deal(raw(7, "2024-08-30T14:00:00+02:00", TITLE="old"))])
    assert result.stale == {7} and not result.written
    assert rows(writer)[7]["title"] == "new"
    result = writer.write([parse_deal(raw(7, "2024-08-30T16:00:00+02:00", TITLE="newest", OPPORTUNITY="5.55"))])
    assert result.written == {7} and not result.created
    row = rows(writer)[7]
    assert (row["title"], row["amount"]) == ("newest", Decimal("5.55"))


def test_write_is_idempotent(writer):
    deals = [parse_deal(raw(i)) for i in (1, 10, 11, 19)]
    writer.write(deals)
    writer.write(deals)
    assert sorted(rows(writer)) == [1, 10, 11, 19]


def test_ids_never_touch_each_other(writer):
    """Deal 1 and deals 10..19: a name-prefix match would confuse them; the key is the ID."""
    writer.write([parse_deal(raw(i, TITLE=f"Сделка №{i}")) for i in range(10, 20)])
    writer.write([parse_deal(raw(1, "2025-01-01T00:00:00+03:00", TITLE="Сделка №1 changed"))])
    stored = rows(writer)
    assert stored[1]["title"] == "Сделка №1 changed"
    assert all(stored[i]["title"] == f"Сделка №{i}" for i in range(10, 20))


def test_mark_deleted_keeps_the_row(writer):
    writer.write([parse_deal(raw(3))])
    assert writer.mark_deleted([3, 4]) == {3}
    stored = rows(writer)
    assert bool(stored[3]["deleted"]) and 4 not in stored
    assert writer.all_ids() == set()


def test_hostile_text_is_stored_verbatim(writer):
    title = "x'); DROP TABLE deal;-- 🚀 \u202e e\u0301"
    writer.write([parse_deal(raw(9, TITLE=title))])
    assert rows(writer)[9]["title"] == title


def test_missing_column_is_refused_before_any_write(target_url, table_name):
    engine = make_engine(target_url, synchronous="NORMAL")
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table_name} (bitrix_id BIGINT PRIMARY KEY, title TEXT)"))
    with pytest.raises(TargetError) as info:
        TargetWriter(engine, table_name).prepare()
    assert not info.value.transient and "stage_id" in str(info.value)
    engine.dispose()


def test_unreachable_server_is_transient():
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(TargetError) as info:
        TargetWriter(engine).versions([1])
    assert info.value.transient
