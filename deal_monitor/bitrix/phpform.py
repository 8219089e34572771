"""PHP-style form encoding (``http_build_query``) and a strict decoder for bracket keys.

Bitrix24 posts events as ``application/x-www-form-urlencoded`` with nested keys such as
``data[FIELDS][ID]`` and ``auth[application_token]``; ``batch`` commands carry their
parameters in the same notation. Python's ``parse_qs`` neither nests these keys nor rejects
malformed input, so this module does both, with limits that make hostile bodies cheap to
refuse: at most ``max_fields`` pairs, at most ``max_depth`` bracket levels, strict UTF-8,
strict percent-escapes, and no key given twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

FormValue = str | dict[str, "FormValue"]

_HEX = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")


class FormError(ValueError):
    """The body is not a well-formed, unambiguous form."""


def encode(params: Mapping[str, Any], prefix: str = "") -> str:
    """Encode nested mappings and lists the way PHP's ``http_build_query`` does.

    ``{"filter": {">ID": 5}, "select": ["ID", "TITLE"]}`` becomes
    ``filter%5B%3EID%5D=5&select%5B0%5D=ID&select%5B1%5D=TITLE``. ``None`` is sent as an
    empty string and booleans as ``1``/``0``, like PHP.
    """
    pairs: list[str] = []
    _encode_into(pairs, params, prefix)
    return "&".join(pairs)


def _encode_into(pairs: list[str], value: Any, key: str) -> None:
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            name = f"{key}[{sub_key}]" if key else str(sub_key)
            _encode_into(pairs, sub_value, name)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _encode_into(pairs, item, f"{key}[{index}]")
        return
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif value is None:
        text = ""
    else:
        text = str(value)
    pairs.append(f"{quote(key, safe='')}={quote(text, safe='')}")


def _unquote_strict(raw: bytes) -> str:
    """Percent-decode ``raw`` (``+`` is a space), refusing bad escapes and invalid UTF-8."""
    if _HEX.search(raw):
        raise FormError("malformed percent-escape")
    raw = raw.replace(b"+", b" ")
    out = bytearray()
    i = 0
    length = len(raw)
    while i < length:
        byte = raw[i]
        if byte == 0x25:  # '%'
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(byte)
            i += 1
    try:
        return out.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise FormError("body is not valid UTF-8") from exc


def decode(
    body: bytes | str,
    *,
    max_fields: int = 100,
    max_depth: int = 4,
) -> dict[str, FormValue]:
    """Decode a form body into nested dicts of strings; raise :class:`FormError` on anything odd.

    Only ``&`` separates pairs (as in Python >= 3.9.2). ``key[]`` appends with numeric keys,
    as PHP does. A key that is set twice, or that is both a value and a group, is refused:
    a body that says two things at once must not be read either way.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    result: dict[str, FormValue] = {}
    if not body:
        return result
    chunks = body.split(b"&")
    if len(chunks) > max_fields:
        raise FormError(f"more than {max_fields} fields")
    for chunk in chunks:
        if not chunk:
            continue
        raw_key, sep, raw_value = chunk.partition(b"=")
        key = _unquote_strict(raw_key)
        value = _unquote_strict(raw_value) if sep else ""
        _assign(result, key, value, max_depth)
    return result


def _assign(root: dict[str, FormValue], key: str, value: str, max_depth: int) -> None:
    match = _KEY.fullmatch(key)  # fullmatch: "$" would let a trailing newline through
    if not match:
        raise FormError("malformed key")
    path = [match.group(1), *_PART.findall(match.group(2))]
    if len(path) - 1 > max_depth:
        raise FormError("keys nested too deep")
    node: dict[str, FormValue] = root
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if part == "":
            part = str(sum(1 for k in node if k.isdigit()))
        existing = node.get(part)
        if last:
            if existing is not None:
                raise FormError("a field is given more than once")
            node[part] = value
            return
        if existing is None:
            child: dict[str, FormValue] = {}
            node[part] = child
            node = child
        elif isinstance(existing, dict):
            node = existing
        else:
            raise FormError("a field is both a value and a group")


def get_path(form: Mapping[str, FormValue], *path: str) -> str | None:
    """Return the string at ``form[path[0]][path[1]]...`` or None if absent or not a string."""
    node: Any = form
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, str) else None
