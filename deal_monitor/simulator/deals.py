"""Deal records: turning input fields into the stored, already-rendered deal.

A deal is stored exactly as ``crm.deal.get`` returns it (strings, ``null``, ``Y``/``N``,
datetimes in the portal offset), plus an internal ``CONTACT_IDS`` list that the deal methods
never return. Rendering once on write keeps reads of 100,000 deals cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from . import catalog
from .formats import (
    format_date,
    format_datetime,
    format_money,
    parse_user_datetime,
    to_decimal,
    to_int,
)

Deal = dict[str, Any]

# Fields a REST caller may not set; the Python API ("an admin with database access") may.
READ_ONLY = frozenset(name for name, desc in catalog.FIELDS.items() if desc["isReadOnly"])
DERIVED = frozenset({"ID", "STAGE_SEMANTIC_ID", "IS_NEW", "CLOSED"})
_NULL_IDS = frozenset({"CONTACT_ID", "LEAD_ID", "QUOTE_ID"})


def _coerce(name: str, value: Any, tz: timezone, now: datetime | None = None) -> Any:
    """Render one input value into its stored wire form (KeyError for unknown fields)."""
    ftype = catalog.ALL_FIELDS[name]["type"]
    if value is None:
        return "0" if name == "COMPANY_ID" else None
    if ftype == "double":
        return format_money(value)
    if ftype == "char":
        return "Y" if str(value).upper() in {"Y", "1", "TRUE"} or value is True else "N"
    if ftype == "date":
        moment = parse_user_datetime(value, tz)
        return format_date(moment.astimezone(tz).date(), tz, now) if moment else None
    if ftype == "datetime":
        moment = parse_user_datetime(value, tz)
        return format_datetime(moment, tz) if moment else None
    if ftype in catalog.NUMERIC_TYPES and ftype != "location":
        number = to_int(value)
        if number is None or (number == 0 and name in _NULL_IDS):
            return "0" if name == "COMPANY_ID" else None
        return str(number)
    return str(value)


def _apply_stage(deal: Deal, stage: catalog.Stage) -> None:
    deal["STAGE_ID"] = stage.status_id
    deal["CATEGORY_ID"] = str(stage.category_id)
    deal["STAGE_SEMANTIC_ID"] = stage.semantic_id
    deal["CLOSED"] = "N" if stage.semantic_id == "P" else "Y"
    deal["IS_NEW"] = "Y" if stage.status_id == catalog.first_stage(stage.category_id).status_id else "N"


def _resolve_stage(stage_id: Any, category_id: int | None) -> catalog.Stage | None:
    """The stage to use, or None when it does not exist in that pipeline."""
    stage = catalog.STAGES.get(str(stage_id)) if stage_id not in (None, "") else None
    if stage is None:
        return None
    if category_id is not None and stage.category_id != category_id:
        return None
    return stage


def new_deal(deal_id: int, fields: Mapping[str, Any], *, now: datetime, user_id: int,
             tz: timezone, trusted: bool) -> Deal:
    """Build a new deal with the portal's defaults, then the given fields."""
    stamp = format_datetime(now, tz)
    today = now.astimezone(tz).date()
    deal: Deal = {name: None for name in catalog.GET_ORDER}
    deal.update({
        "ID": str(deal_id),
        "TITLE": f"Сделка #{deal_id}",
        "TYPE_ID": "SALE",
        "PROBABILITY": None,
        "CURRENCY_ID": catalog.BASE_CURRENCY,
        "OPPORTUNITY": "0.00",
        "IS_MANUAL_OPPORTUNITY": "N",
        "TAX_VALUE": "0.00",
        "COMPANY_ID": "0",
        "BEGINDATE": format_date(today, tz, now),
        "CLOSEDATE": format_date(today.fromordinal(today.toordinal() + 7), tz, now),
        "ASSIGNED_BY_ID": str(user_id),
        "CREATED_BY_ID": str(user_id),
        "MODIFY_BY_ID": str(user_id),
        "DATE_CREATE": stamp,
        "DATE_MODIFY": stamp,
        "OPENED": "Y",
        "IS_RECURRING": "N",
        "IS_RETURN_CUSTOMER": "N",
        "IS_REPEATED_APPROACH": "N",
        "MOVED_BY_ID": str(user_id),
        "MOVED_TIME": stamp,
        "LAST_ACTIVITY_TIME": stamp,
        "LAST_ACTIVITY_BY": str(user_id),
    })
    deal["CONTACT_IDS"] = []
    category = to_int(fields.get("CATEGORY_ID"))
    stage = _resolve_stage(fields.get("STAGE_ID"), category if category in catalog.category_ids() else None)
    if stage is None:
        if category not in catalog.category_ids():
            category = 0
        stage = catalog.first_stage(category or 0)
    _apply_stage(deal, stage)
    _apply_plain(deal, fields, tz=tz, trusted=trusted, now=now)
    return deal


def update_deal(deal: Deal, fields: Mapping[str, Any], *, now: datetime, user_id: int,
                tz: timezone, trusted: bool) -> Deal:
    """Return the deal after an update; ``DATE_MODIFY`` is set to ``now`` on every update.

    ``CATEGORY_ID`` is immutable here (as in ``crm.deal.update``); a ``STAGE_ID`` of another
    pipeline is ignored.
    """
    updated = dict(deal)
    updated["CONTACT_IDS"] = list(deal.get("CONTACT_IDS", []))
    stamp = format_datetime(now, tz)
    stage = _resolve_stage(fields.get("STAGE_ID"), int(deal["CATEGORY_ID"]))
    if stage is not None and stage.status_id != deal["STAGE_ID"]:
        _apply_stage(updated, stage)
        updated["MOVED_TIME"] = stamp
        updated["MOVED_BY_ID"] = str(user_id)
    updated["DATE_MODIFY"] = stamp
    updated["MODIFY_BY_ID"] = str(user_id)
    _apply_plain(updated, fields, tz=tz, trusted=trusted, now=now)
    return updated


def move_category(deal: Deal, category_id: int, stage_id: str | None, *, now: datetime,
                  user_id: int, tz: timezone) -> Deal:
    """Move a deal to another pipeline (its first stage unless a stage of it is given)."""
    updated = dict(deal)
    stage = _resolve_stage(stage_id, category_id) or catalog.first_stage(category_id)
    _apply_stage(updated, stage)
    stamp = format_datetime(now, tz)
    updated.update({"MOVED_TIME": stamp, "MOVED_BY_ID": str(user_id), "DATE_MODIFY": stamp,
                    "MODIFY_BY_ID": str(user_id)})
    return updated


def _apply_plain(deal: Deal, fields: Mapping[str, Any], *, tz: timezone, trusted: bool,
                 now: datetime | None = None) -> None:
    for name, value in fields.items():
        if name in {"STAGE_ID", "CATEGORY_ID"} or name in DERIVED:
            continue
        if name == "CONTACT_IDS":
            ids = [to_int(v) for v in _as_list(value)]
            deal["CONTACT_IDS"] = [i for i in ids if i]
            deal["CONTACT_ID"] = str(deal["CONTACT_IDS"][0]) if deal["CONTACT_IDS"] else None
            continue
        if name not in catalog.ALL_FIELDS or (name in READ_ONLY and not trusted):
            continue
        deal[name] = _coerce(name, value, tz, now)
        if name == "CONTACT_ID":
            contact = to_int(value)
            deal["CONTACT_IDS"] = [contact] if contact else []
        if name == "TITLE" and deal["TITLE"] in (None, ""):
            deal["TITLE"] = f"Сделка #{deal['ID']}"


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def render(deal: Deal) -> dict[str, Any]:
    """The deal exactly as ``crm.deal.get`` returns it."""
    return {name: deal[name] for name in catalog.GET_ORDER}


def opportunity_from_rows(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """(OPPORTUNITY, TAX_VALUE) recomputed from product rows."""
    total = sum((to_decimal(r["PRICE"]) or 0) * (to_decimal(r["QUANTITY"]) or 0) for r in rows)
    tax = 0
    for row in rows:
        rate = to_decimal(row.get("TAX_RATE"))
        if rate:
            price = to_decimal(row["PRICE"]) or 0
            qty = to_decimal(row["QUANTITY"]) or 0
            tax += price * qty * rate / (100 + rate)
    return format_money(total), format_money(tax)
