"""``crm.deal.*`` methods: get, list, add, update, delete, fields, productrows.get/set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import catalog, errors, query
from .errors import RestError
from .formats import to_int
from .params import Call, Listing, as_list, as_mapping
from .portal import DealNotFound, kind_of
from .services import Services

Method = Callable[[Services, Call], Any]


def _deal_id(call: Call, *, message: str | None = None) -> int:
    value = call.get("id")
    deal_id = to_int(value) if not isinstance(value, dict | list) else None
    if deal_id is None or deal_id <= 0:
        if message:
            raise RestError(400, "", message)
        raise errors.bad_id()
    return deal_id


def _fields(call: Call) -> dict[str, Any]:
    fields = as_mapping(call.get("fields"))
    if fields is None:
        raise RestError(400, "", "Invalid parameter 'fields'.")
    return {str(k).upper(): v for k, v in fields.items()}


def resolve_select(raw: Any) -> list[str]:
    """``select`` with ``*`` (standard fields) and ``UF_*`` (user fields) masks."""
    items = [str(v).upper() for v in as_list(raw) if str(v).strip()]
    if not items:
        return list(catalog.GET_ORDER)
    standard = [f for f in catalog.GET_ORDER if not f.startswith("UF_")]
    user = [f for f in catalog.GET_ORDER if f.startswith("UF_")]
    chosen: list[str] = []
    for item in items:
        if item == "*":
            chosen.extend(standard)
        elif item == "UF_*":
            chosen.extend(user)
        elif item in catalog.ALL_FIELDS and item != "CONTACT_IDS":
            chosen.append(item)
    return list(dict.fromkeys(chosen))


def deal_get(svc: Services, call: Call) -> Any:
    deal = svc.portal.read_for_rest(_deal_id(call))
    if deal is None:
        raise errors.not_found()
    return deal


def deal_list(svc: Services, call: Call) -> Listing:
    tz = svc.portal.tz
    conditions = query.parse_filter(call.get("filter"), kind_of, tz)
    order = query.parse_order(call.get("order"), kind_of)
    select = resolve_select(call.get("select"))
    page = svc.portal.list_page(conditions, order, call.start)
    rows = [{name: row[name] for name in select} for row in page.rows]
    total = 0 if page.total is None else page.total
    return Listing(rows, total, page.next)


def deal_add(svc: Services, call: Call) -> int:
    return svc.portal.create(_fields(call), call.actor, trusted=False)


def deal_update(svc: Services, call: Call) -> bool:
    deal_id = _deal_id(call)
    fields = _fields(call)
    try:
        svc.portal.change(deal_id, fields, call.actor, trusted=False)
    except DealNotFound:
        raise errors.not_found() from None
    return True


def deal_delete(svc: Services, call: Call) -> bool:
    try:
        svc.portal.remove(_deal_id(call), call.actor)
    except DealNotFound:
        raise errors.not_found() from None
    return True


def deal_fields(svc: Services, call: Call) -> dict[str, Any]:
    return {name: dict(desc) for name, desc in catalog.ALL_FIELDS.items()}


_ROWS_BAD_ID = "The parameter id is invalid or not defined."


def productrows_get(svc: Services, call: Call) -> list[dict[str, Any]]:
    try:
        return svc.portal.get_product_rows(_deal_id(call, message=_ROWS_BAD_ID))
    except DealNotFound:
        raise errors.not_found() from None


def productrows_set(svc: Services, call: Call) -> bool:
    deal_id = _deal_id(call, message=_ROWS_BAD_ID)
    rows = []
    for row in as_list(call.get("rows")):
        mapping = as_mapping(row)
        if mapping is None:
            raise RestError(400, "", "The parameter rows must be array.")
        rows.append({str(k).upper(): v for k, v in mapping.items()})
    try:
        svc.portal.replace_rows(deal_id, rows, call.actor)
    except DealNotFound:
        raise errors.not_found() from None
    return True


METHODS: dict[str, Method] = {
    "crm.deal.get": deal_get,
    "crm.deal.list": deal_list,
    "crm.deal.add": deal_add,
    "crm.deal.update": deal_update,
    "crm.deal.delete": deal_delete,
    "crm.deal.fields": deal_fields,
    "crm.deal.productrows.get": productrows_get,
    "crm.deal.productrows.set": productrows_set,
}
