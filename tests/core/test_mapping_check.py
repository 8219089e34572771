"""The mapping check: which mappings a table refuses, read from the table's real columns."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from deal_monitor.mapping import build_mapping
from deal_monitor.mapping.check import ColumnShape, check_mapping, value_problems
from deal_monitor.store.engine import make_engine
from deal_monitor.store.shape import read_columns


def col(name: str, kind: str = "text", **extra) -> ColumnShape:
    return ColumnShape(name, kind.upper(), kind, **extra)


SEED_SHAPE = [
    col("id", "int", nullable=False, primary_key=True, generated=True),
    col("name", length=255),
    col("date", "date"),
    col("amount", "decimal"),
    col("comment"),
    col("accounting", "int"),
]


def codes(problems) -> dict[str, str]:
    return {p.column: p.code for p in problems}


def test_the_seed_preset_fits_the_seed_table():
    assert check_mapping(build_mapping("seed", "deal"), SEED_SHAPE) == []


def test_a_mapped_column_the_table_lacks_is_an_error_naming_it():
    mapping = build_mapping("custom", "deal", {"name": "field:TITLE", "colour": "field:UF_CRM_1"})
    problems = check_mapping(mapping, SEED_SHAPE)
    assert codes(problems) == {"colour": "missing_column"}
    assert problems[0].error and "colour" in problems[0].text


def test_a_required_column_left_unmapped_is_an_error():
    shape = [*SEED_SHAPE, col("warehouse_id", "int", nullable=False)]
    problems = check_mapping(build_mapping("seed", "deal"), shape)
    assert codes(problems) == {"warehouse_id": "required_unmapped"}
    # a default, or a NULL-able column, needs no value
    relaxed = [*SEED_SHAPE, col("warehouse_id", "int", nullable=False, has_default=True)]
    assert check_mapping(build_mapping("seed", "deal"), relaxed) == []


def test_types_that_cannot_meet_are_errors_and_lossy_ones_warnings():
    mapping = build_mapping("custom", "deal", {
        "accounting": "field:CLOSEDATE|date",  # a date into an int column
        "date": "field:OPPORTUNITY|decimal",  # a number into a date column
        "amount": "field:OPPORTUNITY",  # text into a decimal column: the DB must convert
        "name": "lookup:stage_name",
    })
    problems = {p.column: p for p in check_mapping(mapping, SEED_SHAPE)}
    assert problems["accounting"].code == "type_mismatch" and problems["accounting"].error
    assert problems["date"].code == "type_mismatch" and problems["date"].error
    assert problems["amount"].code == "needs_conversion" and not problems["amount"].error
    assert "name" not in problems
    whole = [*SEED_SHAPE[:3], col("amount", "int"), *SEED_SHAPE[4:]]
    lossy = check_mapping(build_mapping("seed", "deal"), whole)
    assert [(p.column, p.code, p.error) for p in lossy] == [("amount", "fraction_lost", False)]


def test_key_rules():
    keyed = [col("deal_id", "int", nullable=False), col("title")]
    assert check_mapping(build_mapping("custom", "t", {"title": "field:TITLE"}, "deal_id"), keyed) == []
    mapped_key = build_mapping("custom", "t", {"title": "field:TITLE", "deal_id": "field:ID"}, "deal_id")
    assert codes(check_mapping(mapped_key, keyed)) == {"deal_id": "key_mapped"}
    missing_key = build_mapping("custom", "t", {"title": "field:TITLE"}, "bitrix_id")
    assert codes(check_mapping(missing_key, keyed)) == {
        "bitrix_id": "missing_key", "deal_id": "required_unmapped"}
    # link-table mode needs one primary key the database fills
    no_pk = build_mapping("custom", "t", {"title": "field:TITLE"})
    assert codes(check_mapping(no_pk, [col("title")])) == {"": "no_single_key"}
    manual_pk = [col("code", "text", nullable=False, primary_key=True), col("title")]
    assert codes(check_mapping(no_pk, manual_pk)) == {"code": "key_not_generated"}


def test_value_problems_name_rows_the_table_would_refuse():
    shape = [col("name", length=10), col("date", "date", nullable=False)]
    problems = value_problems({"name": "Сделка №12 — Шкаф-купе", "date": None}, shape)
    assert codes(problems) == {"name": "too_long", "date": "null_in_required"}
    assert problems[0].params == ("22", "10")
    assert value_problems({"name": "Шкаф", "date": "2026-01-01"}, shape) == []


def test_reflection_reads_what_the_check_needs(target_url, table_name):
    engine = make_engine(target_url, synchronous="NORMAL")
    key = {"sqlite": "INTEGER PRIMARY KEY", "postgresql": "SERIAL PRIMARY KEY"}.get(
        engine.dialect.name, "INT AUTO_INCREMENT PRIMARY KEY")
    try:
        with engine.begin() as conn:
            conn.execute(text(
                f"CREATE TABLE {table_name} (id {key}, name VARCHAR(40) NOT NULL, "
                "amount DECIMAL(12,2), closed DATE, stamp TIMESTAMP NULL, "
                "accounting SMALLINT NOT NULL DEFAULT 1)"))
        shapes = {c.name: c for c in read_columns(engine, table_name)}
        assert read_columns(engine, table_name + "_none") is None
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {table_name}"))
        engine.dispose()
    assert shapes["id"].primary_key and shapes["id"].generated and not shapes["id"].required
    assert (shapes["name"].kind, shapes["name"].length, shapes["name"].required) == ("text", 40, True)
    assert shapes["amount"].kind == "decimal" and shapes["closed"].kind == "date"
    assert shapes["stamp"].kind == "datetime"
    assert shapes["accounting"].kind == "int" and not shapes["accounting"].required
    mapping = build_mapping("custom", table_name, {"amount": "field:OPPORTUNITY|decimal"})
    assert codes(check_mapping(mapping, list(shapes.values()))) == {"name": "required_unmapped"}


@pytest.mark.parametrize("convert,kind", [("int", "int"), ("date", "date"), ("plain", "text"), ("", "text")])
def test_value_kind_follows_the_conversion(convert, kind):
    from deal_monitor.mapping.check import value_kind
    from deal_monitor.mapping.spec import parse_source

    source = parse_source("c", "field:X" + (f"|{convert}" if convert else ""))
    assert value_kind(source) == kind


def test_product_table_check():
    from deal_monitor.mapping.check import check_product_mapping
    from deal_monitor.mapping.spec import parse_source

    shape = [col("row_id", "int", nullable=False, primary_key=True), col("deal_id", "int", nullable=False),
             col("item", length=80), col("qty", "decimal"), col("line_no", "int", nullable=False)]
    sources = {"item": parse_source("item", "field:PRODUCT_NAME"),
               "qty": parse_source("qty", "field:QUANTITY|decimal")}
    assert codes(check_product_mapping(sources, shape)) == {"line_no": "required_unmapped"}
    sources["line_no"] = parse_source("line_no", "field:SORT|int")
    assert check_product_mapping(sources, shape) == []
    sources["deal_id"] = parse_source("deal_id", "const:1|int")
    assert codes(check_product_mapping(sources, shape)) == {"deal_id": "key_mapped"}
    no_keys = [col("item", length=80)]
    assert codes(check_product_mapping({}, no_keys)) == {"deal_id": "missing_key", "row_id": "missing_key"}
