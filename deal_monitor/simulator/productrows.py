"""Deal product rows (``crm.deal.productrows.get/set``) in the shape the docs example shows.

Types follow that example: ``ID``/``OWNER_ID`` are strings, ``PRICE_ACCOUNT`` is a money
string, prices, quantities and catalogue ids are JSON numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .formats import format_money, json_number, to_decimal, to_int

MEASURES = {796: "шт", 166: "кг", 6: "м", 112: "л", 356: "ч"}


def build_row(row_id: int, deal_id: int, data: Mapping[str, Any], sort: int) -> dict[str, Any]:
    """Normalise one input row (PRICE is the final unit price, as in the REST API)."""
    price = to_decimal(data.get("PRICE")) or Decimal(0)
    quantity = to_decimal(data.get("QUANTITY"))
    quantity = Decimal(1) if quantity is None else quantity
    tax_rate = to_decimal(data.get("TAX_RATE"))
    tax_included = str(data.get("TAX_INCLUDED", "Y")).upper() == "Y"
    discount_type = to_int(data.get("DISCOUNT_TYPE_ID")) or 2
    discount_rate = to_decimal(data.get("DISCOUNT_RATE")) or Decimal(0)
    discount_sum = to_decimal(data.get("DISCOUNT_SUM")) or Decimal(0)
    exclusive = price
    if tax_rate and tax_included:
        exclusive = price * 100 / (100 + tax_rate)
    if discount_type == 2 and discount_rate and discount_rate < 100:
        netto = exclusive * 100 / (100 - discount_rate)
        discount_sum = netto - exclusive
    else:
        netto = exclusive + discount_sum
    brutto = netto * (100 + tax_rate) / 100 if tax_rate else netto
    measure_code = to_int(data.get("MEASURE_CODE")) or 796
    name = str(data.get("PRODUCT_NAME") or "Товар")
    return {
        "ID": str(row_id),
        "OWNER_ID": str(deal_id),
        "OWNER_TYPE": "D",
        "PRODUCT_ID": to_int(data.get("PRODUCT_ID")) or 0,
        "PRODUCT_NAME": name,
        "ORIGINAL_PRODUCT_NAME": name,
        "PRODUCT_DESCRIPTION": data.get("PRODUCT_DESCRIPTION"),
        "PRICE": _num(price),
        "PRICE_EXCLUSIVE": _num(exclusive),
        "PRICE_NETTO": _num(netto),
        "PRICE_BRUTTO": _num(brutto),
        "PRICE_ACCOUNT": format_money(price),
        "QUANTITY": _num(quantity),
        "DISCOUNT_TYPE_ID": discount_type,
        "DISCOUNT_RATE": _num(discount_rate),
        "DISCOUNT_SUM": _num(discount_sum),
        "TAX_RATE": _num(tax_rate) if tax_rate is not None else None,
        "TAX_INCLUDED": "Y" if tax_included else "N",
        "CUSTOMIZED": "Y",
        "MEASURE_CODE": measure_code,
        "MEASURE_NAME": str(data.get("MEASURE_NAME") or MEASURES.get(measure_code, "шт")),
        "SORT": to_int(data.get("SORT")) or sort,
        "XML_ID": str(data.get("XML_ID") or f"sale_basket_{row_id}"),
        "TYPE": to_int(data.get("TYPE")) or 1,
        "STORE_ID": to_int(data.get("STORE_ID")) or 0,
        "RESERVE_ID": None,
        "DATE_RESERVE_END": None,
        "RESERVE_QUANTITY": 0,
    }


def _num(value: Decimal) -> int | float:
    return json_number(value.quantize(Decimal("0.0001")).normalize())
