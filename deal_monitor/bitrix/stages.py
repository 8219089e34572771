"""Which stages are skipped, and the portal's pipelines and stages by name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class StageFilter:
    """Decides whether a stage is skipped.

    An entry with a pipeline prefix (``C1:NEW``) matches that stage only; an entry without
    one (``NEW``) matches the stage of that name in every pipeline (``NEW``, ``C1:NEW``, ...).
    The general pipeline's stages carry no prefix in Bitrix24, so ``C0:NEW`` names the bare
    ``NEW`` of pipeline 0 alone.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(e.strip() for e in entries if e.strip())
        self._exact = {e.removeprefix("C0:") for e in self.entries if ":" in e}
        self._any = {e for e in self.entries if ":" not in e}

    def skips(self, stage_id: str) -> bool:
        if stage_id in self._exact or stage_id in self._any:
            return True
        _, sep, bare = stage_id.partition(":")
        return bool(sep) and bare in self._any


@dataclass(frozen=True)
class Stage:
    id: str  # STATUS_ID, e.g. "C1:NEW"
    name: str
    color: str
    sort: int
    semantics: str  # process | success | failure | apology


@dataclass(frozen=True)
class Pipeline:
    id: int
    name: str
    stages: tuple[Stage, ...]


def entity_id(category_id: int) -> str:
    """``crm.status.list`` ENTITY_ID of a pipeline's stages (never ``DEAL_STAGE_0``)."""
    return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"


def parse_stage(row: dict) -> Stage:
    extra = row.get("EXTRA") if isinstance(row.get("EXTRA"), dict) else {}
    semantics = extra.get("SEMANTICS") or {"S": "success", "F": "failure"}.get(
        row.get("SEMANTICS") or "", "process"
    )
    try:
        sort = int(row.get("SORT") or 0)
    except (TypeError, ValueError):
        sort = 0
    return Stage(
        id=str(row.get("STATUS_ID") or ""),
        name=str(row.get("NAME") or row.get("STATUS_ID") or ""),
        color=str(row.get("COLOR") or extra.get("COLOR") or ""),
        sort=sort,
        semantics=str(semantics),
    )
