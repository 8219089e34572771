"""Timeline notes: what the worker did with a deal, as a code with parameters.

The code and parameters are what the GUI translates; the English text rendered from them is
what the headless log and the CLI show. Wording lives here only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import FieldChange

TEMPLATES = {
    "events": "{summary}",
    "fetched": "read: stage {stage}, modified {modified}",
    "read_lag": "not found yet; will read again",
    "read_failed": "read failed: {error}",
    "failed": "{error}",
    "skipped_stage": "skipped: stage {stage} is filtered out",
    "stale": "target already holds newer data; not written",
    "created": "created in the target",
    "updated": "updated in the target",
    "products": "product rows: {count}",
    "deleted_marked": "deleted in the portal; target row marked deleted",
    "deleted_never": "deleted in the portal; it was never in the target",
}


@dataclass(frozen=True, slots=True)
class Note:
    kind: str  # event | fetch | decision | write | error
    code: str
    params: tuple[tuple[str, str], ...] = ()
    changes: tuple[FieldChange, ...] = ()

    @property
    def text(self) -> str:
        return render(self.code, dict(self.params))


def render(code: str, params: dict[str, str]) -> str:
    template = TEMPLATES.get(code, "{code}")
    try:
        return template.format(code=code, **params)
    except (KeyError, IndexError):
        return code


def note(kind: str, code: str, changes: tuple[FieldChange, ...] = (), **params: object) -> Note:
    if code not in TEMPLATES:
        raise ValueError(f"unknown note code {code!r}")
    return Note(kind, code, tuple((k, str(v)) for k, v in params.items()), changes)
