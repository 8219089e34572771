"""Reading REST parameters that arrive as PHP form arrays or as JSON.

A form body gives nested dicts of strings (lists become ``{"0": .., "1": ..}``); a JSON body
gives real lists, numbers and booleans. Methods read both through these helpers. Top-level
keys are matched case-insensitively, as the portal upper- or lower-cases them per method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .hits import Actor


def as_list(value: Any) -> list[Any]:
    """A PHP list (numeric-keyed dict), a JSON list, or a scalar -> list."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def as_mapping(value: Any) -> dict[str, Any] | None:
    """A dict (or a JSON list turned into a PHP array) or None when it is a scalar."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return {str(i): v for i, v in enumerate(value)}
    return None


def flag(value: Any, default: bool = False) -> bool:
    """PHP truthiness of a scalar parameter (``"0"``, ``""``, ``"N"``, ``"false"`` are false)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in {"", "0", "n", "false", "no"}


@dataclass
class Call:
    """One method invocation: who calls, how they authenticated, and the parameters."""

    actor: Actor
    auth_type: str  # "webhook" | "oauth"
    params: dict[str, Any]
    start: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.params:
            return self.params[name]
        lowered = name.lower()
        for key, value in self.params.items():
            if str(key).lower() == lowered:
                return value
        return default


@dataclass
class Listing:
    """A list-method result: the server moves ``total``/``next`` beside ``result``."""

    result: Any
    total: int | None
    next: int | None = None
