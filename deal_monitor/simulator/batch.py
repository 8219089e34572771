"""``batch``: up to 50 sub-calls in one HTTP request, with ``$result[...]`` references.

Follows ``CRestProvider::methodsBatch`` and ``CRestUtil::ParseBatchQuery``: each command
is ``method?php-query``; after parsing, every parameter value is scanned for
``$result[key][...]`` (also ``$next``, ``$total``, ``$time``, ``$error``) and the path is
walked through the results so far. If the whole value is one reference it is replaced by
whatever the walk reached (a partial walk leaves the enclosing array, which then makes the
sub-call fail on validation); inside a longer string only a resolved scalar is substituted.
Commands past the 50th, and nested ``batch`` calls, fail individually; ``halt=1`` stops at
the first failing command. Empty sections are PHP empty arrays: ``[]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from . import formcodec
from .errors import RestError
from .formats import as_php_array
from .params import as_mapping, flag

MAX_COMMANDS = 50
_REF = re.compile(r"\$(result|next|total|time|error)([^\s]*)", re.IGNORECASE)
_PATH = re.compile(r"\[([^\]]+)\]")

# (method, params) -> {"result": .., "total"?: .., "next"?: .., "time": ..}; raises RestError
InnerCall = Callable[[str, dict[str, Any]], dict[str, Any]]


def _walk(sections: Mapping[str, dict[str, Any]], name: str, path: list[str]) -> Any:
    node: Any = sections[name.lower()]
    for key in path:
        if isinstance(node, Mapping) and node.get(key) is not None:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node) and node[int(key)] is not None:
            node = node[int(key)]
        else:
            break
    return node


def _substitute(value: str, sections: Mapping[str, dict[str, Any]]) -> Any:
    for match in list(_REF.finditer(value)):
        path = _PATH.findall(match.group(2))
        if not path:
            continue
        found = _walk(sections, match.group(1), path)
        if match.group(0) == value:
            return found
        if isinstance(found, bool):
            continue
        if isinstance(found, int | float):
            found = str(found)
        if not isinstance(found, str):
            continue
        value = value.replace(match.group(0), found)
    return value


def resolve(params: Any, sections: Mapping[str, dict[str, Any]]) -> Any:
    """Apply reference substitution to keys and values of a parsed command."""
    if isinstance(params, Mapping):
        resolved: dict[str, Any] = {}
        for key, item in params.items():
            new_key = _substitute(str(key), sections)
            resolved[str(new_key)] = resolve(item, sections)
        return resolved
    if isinstance(params, str):
        return _substitute(params, sections)
    return params


def parse_command(command: str) -> tuple[str, dict[str, Any]]:
    method, _, query = command.partition("?")
    params = formcodec.decode(query) if query else {}
    return method.strip(), params


def run_batch(params: Mapping[str, Any], inner: InnerCall) -> dict[str, Any]:
    """Execute a batch and return its ``result`` (the five sections)."""
    upper = {str(k).upper(): v for k, v in params.items()}
    halt = flag(upper.get("HALT"))
    commands = as_mapping(upper.get("CMD")) or {}
    sections: dict[str, dict[str, Any]] = {"result": {}, "next": {}, "total": {}, "time": {},
                                           "error": {}}
    for count, (key, command) in enumerate(commands.items()):
        if count >= MAX_COMMANDS:
            outcome: dict[str, Any] = {"error": {"error": "ERROR_BATCH_LENGTH_EXCEEDED",
                                                 "error_description": "Max batch length exceeded"}}
        elif not isinstance(command, str):
            continue
        else:
            outcome = _one(command, sections, inner)
        for section, value in outcome.items():
            sections[section][key] = value
        if "error" in outcome and halt:
            break
    return {
        "result": as_php_array(sections["result"]),
        "result_error": as_php_array(sections["error"]),
        "result_total": as_php_array(sections["total"]),
        "result_next": as_php_array(sections["next"]),
        "result_time": as_php_array(sections["time"]),
    }


def _one(command: str, sections: dict[str, dict[str, Any]], inner: InnerCall) -> dict[str, Any]:
    try:
        method, raw = parse_command(command)
    except (ValueError, UnicodeDecodeError) as exc:
        return {"error": {"error": "INVALID_REQUEST", "error_description": str(exc)}}
    if method.lower() == "batch":
        return {"error": {"error": "ERROR_BATCH_METHOD_NOT_ALLOWED",
                          "error_description": "Method is not allowed for batch usage"}}
    try:
        payload = inner(method.lower(), resolve(raw, sections))
    except RestError as exc:
        return {"error": {"error": exc.code, "error_description": exc.description}}
    outcome = {"result": payload["result"]}
    for section in ("total", "next"):
        if section in payload:
            outcome[section] = payload[section]
    outcome["time"] = payload["time"]
    return outcome
