"""The dry run: what syncing some deals now would write, and why, without writing anything.

The deals are read from the portal in one batch (with their product rows when the mapping
writes them), rendered through the writer's mapping, and compared with what the target holds.
The writer may belong to settings not saved yet — the GUI's mapping page tries a mapping out
before the planner commits to it — so it is prepared with ``create=False``: no DDL, ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..bitrix.client import PRODUCTS_KEY, BitrixClient
from ..bitrix.deal import parse_deal
from ..bitrix.stages import StageFilter
from ..errors import BitrixError
from ..store.target import Preview, diff_rows

# what a sync would do with the deal
DECISIONS = ("insert", "update", "no_change", "keep_newer", "skip_stage", "deleted", "error")


@dataclass(frozen=True)
class DryRun:
    deal_id: int
    decision: str  # one of DECISIONS
    preview: Preview | None = None
    stage_id: str = ""
    problem: str = ""  # the portal's answer for "deleted" and "error"

    @property
    def refused(self) -> bool:
        """The table would refuse the row (a value too long, an empty required column)."""
        return self.preview is not None and any(p.error for p in self.preview.problems)


def decide(preview: Preview, skipped: bool, in_target: bool, row_key: str = "row_id") -> str:
    """The worker's decision for this deal, in the worker's order of checks (``row_key``:
    the product table's row-ID column)."""
    if skipped and not in_target:
        return "skip_stage"
    if preview.stale:
        return "keep_newer"
    if not preview.changes and not _products_change(preview, row_key):
        return "no_change"
    return "update" if preview.current is not None else "insert"


def _products_change(preview: Preview, row_key: str) -> bool:
    current = {r[row_key]: r for r in preview.current_products}
    new = {r[row_key]: r for r in preview.products}
    return set(current) != set(new) or any(diff_rows(current[k], row) for k, row in new.items())


def dry_run(client: BitrixClient, writer, stage_filter: StageFilter,
            deal_ids: Sequence[int]) -> list[DryRun]:
    """One DryRun per deal ID, in the given order (duplicates dropped)."""
    ids = list(dict.fromkeys(int(i) for i in deal_ids))
    if not ids:
        return []
    found, errors = client.get_deals(ids, with_products=writer.products is not None)
    in_target = writer.versions(ids)
    results = []
    for deal_id in ids:
        if deal_id in errors:
            error: BitrixError = errors[deal_id]
            decision = "deleted" if error.not_found else "error"
            results.append(DryRun(deal_id, decision, problem=error.description or error.code))
            continue
        if deal_id not in found:
            results.append(DryRun(deal_id, "error", problem="the portal sent no answer for it"))
            continue
        raw = dict(found[deal_id])
        products = raw.pop(PRODUCTS_KEY, None)
        deal = parse_deal(raw)
        preview = writer.preview(deal, products)
        row_key = writer.products.row_column if writer.products is not None else "row_id"
        decision = decide(preview, stage_filter.skips(deal.stage_id), deal_id in in_target, row_key)
        results.append(DryRun(deal_id, decision, preview, deal.stage_id))
    return results
