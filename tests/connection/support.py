"""Shared checks for the connection tests: the target (plain SQL, through the harness) against
the simulator's raw deals."""

from __future__ import annotations

from decimal import Decimal

from tests.e2e.harness import wait_for


def mismatches(app, sim, ids) -> dict:
    """Deals whose target row differs from the portal's raw deal (empty: all match)."""
    rows = app.target_rows()
    bad = {}
    for deal_id in ids:
        raw, row = sim.portal.get_deal(deal_id), rows.get(deal_id)
        want = (raw["TITLE"], raw["STAGE_ID"], Decimal(raw["OPPORTUNITY"]))
        got = row and (row["title"], row["stage_id"], Decimal(str(row["amount"])))
        if got != want:
            bad[deal_id] = (got, want)
    return bad


def converged(app, sim, ids, timeout: float = 30) -> None:
    """Wait until every deal matches. The bound is >= 10x the poll intervals used here (plus a
    token refresh): it only detects a hang."""
    try:
        wait_for(lambda: not mismatches(app, sim, ids), timeout=timeout)
    except AssertionError:
        raise AssertionError(f"not converged: {mismatches(app, sim, ids)}\n"
                             f"{app.console()[-3000:]}") from None
