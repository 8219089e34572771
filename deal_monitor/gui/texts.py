"""Words for what the core reports: statuses, sources, event names, timeline steps, errors.

The core speaks English in plain strings (timeline texts, error messages, rejection reasons);
the window must not show English in the Russian UI, so the known shapes are recognised here
and translated, and anything unknown is shown as it came (it is still useful to support).
"""

from __future__ import annotations

import re

from PySide6.QtCore import QCoreApplication

from ..model import DealState, EventStatus, HistoryEntry, Source

# Labels are built once per language: tables ask for them on every repaint.
_cache: dict[tuple[str, object], str] = {}


def clear_cache() -> None:
    """Forget the labels (the language changed)."""
    _cache.clear()


def _cached(kind: str, key: object, build) -> str:
    try:
        return _cache[(kind, key)]
    except KeyError:
        value = _cache[(kind, key)] = build(key)
        return value


def status_label(status: EventStatus) -> str:
    return _cached("status", status, _status_label)


def _status_label(status: EventStatus) -> str:
    labels = {
        EventStatus.QUEUED: QCoreApplication.translate("Texts", "queued"),
        EventStatus.SYNCED: QCoreApplication.translate("Texts", "synced"),
        EventStatus.SKIPPED: QCoreApplication.translate("Texts", "skipped by stage"),
        EventStatus.DELETED: QCoreApplication.translate("Texts", "deleted"),
        EventStatus.FAILED: QCoreApplication.translate("Texts", "failed"),
        EventStatus.IGNORED: QCoreApplication.translate("Texts", "ignored"),
        EventStatus.REJECTED: QCoreApplication.translate("Texts", "rejected"),
    }
    return labels.get(status, str(status))


def retry_label() -> str:
    """A queued row that already failed at least once waits for its retry."""
    return _cached("retry", "", lambda _key: QCoreApplication.translate("Texts", "waiting to retry"))


def source_label(source: Source) -> str:
    return _cached("source", source, _source_label)


def _source_label(source: Source) -> str:
    labels = {
        Source.PUSH: QCoreApplication.translate("Texts", "push"),
        Source.OFFLINE: QCoreApplication.translate("Texts", "offline"),
        Source.RECONCILE: QCoreApplication.translate("Texts", "reconcile"),
        Source.MANUAL: QCoreApplication.translate("Texts", "manual"),
    }
    return labels.get(source, str(source))


def state_label(state: DealState) -> str:
    return _cached("state", state, _state_label)


def _state_label(state: DealState) -> str:
    labels = {
        DealState.SYNCED: QCoreApplication.translate("Texts", "sent to production", "deal state"),
        DealState.SKIPPED: QCoreApplication.translate("Texts", "skipped by stage", "deal state"),
        DealState.DELETED: QCoreApplication.translate(
            "Texts", "deleted in the portal", "deal state"
        ),
        DealState.FAILED: QCoreApplication.translate("Texts", "sync failed", "deal state"),
    }
    return labels.get(state, str(state))


def event_label(event: str) -> str:
    """A human name for an inbox row's event (the raw name goes to the tooltip)."""
    return _cached("event", event, _event_label)


def _event_label(event: str) -> str:
    labels = {
        "ONCRMDEALADD": QCoreApplication.translate("Texts", "Deal created"),
        "ONCRMDEALUPDATE": QCoreApplication.translate("Texts", "Deal changed"),
        "ONCRMDEALDELETE": QCoreApplication.translate("Texts", "Deal deleted"),
        "ONCRMDEALMOVETOCATEGORY": QCoreApplication.translate("Texts", "Deal moved to a pipeline"),
        "RESYNC": QCoreApplication.translate("Texts", "Resync"),
        "RECONCILE": QCoreApplication.translate("Texts", "Reconciliation"),
        "ONAPPINSTALL": QCoreApplication.translate("Texts", "App installed"),
        "ONAPPUNINSTALL": QCoreApplication.translate("Texts", "App removed"),
    }
    if event in labels:
        return labels[event]
    match = re.fullmatch(r"HTTP (\d{3})", event)
    if match:
        return QCoreApplication.translate("Texts", "Request refused (HTTP %1)").replace(
            "%1", match.group(1)
        )
    return event


def history_kind_label(kind: str) -> str:
    return _cached("kind", kind, _history_kind_label)


def _history_kind_label(kind: str) -> str:
    labels = {
        "event": QCoreApplication.translate("Texts", "Events"),
        "fetch": QCoreApplication.translate("Texts", "Read"),
        "decision": QCoreApplication.translate("Texts", "Decision"),
        "write": QCoreApplication.translate("Texts", "Written"),
        "error": QCoreApplication.translate("Texts", "Error"),
    }
    return labels.get(kind, kind)


_EVENTS_PART = re.compile(r"^(?P<event>[A-Z0-9_]+) \((?P<source>[a-z]+)\)(?: ×(?P<n>\d+))?$")


def _events_text(text: str) -> str | None:
    """``ONCRMDEALUPDATE (push) ×2, RESYNC (manual)`` in words, or None if it is not that."""
    parts = []
    for piece in text.split(", "):
        match = _EVENTS_PART.match(piece)
        if not match:
            return None
        try:
            source = source_label(Source(match["source"]))
        except ValueError:
            source = match["source"]
        label = event_label(match["event"])
        if match["event"] != "RECONCILE":  # "Reconciliation (reconcile)" says it twice
            label += f" ({source})"
        if match["n"]:
            label += f" ×{match['n']}"
        parts.append(label)
    return ", ".join(parts)


def history_text(entry: HistoryEntry, stage_name=lambda stage_id: stage_id) -> str:
    """A timeline entry in the UI language, from its code and parameters (``sync/notes.py``);
    ``stage_name`` names stage IDs. An entry without a known code shows its own text."""
    code, params = entry.code, entry.params
    if code == "events":
        summary = params.get("summary", "")
        return _events_text(summary) or summary
    if code == "fetched":
        return QCoreApplication.translate(
            "Texts", "Read from the portal: stage “%1”, changed %2"
        ).replace("%1", stage_name(params.get("stage", ""))).replace(
            "%2", _iso_text(params.get("modified", ""))
        )
    if code == "skipped_stage":
        return QCoreApplication.translate(
            "Texts", "Not sent to production: stage “%1” is skipped by the stage filter"
        ).replace("%1", stage_name(params.get("stage", "")))
    if code == "read_failed":
        return QCoreApplication.translate("Texts", "Could not read the deal: %1").replace(
            "%1", error_text(params.get("error", ""))
        )
    if code == "products":
        return QCoreApplication.translate("Texts", "Product rows written: %1").replace(
            "%1", params.get("count", "")
        )
    fixed = {
        "created": QCoreApplication.translate(
            "Texts", "Written to the production database (new row)"
        ),
        "updated": QCoreApplication.translate("Texts", "Updated in the production database"),
        "stale": QCoreApplication.translate(
            "Texts", "The production database already holds newer data; not written"
        ),
        "deleted_marked": QCoreApplication.translate(
            "Texts", "Deleted in the portal; marked deleted in the production database"
        ),
        "deleted_never": QCoreApplication.translate(
            "Texts", "Deleted in the portal; it never reached the production database"
        ),
        "read_lag": QCoreApplication.translate(
            "Texts", "Not readable yet; will read again shortly"
        ),
    }
    if code in fixed:
        return fixed[code]
    return error_text(params.get("error", entry.text))


def _iso_text(value: str) -> str:
    from .formatting import datetime_text, parse_iso

    moment = parse_iso(value)
    return datetime_text(moment) if moment else value


def error_text(error: str) -> str:
    """A known core/portal error in the UI language; unknown ones unchanged."""
    if not error:
        return ""
    fixed = {
        "wrong application token": QCoreApplication.translate(
            "Texts", "wrong application token"
        ),
        "application token is not configured": QCoreApplication.translate(
            "Texts", "the application token is not set in the settings"
        ),
        "event from another portal (member_id)": QCoreApplication.translate(
            "Texts", "event from another portal (member_id)"
        ),
        "event from another portal (domain)": QCoreApplication.translate(
            "Texts", "event from another portal (domain)"
        ),
        "missing or malformed event name": QCoreApplication.translate(
            "Texts", "malformed request: no event name"
        ),
        "missing or invalid data[FIELDS][ID]": QCoreApplication.translate(
            "Texts", "malformed request: no deal ID"
        ),
        "malformed ts": QCoreApplication.translate("Texts", "malformed request: bad time stamp"),
        "malformed event_handler_id": QCoreApplication.translate(
            "Texts", "malformed request: bad handler ID"
        ),
        "sender not in the allowed networks": QCoreApplication.translate(
            "Texts", "the sender is not in the allowed networks"
        ),
        "sender address unknown": QCoreApplication.translate("Texts", "unknown sender address"),
        "expected application/x-www-form-urlencoded": QCoreApplication.translate(
            "Texts", "malformed request: not a form"
        ),
        "bad Content-Length": QCoreApplication.translate("Texts", "malformed request: bad length"),
        "body too large": QCoreApplication.translate("Texts", "request too large"),
        "empty body": QCoreApplication.translate("Texts", "empty request"),
        "Not found (read lag?)": QCoreApplication.translate(
            "Texts", "not readable yet (the portal is still saving it)"
        ),
    }
    if error in fixed:
        return fixed[error]
    if error.startswith("malformed body: "):
        return QCoreApplication.translate("Texts", "malformed request: %1").replace(
            "%1", error[len("malformed body: "):]
        )
    if error.startswith("reconciliation: "):
        return QCoreApplication.translate("Texts", "reconciliation failed: %1").replace(
            "%1", error_text(error[len("reconciliation: "):])
        )
    if error.startswith("target database: "):
        return QCoreApplication.translate("Texts", "production database: %1").replace(
            "%1", error[len("target database: "):]
        )
    if error.startswith("internal error: "):
        return QCoreApplication.translate("Texts", "internal error: %1").replace(
            "%1", error[len("internal error: "):]
        )
    return _portal_error(error)


def _portal_error(error: str) -> str:
    """``CODE: description`` from the portal: keep the code, explain the well-known ones."""
    code = error.split(":", 1)[0].strip()
    explained = {
        "NO_AUTH_FOUND": QCoreApplication.translate(
            "Texts", "the webhook URL is wrong or was revoked"
        ),
        "QUERY_LIMIT_EXCEEDED": QCoreApplication.translate(
            "Texts", "the portal asked to slow down"
        ),
        "OPERATION_TIME_LIMIT": QCoreApplication.translate(
            "Texts", "the portal's time budget for this method is used up"
        ),
        "OVERLOAD_LIMIT": QCoreApplication.translate("Texts", "the portal blocked REST calls"),
        "INTERNAL_SERVER_ERROR": QCoreApplication.translate(
            "Texts", "the portal had an internal error"
        ),
        "ACCESS_DENIED": QCoreApplication.translate("Texts", "the webhook lacks the CRM permission"),
        "insufficient_scope": QCoreApplication.translate(
            "Texts", "the webhook lacks the CRM permission"
        ),
        "expired_token": QCoreApplication.translate("Texts", "the app must be authorized again"),
        "invalid_token": QCoreApplication.translate("Texts", "the app must be authorized again"),
    }
    if code in explained:
        return f"{explained[code]} ({error})"
    return error


def field_label(code: str) -> str:
    """A deal field's name for the field-change list (the raw code for custom fields)."""
    return _cached("field", code, _field_label)


def _field_label(code: str) -> str:
    labels = {
        "TITLE": QCoreApplication.translate("Texts", "Title"),
        "STAGE_ID": QCoreApplication.translate("Texts", "Stage"),
        "CATEGORY_ID": QCoreApplication.translate("Texts", "Pipeline"),
        "OPPORTUNITY": QCoreApplication.translate("Texts", "Amount"),
        "CURRENCY_ID": QCoreApplication.translate("Texts", "Currency"),
        "CLOSEDATE": QCoreApplication.translate("Texts", "Close date"),
        "BEGINDATE": QCoreApplication.translate("Texts", "Start date"),
        "COMMENTS": QCoreApplication.translate("Texts", "Comment"),
        "ASSIGNED_BY_ID": QCoreApplication.translate("Texts", "Responsible"),
        "MOVED_TIME": QCoreApplication.translate("Texts", "Stage changed at"),
        "MOVED_BY_ID": QCoreApplication.translate("Texts", "Stage changed by"),
        "STAGE_SEMANTIC_ID": QCoreApplication.translate("Texts", "Stage group"),
        "CLOSED": QCoreApplication.translate("Texts", "Closed"),
        "IS_NEW": QCoreApplication.translate("Texts", "New"),
        "TYPE_ID": QCoreApplication.translate("Texts", "Type"),
        "SOURCE_ID": QCoreApplication.translate("Texts", "Source"),
        "TAX_VALUE": QCoreApplication.translate("Texts", "Tax"),
        "PROBABILITY": QCoreApplication.translate("Texts", "Probability"),
        "COMPANY_ID": QCoreApplication.translate("Texts", "Company"),
        "CONTACT_ID": QCoreApplication.translate("Texts", "Contact"),
        "IS_MANUAL_OPPORTUNITY": QCoreApplication.translate("Texts", "Amount entered by hand"),
    }
    return labels.get(code, code)


__all__ = [
    "clear_cache",
    "error_text",
    "event_label",
    "field_label",
    "history_kind_label",
    "history_text",
    "retry_label",
    "source_label",
    "state_label",
    "status_label",
]
