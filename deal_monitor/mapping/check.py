"""Can this mapping be written into this table? Checked on the table's reflected columns.

The check runs before anything is written — when the worker prepares the target, and in the
GUI's mapping page while the planner edits — so a mapping that names a missing column, leaves
out a column the table requires, or puts a date into a number column is refused with the
column named, instead of failing on the first deal.

Every problem carries a ``code`` and its ``params`` (for the GUI's translations) and an
English ``text`` (for logs and the CLI). Errors refuse the mapping; warnings are shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .presets import TableMapping
from .spec import ColumnSource

# what a column holds, from its reflected SQL type
COLUMN_KINDS = ("text", "int", "decimal", "float", "date", "datetime", "bool", "other")


@dataclass(frozen=True)
class ColumnShape:
    """One reflected column of the target table."""

    name: str
    type_name: str  # as the database names it, e.g. VARCHAR(255)
    kind: str  # one of COLUMN_KINDS
    nullable: bool = True
    has_default: bool = False  # a server default (or identity/sequence)
    primary_key: bool = False
    generated: bool = False  # the database fills it (autoincrement, identity, serial)
    length: int | None = None  # text columns: the most characters it holds

    @property
    def required(self) -> bool:
        """An INSERT without this column fails."""
        return not self.nullable and not self.has_default and not self.generated


@dataclass(frozen=True)
class MappingProblem:
    column: str
    code: str
    text: str  # English, for logs and the CLI
    error: bool = True  # False: a warning, the mapping can still be used
    params: tuple[str, ...] = ()


def value_kind(source: ColumnSource) -> str:
    """What a source puts into its column: the conversion's kind, else text."""
    if source.convert in ("int", "decimal", "date", "datetime", "bool"):
        return source.convert
    return "text"


# (value kind, column kind) -> (code, English text, error?)
_MISMATCH: dict[tuple[str, str], tuple[str, str, bool]] = {}


def _mismatch(values: tuple[str, ...], columns: tuple[str, ...], code: str, text: str,
              error: bool) -> None:
    for v in values:
        for c in columns:
            _MISMATCH[(v, c)] = (code, text, error)


_mismatch(("date", "datetime"), ("int", "decimal", "float", "bool"), "type_mismatch",
          "a {value} cannot go into a {column} column", True)
_mismatch(("int", "decimal", "bool"), ("date", "datetime"), "type_mismatch",
          "a {value} cannot go into a {column} column", True)
_mismatch(("decimal",), ("bool",), "type_mismatch",
          "a {value} cannot go into a {column} column", True)
_mismatch(("decimal",), ("int",), "fraction_lost",
          "the column holds whole numbers: kopecks are rounded away", False)
_mismatch(("datetime",), ("date",), "time_lost", "the column holds dates: the time is dropped",
          False)
_mismatch(("text",), ("int", "decimal", "float", "date", "datetime", "bool"), "needs_conversion",
          "the value is sent as text and the database must convert it; choose a conversion "
          "({column})", False)


def check_mapping(mapping: TableMapping, columns: list[ColumnShape]) -> list[MappingProblem]:
    """Everything that stops (errors) or spoils (warnings) writes of ``mapping`` into the table."""
    by_name = {c.name: c for c in columns}
    problems: list[MappingProblem] = []
    for name, source in mapping.columns.items():
        shape = by_name.get(name)
        if shape is None:
            problems.append(MappingProblem(name, "missing_column",
                                           f"column {name}: the table has no such column"))
            continue
        problems.extend(_type_problems(name, source, shape))
    key = _key_column(mapping, columns, by_name, problems)
    mapped = set(mapping.columns)
    for shape in columns:
        if shape.name in mapped or (key is not None and shape.name == key.name):
            continue
        if shape.required:
            problems.append(MappingProblem(
                shape.name, "required_unmapped",
                f"column {shape.name}: the table requires a value (NOT NULL, no default); "
                "map it to a source", params=(shape.name,)))
    return problems


PRODUCT_KEYS = ("deal_id", "row_id")  # the product table's columns the app fills itself


def check_product_mapping(columns: Mapping[str, ColumnSource], shapes: list[ColumnShape],
                          keys: tuple[str, str] = PRODUCT_KEYS) -> list[MappingProblem]:
    """The same check for the product-row table: its key columns (the deal's ID, the row's
    ID) must exist and stay unmapped."""
    by_name = {c.name: c for c in shapes}
    problems: list[MappingProblem] = []
    for key in keys:
        if key not in by_name:
            problems.append(MappingProblem(
                key, "missing_key", f"column {key}: the product table needs it (the app fills it)"))
        elif key in columns:
            problems.append(MappingProblem(
                key, "key_mapped", f"column {key}: it is filled by the app; it cannot be mapped"))
    for name, source in columns.items():
        shape = by_name.get(name)
        if shape is None:
            problems.append(MappingProblem(name, "missing_column",
                                           f"column {name}: the table has no such column"))
        elif name not in keys:
            problems.extend(_type_problems(name, source, shape))
    for shape in shapes:
        if shape.name not in columns and shape.name not in keys and shape.required:
            problems.append(MappingProblem(
                shape.name, "required_unmapped",
                f"column {shape.name}: the table requires a value (NOT NULL, no default); "
                "map it to a source", params=(shape.name,)))
    return problems


def _key_column(mapping: TableMapping, columns: list[ColumnShape], by_name: dict[str, ColumnShape],
                problems: list[MappingProblem]) -> ColumnShape | None:
    """The column rows are found by; adds the problems of that choice."""
    if mapping.key_column:
        key = by_name.get(mapping.key_column)
        if key is None:
            problems.append(MappingProblem(
                mapping.key_column, "missing_key",
                f"column {mapping.key_column}: the key column is not in the table"))
            return None
        if key.kind not in ("int", "decimal", "text", "other"):
            problems.append(MappingProblem(
                key.name, "bad_key_type",
                f"column {key.name}: a {key.kind} column cannot hold deal IDs",
                params=(key.kind,)))
    else:
        primary = [c for c in columns if c.primary_key]
        if len(primary) != 1:
            problems.append(MappingProblem(
                "", "no_single_key",
                "the table needs a single-column primary key for the link table, or a key "
                "column that holds the deal ID"))
            return None
        key = primary[0]
        if not key.generated and not key.has_default and key.name not in mapping.columns:
            problems.append(MappingProblem(
                key.name, "key_not_generated",
                f"column {key.name}: the primary key is not filled by the database; choose a "
                "key column that holds the deal ID"))
            return key
    if key.name in mapping.columns:
        problems.append(MappingProblem(
            key.name, "key_mapped", f"column {key.name}: it is the key; it cannot also be mapped"))
    return key


def _type_problems(name: str, source: ColumnSource, shape: ColumnShape) -> list[MappingProblem]:
    value = value_kind(source)
    found = _MISMATCH.get((value, shape.kind))
    if found is None:
        return []
    code, text, error = found
    return [MappingProblem(name, code, f"column {name}: " + text.format(value=value, column=shape.kind),
                           error, (value, shape.kind))]


def value_problems(row: Mapping[str, Any], columns: list[ColumnShape]) -> list[MappingProblem]:
    """Problems of one rendered row that the table would refuse (too long, empty but required)."""
    by_name = {c.name: c for c in columns}
    problems = []
    for name, value in row.items():
        shape = by_name.get(name)
        if shape is None:
            continue
        if value is None and not shape.nullable:
            problems.append(MappingProblem(
                name, "null_in_required", f"column {name}: the value is empty, the column "
                "does not allow NULL"))
        elif isinstance(value, str) and shape.length and len(value) > shape.length:
            problems.append(MappingProblem(
                name, "too_long",
                f"column {name}: {len(value)} characters, the column holds {shape.length}",
                params=(str(len(value)), str(shape.length))))
    return problems


def errors_text(problems: list[MappingProblem]) -> str:
    """The errors in one line (for a TargetError), or "" when there are none."""
    return "; ".join(p.text for p in problems if p.error)
