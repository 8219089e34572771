"""``event.*`` methods: bind/unbind/get and the offline queue (app authorization only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from . import errors
from .bindings import APP_EVENTS, NO_OFFLINE
from .errors import RestError
from .formats import to_int
from .params import Call, Listing, as_list, as_mapping, flag
from .query import PAGE_SIZE
from .services import Services

Method = Callable[[Services, Call], Any]


def _app_only(call: Call) -> str:
    if call.auth_type != "oauth":
        raise errors.wrong_auth_type()
    return call.actor.client_id


def check_handler(url: str) -> None:
    """``HandlerHelper::checkCallback``: a host with a dot, http or https."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or host.find(".") <= 0:
        raise RestError(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
    if parts.scheme not in {"http", "https"}:
        raise RestError(400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported handler protocol")


def _event_type(call: Call) -> str:
    kind = str(call.get("EVENT_TYPE") or "online").lower()
    if kind not in {"online", "offline"}:
        raise errors.argument("Value must be one of {online|offline}", "EVENT_TYPE")
    return kind


def event_bind(svc: Services, call: Call) -> bool:
    owner = _app_only(call)
    event = str(call.get("EVENT") or "").upper()
    kind = _event_type(call)
    handler = str(call.get("HANDLER") or "")
    user_id = to_int(call.get("AUTH_TYPE")) or 0
    if not event:
        raise errors.argument_null("EVENT")
    if kind == "offline":
        handler, user_id = "", 0
    elif not handler:
        raise errors.argument_null("HANDLER")
    if handler:
        check_handler(handler)
    if event not in APP_EVENTS:
        raise RestError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    if kind == "offline" and event in NO_OFFLINE:
        raise RestError(400, "ERROR_ARGUMENT", "Offline event cannot be registered for this event.")
    options: dict[str, Any] = {}
    raw_options = as_mapping(call.get("OPTIONS")) or {}
    if event == "ONOFFLINEEVENT" and "minTimeout" in raw_options:
        options["minTimeout"] = to_int(raw_options["minTimeout"]) or 0
    svc.bindings.add(event, handler, owner, user_id=user_id, connector=call.actor.connector,
                     options=options)
    return True


def event_unbind(svc: Services, call: Call) -> dict[str, int]:
    owner = _app_only(call)
    event = str(call.get("EVENT") or "").upper()
    kind = _event_type(call)
    handler = str(call.get("HANDLER") or "")
    if not event:
        raise errors.argument_null("EVENT")
    if kind == "offline":
        count = svc.bindings.remove(owner, event, "", connector=call.actor.connector)
    else:
        if not handler:
            raise errors.argument_null("HANDLER")
        auth_type = call.get("AUTH_TYPE")
        user_id = to_int(auth_type) if auth_type is not None else None
        count = svc.bindings.remove(owner, event, handler, user_id=user_id)
    return {"count": count}


def event_get(svc: Services, call: Call) -> list[dict[str, Any]]:
    owner = _app_only(call)
    result = []
    for row in svc.bindings.of_owner(owner):
        if row.offline:
            result.append({"event": row.event, "connector_id": row.connector, "offline": 1})
        else:
            result.append({"event": row.event, "handler": row.handler,
                           "auth_type": str(row.user_id), "offline": 0})
    return result


def _message_ids(value: Any) -> list[str]:
    if not isinstance(value, dict | list):
        raise errors.argument("Value must be array of MESSAGE_ID values", "message_id")
    ids = [str(v).strip() for v in as_list(value)]
    if any(len(i) != 32 for i in ids):
        raise errors.argument("Value must be array of MESSAGE_ID values", "messsage_id")
    return ids


def offline_get(svc: Services, call: Call) -> dict[str, Any]:
    owner = _app_only(call)
    clear = flag(call.get("clear"), default=True)
    if not clear and not svc.offline.extended:
        raise RestError(403, "WRONG_LICENSE", "This feature is not enabled for the current "
                        "license: extended offline events handling")
    limit = to_int(call.get("limit")) if call.get("limit") is not None else PAGE_SIZE
    if limit is None or limit <= 0:
        raise errors.argument("Value must be positive integer", "LIMIT")
    error = 1 if to_int(call.get("error")) == 1 else 0
    raw_process = call.get("process_id")
    connector = call.actor.connector
    flt, order = call.get("filter"), call.get("order")
    queue = svc.offline
    if raw_process is None:
        process_id = queue.mark(owner, connector, error, flt, order, limit)
        return_process = not clear
    else:
        process_id = str(raw_process).strip()
        return_process = True
    events = queue.reserved(owner, connector, process_id, error, flt, order, limit)
    if clear and events:
        queue.clear(owner, connector, process_id)
    return {"process_id": process_id if return_process else None, "events": events}


def offline_clear(svc: Services, call: Call) -> bool:
    owner = _app_only(call)
    raw_process = call.get("process_id")
    if raw_process is None:
        raise errors.argument_null("PROCESS_ID")
    process_id = str(raw_process).strip()
    if call.get("message_id") is not None:
        svc.offline.clear(owner, call.actor.connector, process_id,
                          message_ids=_message_ids(call.get("message_id")))
    elif call.get("id") is not None:
        raw = call.get("id")
        if not isinstance(raw, dict | list):
            raise errors.argument("Value must be array of integers", "id")
        ids = [to_int(v) or 0 for v in as_list(raw)]
        if any(i <= 0 for i in ids):
            raise errors.argument("Value must be array of integers", "id")
        svc.offline.clear(owner, call.actor.connector, process_id, ids=ids)
    else:
        svc.offline.clear(owner, call.actor.connector, process_id)
    return True


def offline_error(svc: Services, call: Call) -> bool:
    owner = _app_only(call)
    raw_process = call.get("process_id")
    if raw_process is None:
        raise errors.argument_null("PROCESS_ID")
    message_ids = call.get("message_id")
    if not isinstance(message_ids, dict | list):
        raise errors.argument("Value must be array of MESSAGE_ID values", "message_id")
    ids = [str(v).strip() for v in as_list(message_ids)]
    if ids:
        svc.offline.mark_error(owner, call.actor.connector, str(raw_process).strip(), ids)
    return True


def offline_list(svc: Services, call: Call) -> Listing:
    owner = _app_only(call)
    rows = svc.offline.list(owner, call.actor.connector, call.get("filter"), call.get("order"))
    offset = (max(call.start, 0) // PAGE_SIZE) * PAGE_SIZE
    page = rows[offset:offset + PAGE_SIZE]
    nxt = offset + PAGE_SIZE if offset + PAGE_SIZE < len(rows) else None
    return Listing(page, len(rows), nxt)


def event_test(svc: Services, call: Call) -> int:
    """``event.test``: app auth only; answers 1 (the portal would also fire ONAPPTEST to the
    app's handlers; nothing here binds that event)."""
    _app_only(call)
    return 1


def scope(svc: Services, call: Call) -> list[str]:
    """``scope``: the scopes of the calling webhook or app (global methods live here too)."""
    if call.auth_type == "webhook":
        return ["crm", "user_brief"]
    return [s for s in svc.oauth.app(call.actor.client_id).scope.split(",") if s]


METHODS: dict[str, Method] = {
    "event.test": event_test,
    "scope": scope,
    "event.bind": event_bind,
    "event.unbind": event_unbind,
    "event.get": event_get,
    "event.offline.get": offline_get,
    "event.offline.clear": offline_clear,
    "event.offline.error": offline_error,
    "event.offline.list": offline_list,
}
