"""Reference-data methods: stages and dictionaries, pipelines, users, ``app.info``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import catalog, query
from .errors import RestError
from .formats import to_int
from .params import Call, Listing, as_list, as_mapping
from .services import Services

Method = Callable[[Services, Call], Any]

_STATUS_KINDS = {"ID": "numeric", "SORT": "numeric", "ENTITY_ID": "text", "STATUS_ID": "text",
                 "NAME": "text", "NAME_INIT": "text", "SYSTEM": "text", "CATEGORY_ID": "numeric",
                 "SEMANTICS": "text", "COLOR": "text"}


def status_rows() -> list[dict[str, Any]]:
    """Every ``crm.status`` row of the portal: deal stages of all pipelines + dictionaries."""
    rows = [stage.as_status_row() for stage in sorted(catalog.STAGES.values(), key=lambda s: s.row_id)]
    next_id = 1
    for entity, items in catalog.DICTIONARIES.items():
        for index, (status_id, name) in enumerate(items):
            rows.append({
                "ID": str(next_id), "ENTITY_ID": entity, "STATUS_ID": status_id, "NAME": name,
                "NAME_INIT": name if index < 2 else "", "SORT": str((index + 1) * 10),
                "SYSTEM": "Y" if index < 2 else "N", "CATEGORY_ID": None, "COLOR": None,
                "SEMANTICS": None,
            })
            next_id += 1
    return rows


def status_list(svc: Services, call: Call) -> Listing:
    conditions = query.parse_filter(call.get("filter"), _STATUS_KINDS.get, svc.portal.tz)
    order = query.parse_order(call.get("order"), _STATUS_KINDS.get)
    rows = status_rows()
    if not order:
        order = [("SORT", False, "numeric")]
        rows.sort(key=lambda r: r["ENTITY_ID"])
    page = query.paginate(rows, conditions, order, max(call.start, 0), presorted=False)
    return Listing(page.rows, page.total, page.next)


def _entity_type(call: Call) -> None:
    entity = to_int(call.get("entityTypeId"))
    if entity != 2:
        raise RestError(400, "NOT_FOUND", "Смарт-процесс не найден")


def category_list(svc: Services, call: Call) -> Listing:
    _entity_type(call)
    items = []
    for cat in catalog.CATEGORIES:
        item: dict[str, Any] = {"id": cat.id, "name": cat.name, "sort": cat.sort,
                                "entityTypeId": 2, "isDefault": "Y" if cat.is_default else "N"}
        if not cat.is_default:
            item.update({"originId": "", "originatorId": ""})
        items.append(item)
    return Listing({"categories": items}, len(items))


def dealcategory_list(svc: Services, call: Call) -> Listing:
    rows = [{"ID": str(c.id), "CREATED_DATE": "2024-01-15T10:00:00+03:00", "NAME": c.name,
             "IS_LOCKED": "N", "SORT": str(c.sort), "ORIGIN_ID": "", "ORIGINATOR_ID": ""}
            for c in catalog.CATEGORIES if not c.is_default]
    return Listing(rows, len(rows))


def dealcategory_stage_list(svc: Services, call: Call) -> list[dict[str, Any]]:
    category = to_int(call.get("id")) or 0
    return [{"NAME": s.name, "SORT": s.sort, "STATUS_ID": s.status_id}
            for s in catalog.stages_of(category)] if category in catalog.category_ids() else []


def user_get(svc: Services, call: Call) -> Listing:
    wanted = call.get("ID")
    flt = as_mapping(call.get("FILTER")) or {}
    if wanted is None:
        wanted = flt.get("ID")
    ids = {to_int(v) for v in as_list(wanted)} if wanted is not None else None
    rows = []
    for user in catalog.USERS:
        if ids is not None and int(user["ID"]) not in ids:
            continue
        rows.append({
            "ID": user["ID"], "XML_ID": f"b24-{user['ID']}", "ACTIVE": True,
            "NAME": user["NAME"], "LAST_NAME": user["LAST_NAME"],
            "SECOND_NAME": user["SECOND_NAME"], "EMAIL": user["EMAIL"],
            "LAST_LOGIN": "2025-07-10T09:12:44+03:00", "DATE_REGISTER": "2023-02-01T00:00:00+03:00",
            "IS_ONLINE": "N", "TIME_ZONE_OFFSET": "0", "TIMESTAMP_X": "2025-07-01T12:00:00+03:00",
            "PERSONAL_GENDER": user["PERSONAL_GENDER"], "WORK_POSITION": user["WORK_POSITION"],
            "UF_DEPARTMENT": user["UF_DEPARTMENT"], "USER_TYPE": "employee",
        })
    return Listing(rows, len(rows))


def app_info(svc: Services, call: Call) -> dict[str, Any]:
    if call.auth_type == "webhook":
        return {"SCOPE": ["crm", "user_brief"], "LICENSE": "ru_project"}
    app = svc.oauth.app(call.actor.client_id)
    return {"ID": "17", "CODE": app.client_id, "VERSION": app.version, "STATUS": app.status,
            "INSTALLED": app.installed, "PAYMENT_EXPIRED": "N", "DAYS": None,
            "LANGUAGE_ID": "ru", "LICENSE": "ru_project"}


METHODS: dict[str, Method] = {
    "crm.status.list": status_list,
    "crm.category.list": category_list,
    "crm.dealcategory.list": dealcategory_list,
    "crm.dealcategory.stage.list": dealcategory_stage_list,
    "user.get": user_get,
    "app.info": app_info,
}
