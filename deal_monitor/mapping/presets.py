"""Table mappings: the default table, the seed's table, and custom ones from the config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .spec import ColumnSource, MappingError, parse_source

PRESETS = ("default", "seed", "custom")


def _sources(columns: Mapping[str, str]) -> Mapping[str, ColumnSource]:
    return MappingProxyType({name: parse_source(name, text) for name, text in columns.items()})


DEFAULT_COLUMNS = {
    "title": "field:TITLE|text",
    "stage_id": "field:STAGE_ID|text",
    "category_id": "field:CATEGORY_ID|int",
    "amount": "field:OPPORTUNITY|decimal",
    "currency_id": "field:CURRENCY_ID|text",
    "close_date": "field:CLOSEDATE|date",
    "comments": "field:COMMENTS|text",
}

# The seed wrote into an existing MySQL table deal(name, date, amount, comment, accounting).
SEED_TABLE = "deal"
SEED_COLUMNS = {
    "name": "template:Сделка №{ID} — {TITLE}",
    "date": "field:CLOSEDATE|date",
    "amount": "field:OPPORTUNITY|decimal",
    "comment": "field:COMMENTS|text",
    "accounting": "const:1|int",
}

DEFAULT_PRODUCT_COLUMNS = {
    "product_id": "field:PRODUCT_ID|int",
    "name": "field:PRODUCT_NAME|text",
    "price": "field:PRICE|decimal",
    "quantity": "field:QUANTITY|decimal",
    "measure": "field:MEASURE_NAME|text",
    "discount": "field:DISCOUNT_SUM|decimal",
    "tax": "field:TAX_RATE|decimal",
}


@dataclass(frozen=True)
class TableMapping:
    """Where and how deals are written.

    ``key_column`` holds the deal ID in the target table; when empty the app's own link
    table ``deal_link(bitrix_id, target_key)`` finds rows, so a table without such a column
    (like the seed's) is still matched by ID, never by a text prefix.
    """

    preset: str
    table: str
    columns: Mapping[str, ColumnSource]
    key_column: str = ""
    create: bool = False  # create the table when it is missing (the default preset only)
    products: bool = False
    product_table: str = "deal_product"
    product_columns: Mapping[str, ColumnSource] = field(
        default_factory=lambda: _sources(DEFAULT_PRODUCT_COLUMNS)
    )
    product_keys: tuple[str, str] = ("deal_id", "row_id")  # (deal ID column, row ID column)

    @property
    def uses_link(self) -> bool:
        return not self.key_column

    def deal_fields(self) -> set[str]:
        names = {"ID", "DATE_MODIFY"}
        for source in self.columns.values():
            names |= source.fields()
        return names


def build_mapping(
    preset: str,
    table: str,
    columns: Mapping[str, str] | None = None,
    key_column: str = "",
    products: bool = False,
    product_table: str = "deal_product",
    product_columns: Mapping[str, str] | None = None,
    product_keys: tuple[str, str] = ("deal_id", "row_id"),
) -> TableMapping:
    """A mapping from the config's words; raise MappingError naming what is wrong."""
    product_sources = _sources(product_columns or DEFAULT_PRODUCT_COLUMNS)
    if product_keys[0] == product_keys[1]:
        raise MappingError("mapping.product_row_column: must differ from product_deal_column")
    common = {"products": products, "product_table": product_table,
              "product_columns": product_sources, "product_keys": tuple(product_keys)}
    if preset == "default":
        return TableMapping("default", table, _sources(DEFAULT_COLUMNS), "bitrix_id",
                            create=True, **common)
    if preset == "seed":
        return TableMapping("seed", table or SEED_TABLE, _sources(SEED_COLUMNS), "", **common)
    if preset == "custom":
        if not columns:
            raise MappingError("mapping.columns: a custom mapping needs at least one column")
        return TableMapping("custom", table, _sources(columns), key_column, **common)
    raise MappingError(f"mapping.preset: must be one of {', '.join(PRESETS)}")
