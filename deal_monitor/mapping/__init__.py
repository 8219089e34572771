"""Mapping deals onto the warehouse's own tables: column sources, conversions, presets."""

from .presets import PRESETS, TableMapping, build_mapping
from .spec import ColumnSource, Lookups, MappingError, parse_source, render_row

__all__ = [
    "PRESETS",
    "ColumnSource",
    "Lookups",
    "MappingError",
    "TableMapping",
    "build_mapping",
    "parse_source",
    "render_row",
]
