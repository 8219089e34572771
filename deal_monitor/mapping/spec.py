"""Column sources: where a target column's value comes from.

A source is written as one string in the config:

- ``field:OPPORTUNITY|decimal`` — a deal field (standard or ``UF_CRM_*``), converted;
- ``template:Сделка №{ID} — {TITLE}`` — text built from deal fields;
- ``const:1|int`` — a constant;
- ``lookup:stage_name``, ``lookup:pipeline_name``, ``lookup:user_name:ASSIGNED_BY_ID`` — a
  name the portal knows (stages and pipelines by ``crm.status.list``/``crm.category.list``,
  users by ``user.get``).

The optional ``|conversion`` at the end is one of ``text int decimal date datetime bool
plain``; without one, fields go in as the API sends them (text).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .convert import CONVERTERS

LOOKUPS = ("stage_name", "pipeline_name", "user_name")


class MappingError(ValueError):
    """A mapping that cannot be used; the message names the column."""


class Lookups(Protocol):
    def stage_name(self, stage_id: str, category_id: int) -> str: ...
    def pipeline_name(self, category_id: int) -> str: ...
    def user_name(self, user_id: str) -> str: ...


@dataclass(frozen=True)
class ColumnSource:
    kind: str  # field | template | const | lookup
    value: str  # field name, template text, constant, or lookup name
    convert: str = ""
    argument: str = ""  # the field a user_name lookup reads

    def fields(self) -> set[str]:
        """Deal fields this source reads (for select lists and checks)."""
        if self.kind == "field":
            return {self.value}
        if self.kind == "template":
            return {name for _, name, _, _ in string.Formatter().parse(self.value) if name}
        if self.kind == "lookup":
            return {self.argument} if self.argument else {"STAGE_ID", "CATEGORY_ID"}
        return set()


def parse_source(column: str, text: str) -> ColumnSource:
    """Read one source string; raise MappingError naming the column when it is wrong."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("field", "template", "const", "lookup"):
        raise MappingError(f"column {column}: source must start with field:, template:, const: or lookup:")
    convert = ""
    body, bar, tail = rest.rpartition("|")
    if bar and tail in CONVERTERS:
        rest, convert = body, tail
    if kind == "field" and not rest.strip():
        raise MappingError(f"column {column}: field: needs a field name")
    if kind == "template":
        try:
            list(string.Formatter().parse(rest))
        except ValueError as exc:
            raise MappingError(f"column {column}: bad template ({exc})") from None
    argument = ""
    if kind == "lookup":
        name, _, argument = rest.partition(":")
        if name not in LOOKUPS:
            raise MappingError(f"column {column}: unknown lookup {name!r} (known: {', '.join(LOOKUPS)})")
        if name == "user_name" and not argument:
            argument = "ASSIGNED_BY_ID"
        rest = name
    return ColumnSource(kind, rest.strip() if kind == "field" else rest, convert, argument)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def _value(source: ColumnSource, fields: Mapping[str, Any], lookups: Lookups | None) -> Any:
    if source.kind == "field":
        return fields.get(source.value)
    if source.kind == "const":
        return source.value
    if source.kind == "template":
        safe = _Blank({k: "" if v is None else v for k, v in fields.items()})
        return source.value.format_map(safe)
    if lookups is None:
        return None
    if source.value == "stage_name":
        return lookups.stage_name(str(fields.get("STAGE_ID") or ""), int(fields.get("CATEGORY_ID") or 0))
    if source.value == "pipeline_name":
        return lookups.pipeline_name(int(fields.get("CATEGORY_ID") or 0))
    return lookups.user_name(str(fields.get(source.argument) or ""))


def render_row(
    columns: Mapping[str, ColumnSource], fields: Mapping[str, Any], lookups: Lookups | None = None
) -> dict[str, Any]:
    """The target row for one deal (or product row) under a mapping."""
    row = {}
    for column, source in columns.items():
        value = _value(source, fields, lookups)
        row[column] = CONVERTERS[source.convert](value) if source.convert else value
    return row
