"""Words for what the core reports: statuses, sources, event names, timeline steps, errors.

The core speaks English in plain strings (timeline texts, error messages, rejection reasons);
the window must not show English in the Russian UI, so the known shapes are recognised here
and translated, and anything unknown is shown as it came (it is still useful to support).
"""

from __future__ import annotations

import functools
import re

from PySide6.QtCore import QCoreApplication

from ..model import DealState, EventStatus, HistoryEntry, Source

# Labels are built once per language: tables ask for them on every repaint.
_cache: dict[tuple[str, object], str] = {}


def clear_cache() -> None:
    """Forget the labels (the language changed)."""
    _cache.clear()
    _error_text_cached.cache_clear()


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
        "POLL": QCoreApplication.translate("Texts", "Change poll"),
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
    """A known core/portal error in the UI language; unknown ones unchanged.

    Core errors often end with their plain-words hint (``f"{exc} {exc.hint}"``); a known hint
    is translated too, whatever comes before it.
    """
    if not error:
        return ""
    return _error_text_cached(error)


@functools.lru_cache(maxsize=4096)  # tables repaint often; cleared with the language
def _error_text_cached(error: str) -> str:
    message, hint = _split_hint(error)
    if hint:
        explained = _portal_explanation(message)
        if explained is not None:  # the hint says it better than the short explanation
            return f"{hint} ({message})"
        return f"{_error_text(message)} {hint}" if message else hint
    return _error_text(error)


def _error_text(error: str) -> str:
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
        "not started": QCoreApplication.translate("Texts", "not started"),
        "not authorized yet": QCoreApplication.translate("Texts", "no sign-in yet"),
        "not authorized": QCoreApplication.translate("Texts", "no sign-in yet"),
        "the app was uninstalled from the portal": QCoreApplication.translate(
            "Texts", "the application was removed from the portal"),
        "integrity check failed": QCoreApplication.translate(
            "Texts", "the integrity check failed"),
        "state database was corrupt; moved aside, full reconciliation follows": (
            QCoreApplication.translate(
                "Texts",
                "state database was corrupt; moved aside, full reconciliation follows",
            )
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
    match = re.fullmatch(r"cannot listen on (\S+): (.*)", error, re.S)
    if match:
        return _fill(QCoreApplication.translate("Texts", "cannot listen on %1: %2"),
                     match.group(1), os_error_text(match.group(2)))
    for pattern, build in _error_patterns():
        match = pattern.fullmatch(error)
        if match:
            return _fill(build(), *match.groups())
    known = _config_problem(error)
    if known is not None:
        return known  # the settings' Test buttons report config problems as they are
    return _portal_error(error)


def os_error_text(error: str) -> str:
    """The operating system's reason a port cannot be used, in the UI language (the OS speaks
    English on Linux and macOS; the English UI keeps its words)."""
    known = {
        "Address already in use": QCoreApplication.translate("Texts", "Address already in use"),
        "Permission denied": QCoreApplication.translate("Texts", "Permission denied"),
        "Cannot assign requested address": QCoreApplication.translate(
            "Texts", "Cannot assign requested address"),
    }
    return known.get(error, error)


def _fill(template: str, *values: str) -> str:
    """``%1``, ``%2``... replaced in one pass (a value may itself contain ``%2``)."""
    return re.sub(r"%(\d)", lambda m: values[int(m.group(1)) - 1]
                  if 0 < int(m.group(1)) <= len(values) else m.group(0), template)


def _error_patterns():
    """Core errors that embed a value: (pattern, translated template with %1, %2...)."""
    return (
        (re.compile(r"cannot use this URL: (.+)", re.S),
         lambda: QCoreApplication.translate("Texts", "cannot use this URL: %1")),
        (re.compile(r"cannot listen on (\S+): (.*)", re.S),
         lambda: QCoreApplication.translate("Texts", "cannot listen on %1: %2")),
        (re.compile(r"target table (\S+) lacks columns: (.+)", re.S),
         lambda: QCoreApplication.translate("Texts", "target table %1 lacks columns: %2")),
        (re.compile(r"product table (\S+) lacks columns: (.+)", re.S),
         lambda: QCoreApplication.translate(
             "Texts", "product table %1 lacks columns: %2")),
        (re.compile(r"target table (\S+) does not exist"),
         lambda: QCoreApplication.translate(
             "Texts", "target table %1 does not exist")),
        (re.compile(r"unsupported target database: (.+)"),
         lambda: QCoreApplication.translate("Texts", "unsupported target database: %1")),
    )


def warning_text(code: str) -> str:
    """An anomaly warning of the status (``StatusSnapshot.warnings``) in words."""
    return {
        "auth_failures": QCoreApplication.translate(
            "Texts", "Many requests with a wrong application token came in the last hour. If "
            "the token was changed in Bitrix24, enter the new one in the settings; otherwise "
            "someone is probing the listener (the Events tab lists the senders)."),
        "previous_token_in_use": QCoreApplication.translate(
            "Texts", "Events still come signed with the previous application token. They are "
            "accepted for a while; check that the token in the settings is the one the "
            "outgoing webhook in Bitrix24 shows now."),
        "forged_delete": QCoreApplication.translate(
            "Texts", "A delete event came for a deal that still exists in Bitrix24; the deal "
            "was kept. Someone else may hold the application token: consider a new one."),
    }.get(code, code)


def hint_text(hint: str) -> str:
    """A core error's plain-words hint (``DealMonitorError.hint``) in the UI language."""
    return _hints().get(hint, hint)


def _hints() -> dict[str, str]:
    return {
        "Another program may use this port: choose another port or stop that program.": (
            QCoreApplication.translate(
                "Texts",
                "Another program may use this port: choose another port or stop that program.",
            )
        ),
        "Check that the target database is running and the URL in the settings is right.": (
            QCoreApplication.translate(
                "Texts",
                "Check that the target database is running and the URL in the settings is right.",
            )
        ),
        "The webhook URL is wrong or was revoked: create a new inbound webhook.": (
            QCoreApplication.translate(
                "Texts",
                "The webhook URL is wrong or was revoked: create a new inbound webhook.",
            )
        ),
        "Authorize the app again in the settings.": QCoreApplication.translate(
            "Texts", "Authorize the app again in the settings."
        ),
        "The portal asked to slow down; the app waits and retries by itself.": (
            QCoreApplication.translate(
                "Texts", "The portal asked to slow down; the app waits and retries by itself."
            )
        ),
        "The portal blocked REST calls; contact Bitrix24 support.": QCoreApplication.translate(
            "Texts", "The portal blocked REST calls; contact Bitrix24 support."
        ),
        "The webhook or app lacks the CRM permission.": QCoreApplication.translate(
            "Texts", "The webhook or app lacks the CRM permission."
        ),
        "The portal did not answer: check the network connection.": QCoreApplication.translate(
            "Texts", "The portal did not answer: check the network connection."
        ),
        "Add the columns, or change mapping.product_columns.": QCoreApplication.translate(
            "Texts", "Add the columns, or change mapping.product_columns."
        ),
        "Point the app at another table, or add the columns.": QCoreApplication.translate(
            "Texts", "Point the app at another table, or add the columns."
        ),
        "Create the table, or pick the default preset, which creates its own.": (
            QCoreApplication.translate(
                "Texts", "Create the table, or pick the default preset, which creates its own."
            )
        ),
        "Fix the mapping: map only columns the table has, with a fitting conversion.": (
            QCoreApplication.translate(
                "Texts",
                "Fix the mapping: map only columns the table has, with a fitting conversion.",
            )
        ),
        "The deal was deleted in the portal.": QCoreApplication.translate(
            "Texts", "The deal was deleted in the portal."
        ),
    }


def _split_hint(error: str) -> tuple[str, str]:
    """``("message", "translated hint")`` when ``error`` ends with a known hint, else
    ``(error, "")``."""
    for english, translated in _hints().items():
        if error == english:
            return "", translated
        if error.endswith(" " + english):
            return error[: -len(english) - 1].rstrip(), translated
    return error, ""


def _portal_explanation(error: str) -> str | None:
    """The short explanation of a well-known portal error code, or None."""
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
        "INVALID_CREDENTIALS": QCoreApplication.translate(
            "Texts", "the webhook lacks the CRM permission"
        ),
        "expired_token": QCoreApplication.translate("Texts", "the app must be authorized again"),
        "invalid_token": QCoreApplication.translate("Texts", "the app must be authorized again"),
        "invalid_grant": QCoreApplication.translate("Texts", "the app must be authorized again"),
        "NETWORK_ERROR": QCoreApplication.translate("Texts", "no connection to the portal"),
        "ERROR_UNEXPECTED_ANSWER": QCoreApplication.translate(
            "Texts", "the address did not answer like a Bitrix24 portal"
        ),
        "HTTP_ERROR": QCoreApplication.translate("Texts", "the portal answered with an HTTP error"),
        "NOT_INSTALLED": QCoreApplication.translate(
            "Texts", "the app is not installed on the portal"
        ),
        "PAYMENT_REQUIRED": QCoreApplication.translate(
            "Texts", "the portal's plan does not allow REST calls"
        ),
    }
    return explained.get(code)


def _portal_error(error: str) -> str:
    """``CODE: description`` from the portal: keep the code, explain the well-known ones."""
    explained = _portal_explanation(error)
    if explained is not None:
        return f"{explained} ({error})"
    return error


# -- settings problems -----------------------------------------------------------------------------
def _config_problem_table() -> dict[str, str]:
    """Every fixed problem ``config.validate``/``_coerce`` (and the mapping check) reports."""
    return {
        "must be true or false": QCoreApplication.translate("Texts", "must be true or false"),
        "must be a whole number": QCoreApplication.translate("Texts", "must be a whole number"),
        "must be a number": QCoreApplication.translate("Texts", "must be a number"),
        "must be a string": QCoreApplication.translate("Texts", "must be a string"),
        "must be a table of strings": QCoreApplication.translate(
            "Texts", "must be a table of strings"
        ),
        "must be a list of strings": QCoreApplication.translate(
            "Texts", "must be a list of strings"
        ),
        "unsupported type": QCoreApplication.translate("Texts", "unsupported type"),
        "must be a table": QCoreApplication.translate("Texts", "must be a table"),
        "unknown key": QCoreApplication.translate("Texts", "unknown key"),
        "must be an http(s) URL": QCoreApplication.translate("Texts", "must be an http(s) URL"),
        "must look like https://<portal>/rest/<user id>/<secret>/": QCoreApplication.translate(
            "Texts", "must look like https://<portal>/rest/<user id>/<secret>/"
        ),
        "is needed with client_id (the portal's address)": QCoreApplication.translate(
            "Texts", "is needed with client_id (the portal's address)"
        ),
        "works only for an OAuth app (set client_id)": QCoreApplication.translate(
            "Texts", "works only for an OAuth app (set client_id)"
        ),
        "must be 32 hexadecimal characters": QCoreApplication.translate(
            "Texts", "must be 32 hexadecimal characters"
        ),
        "must be between 0 and 65535": QCoreApplication.translate(
            "Texts", "must be between 0 and 65535"
        ),
        "must start with / and not be /healthz": QCoreApplication.translate(
            "Texts", "must start with / and not be /healthz"
        ),
        "must be a public https:// URL (the token travels in the body: never in clear)": (
            QCoreApplication.translate(
                "Texts",
                "must be a public https:// URL (the token travels in the body: never in clear)",
            )
        ),
        "not an IP network": QCoreApplication.translate("Texts", "not an IP network"),
        "must be an IP address": QCoreApplication.translate("Texts", "must be an IP address"),
        "must be between 0 and 60": QCoreApplication.translate(
            "Texts", "must be between 0 and 60"
        ),
        "must not be below debounce_seconds": QCoreApplication.translate(
            "Texts", "must not be below debounce_seconds"
        ),
        "must not be negative (0 turns it off)": QCoreApplication.translate(
            "Texts", "must not be negative (0 turns it off)"
        ),
        "must be at least 1": QCoreApplication.translate("Texts", "must be at least 1"),
        "must be at least 1 (or 0: off)": QCoreApplication.translate(
            "Texts", "must be at least 1 (or 0: off)"
        ),
        "must be above 0": QCoreApplication.translate("Texts", "must be above 0"),
        "must be a plain SQL identifier": QCoreApplication.translate(
            "Texts", "must be a plain SQL identifier"
        ),
        "must be an SQLAlchemy URL such as sqlite:///path.db": QCoreApplication.translate(
            "Texts", "must be an SQLAlchemy URL such as sqlite:///path.db"
        ),
        "source must start with field:, template:, const: or lookup:": (
            QCoreApplication.translate(
                "Texts", "source must start with field:, template:, const: or lookup:"
            )
        ),
        "field: needs a field name": QCoreApplication.translate(
            "Texts", "field: needs a field name"
        ),
        "must differ from product_deal_column": QCoreApplication.translate(
            "Texts", "must differ from product_deal_column"),
        "a custom mapping needs at least one column": QCoreApplication.translate(
            "Texts", "a custom mapping needs at least one column"
        ),
        "not a database URL (sqlite:///state.db or postgresql+psycopg://user@host/db)": (
            QCoreApplication.translate(
                "Texts",
                "not a database URL (sqlite:///state.db or postgresql+psycopg://user@host/db)")
        ),
        "must be a whole number (the settings file's format)": QCoreApplication.translate(
            "Texts", "must be a whole number (the settings file's format)"
        ),
    }


def _config_problem_patterns():
    """Problems that embed a value: (pattern, translated template with %1, %2...)."""
    return (
        (re.compile(r"must be one of (.+)"),
         lambda: QCoreApplication.translate("Texts", "must be one of %1")),
        (re.compile(r"unknown section \(known: (.+)\)"),
         lambda: QCoreApplication.translate("Texts", "unknown section (known: %1)")),
        (re.compile(r"not a stage id: (.+)"),
         lambda: QCoreApplication.translate("Texts", "not a stage id: %1")),
        (re.compile(r"bad template \((.+)\)", re.S),
         lambda: QCoreApplication.translate("Texts", "bad template (%1)")),
        (re.compile(r"unknown lookup (.+) \(known: (.+)\)"),
         lambda: QCoreApplication.translate("Texts", "unknown lookup %1 (known: %2)")),
        (re.compile(r"file not found: (.+)"),
         lambda: QCoreApplication.translate("Texts", "file not found: %1")),
        (re.compile(r"not valid TOML \((.+)\)", re.S),
         lambda: QCoreApplication.translate("Texts", "not valid TOML (%1)")),
        (re.compile(r"this file is for a newer Deal Monitor \(format (\S+), this one reads "
                    r"up to (\S+)\)"),
         lambda: QCoreApplication.translate(
             "Texts", "this file is for a newer Deal Monitor (format %1, this one reads up to %2)")),
        (re.compile(r"(\S+) cannot hold the state DB: use SQLite \(sqlite:///state\.db\) or "
                    r"PostgreSQL \(postgresql\+psycopg://user@host/db\)"),
         lambda: QCoreApplication.translate(
             "Texts", "%1 cannot hold the state DB: use SQLite (sqlite:///state.db) or "
                      "PostgreSQL (postgresql+psycopg://user@host/db)")),
    )


#: The English problems of ``config.ConfigError`` that have a translation (exact text) ...
CONFIG_PROBLEMS: frozenset[str] = frozenset(_config_problem_table())
#: ... and the patterns of those that embed a value.
CONFIG_PROBLEM_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    pattern for pattern, _ in _config_problem_patterns()
)


def _config_problem(problem: str) -> str | None:
    table = _config_problem_table()
    if problem in table:
        return table[problem]
    for pattern, build in _config_problem_patterns():
        match = pattern.fullmatch(problem)
        if match:
            return _fill(build(), *match.groups())
    return None


def config_problem_text(key: str, problem: str) -> str:
    """A settings problem (``ConfigError.problem``) in the UI language; unknown ones unchanged.

    ``key`` is the setting it is about (``section.key``): the texts do not depend on it today,
    but a problem that reads the same for different keys may one day need it.
    """
    translated = _config_problem(problem)
    return problem if translated is None else translated


def sign_in_error(code: str) -> str:
    """How a browser sign-in failed (``SignInResult.error``), in words, with what to do."""
    texts = {
        "denied": QCoreApplication.translate(
            "Texts", "The portal did not allow the application: approve it on the portal's page, "
            "or ask a portal administrator."),
        "exchange_failed": QCoreApplication.translate(
            "Texts", "The portal did not accept the application's code: check the client ID and "
            "the client secret, then sign in again."),
        "timeout": QCoreApplication.translate(
            "Texts", "The browser did not come back in time: press the button and approve the "
            "application again."),
        "cancelled": QCoreApplication.translate("Texts", "The sign-in was cancelled."),
    }
    return texts.get(code, code)


def sign_in_waiting() -> str:
    """While the browser shows the portal's consent page."""
    return QCoreApplication.translate(
        "Texts", "Waiting for the browser: approve the application on the portal's page…")


def offline_bind_failed(error: str) -> str:
    """Signed in, but binding the offline events was refused (not an administrator)."""
    return QCoreApplication.translate(
        "Texts", "Signed in, but the offline events could not be bound (%1). A portal "
        "administrator must sign in; until then changes come with reconciliation.").replace(
            "%1", error_text(error))


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
    "CONFIG_PROBLEMS",
    "CONFIG_PROBLEM_PATTERNS",
    "clear_cache",
    "config_problem_text",
    "error_text",
    "event_label",
    "field_label",
    "history_kind_label",
    "history_text",
    "hint_text",
    "offline_bind_failed",
    "os_error_text",
    "retry_label",
    "sign_in_error",
    "sign_in_waiting",
    "source_label",
    "state_label",
    "status_label",
]
