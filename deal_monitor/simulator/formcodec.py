"""The simulator's own form codec: PHP ``http_build_query`` out, PHP ``parse_str`` in.

The simulator plays the portal, so it must not share its wire format with the app: if both
sides took it from ``deal_monitor.bitrix.phpform``, a bug there would agree with itself. This
module is written from PHP's documented behaviour on top of :mod:`urllib.parse` and is
cross-checked against real PHP output in ``tests/simulator/test_formcodec.py``.

PHP facts it follows (php.net ``http_build_query``, ``urlencode``, ``parse_str``):

- encoding is ``urlencode`` (RFC 1738): letters, digits and ``-_.`` stay, a space is ``+``,
  every other byte is ``%XX`` (so ``~`` is ``%7E``, and the brackets of keys ``%5B``/``%5D``);
- nested arrays become ``outer[inner]`` keys, lists ``name[0]``, ``name[1]``...; ``null``
  values are left out; ``true``/``false`` are ``1``/``0``;
- parsing splits on ``&``, decodes ``+`` and ``%XX``, nests bracket keys, ``name[]`` appends
  the next integer index, and a key given twice keeps the last value; in the base name
  (before the first ``[``) dots and spaces become ``_``.

Unlike PHP, bytes that are not UTF-8 raise :class:`UnicodeDecodeError` (the simulator answers
400), and the number of pairs and the bracket depth are limited (:class:`FormLimitError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote_plus

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_BASE = re.compile(r"^([^\[]+)((?:\[[^\[\]]*\])*)$")


class FormLimitError(ValueError):
    """Too many pairs or brackets nested too deep."""


# -- encoding --------------------------------------------------------------------------------------
def _php_urlencode(text: str) -> str:
    # quote_plus keeps "~" (RFC 3986 unreserved); PHP's urlencode escapes it
    return quote_plus(text, safe="", encoding="utf-8").replace("~", "%7E")


def _scalar(value: Any) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def _pairs(value: Any, name: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        return [(name, _scalar(value))]
    out: list[tuple[str, str]] = []
    for key, item in items:
        out += _pairs(item, f"{name}[{key}]" if name else str(key))
    return out


def encode(data: Mapping[str, Any]) -> str:
    """``http_build_query($data)`` of a nested mapping."""
    return "&".join(f"{_php_urlencode(k)}={_php_urlencode(v)}" for k, v in _pairs(data, ""))


# -- decoding --------------------------------------------------------------------------------------
def _split_key(key: str) -> list[str]:
    match = _BASE.match(key)
    if not match:  # e.g. "a[b" or "a]": PHP keeps such a name whole (with the base mangling)
        return [key.replace(".", "_").replace(" ", "_")]
    base = match.group(1).replace(".", "_").replace(" ", "_")
    return [base, *_BRACKETS.findall(match.group(2))]


def _next_index(node: dict[str, Any]) -> str:
    numbers = [int(k) for k in node if k.lstrip("-").isdigit()]
    return str(max(numbers) + 1 if numbers else 0)


def decode(body: bytes | str, *, max_fields: int = 10_000, max_depth: int = 8) -> dict[str, Any]:
    """``parse_str($body)``: nested dicts of strings (lists stay dicts with "0", "1"... keys)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body  # strict: raises on junk
    if text.count("&") + 1 > max_fields:
        raise FormLimitError(f"more than {max_fields} fields")
    result: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict"):
        if not key:  # "=x": PHP drops a pair without a name
            continue
        path = _split_key(key)
        if len(path) - 1 > max_depth:
            raise FormLimitError("keys nested too deep")
        node = result
        for depth, part in enumerate(path):
            if part == "" and depth:
                part = _next_index(node)
            if depth == len(path) - 1:
                node[part] = value  # a key given twice: the last one wins, as in PHP
                break
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
    return result
