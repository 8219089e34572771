"""The in-memory portal: deals, product rows, the portal clock and change events.

All state sits behind one re-entrant lock. Every change raises its event into the current
hit (see :mod:`.hits`); the Python API opens a hit per call as the portal UI would
(``user_id`` 1 by default), REST calls run inside the hit of their HTTP request.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from . import catalog, deals, productrows, query
from .faults import Faults
from .hits import Actor, Hit, HitScope


class DealNotFound(KeyError):
    """No deal with that ID."""


def _kind_of(field: str) -> str | None:
    return query.kind_for_type(catalog.field_type(field), catalog.NUMERIC_TYPES, catalog.DATE_TYPES)


class Portal:
    """Deals store of one simulated Bitrix24 portal (``sim.portal``)."""

    def __init__(self, tz: timezone, faults: Faults, on_hit_end: Callable[[Hit], None]) -> None:
        self.tz = tz
        self.faults = faults
        self.lock = threading.RLock()
        self.clock_offset = 0.0
        self._deals: dict[int, deals.Deal] = {}
        self._rows: dict[int, list[dict[str, Any]]] = {}
        self._hidden: dict[int, int] = {}
        self._next_id = 1
        self._next_row_id = 1
        self._ids: list[int] | None = None
        self.hits = HitScope(on_hit_end)

    # -- clock ----------------------------------------------------------------------------
    def now(self) -> datetime:
        """Portal time: aware, in the portal offset, shifted by ``clock_offset`` seconds."""
        # from the timestamp, not now + timedelta: aware arithmetic keeps the wall time, which
        # is an hour off across a DST change in a named zone
        return datetime.fromtimestamp(time.time() + self.clock_offset, self.tz)

    # -- Python API (the portal UI) -------------------------------------------------------------
    def add_deal(self, fields: Mapping[str, Any] | None = None, *, user_id: int = 1) -> int:
        """Create a deal as a user would; fires ONCRMDEALADD. Read-only fields may be given."""
        with self.hits.open(Actor.ui(user_id)) as hit:
            return self.create(_upper(fields or {}), hit.actor, trusted=True)

    def update_deal(self, deal_id: int, fields: Mapping[str, Any], *, user_id: int = 1) -> None:
        """Change a deal; bumps DATE_MODIFY and fires ONCRMDEALUPDATE."""
        with self.hits.open(Actor.ui(user_id)) as hit:
            self.change(deal_id, _upper(fields), hit.actor, trusted=True)

    def delete_deal(self, deal_id: int, *, user_id: int = 1) -> None:
        """Delete a deal; fires ONCRMDEALDELETE."""
        with self.hits.open(Actor.ui(user_id)) as hit:
            self.remove(deal_id, hit.actor)

    def move_deal_to_category(self, deal_id: int, category_id: int, stage_id: str | None = None,
                              *, user_id: int = 1) -> None:
        """Move to another pipeline: fires ONCRMDEALMOVETOCATEGORY, not ONCRMDEALUPDATE."""
        if category_id not in catalog.category_ids():
            raise ValueError(f"no pipeline {category_id}")
        with self.hits.open(Actor.ui(user_id)) as hit, self.lock:
            deal = self._require(deal_id)
            self._store(deals.move_category(deal, category_id, stage_id, now=self.now(),
                                            user_id=user_id, tz=self.tz))
            fresh = self._deals[deal_id]
            hit.add("ONCRMDEALMOVETOCATEGORY", {"FIELDS": {
                "ID": deal_id, "CATEGORY_ID": int(fresh["CATEGORY_ID"]),
                "STAGE_ID": fresh["STAGE_ID"]}})

    def set_product_rows(self, deal_id: int, rows: list[Mapping[str, Any]], *,
                         user_id: int = 1) -> None:
        with self.hits.open(Actor.ui(user_id)) as hit:
            self.replace_rows(deal_id, rows, hit.actor)

    def get_deal(self, deal_id: int) -> dict[str, Any] | None:
        """The deal exactly as ``crm.deal.get`` returns it, or None."""
        with self.lock:
            deal = self._deals.get(int(deal_id))
            return deals.render(deal) if deal else None

    def get_product_rows(self, deal_id: int) -> list[dict[str, Any]]:
        with self.lock:
            self._require(deal_id)
            return [dict(r) for r in self._rows.get(int(deal_id), [])]

    def deal_ids(self) -> list[int]:
        with self.lock:
            return list(self._deals)

    def __len__(self) -> int:
        with self.lock:
            return len(self._deals)

    def bulk_add(self, n: int, **defaults: Any) -> list[int]:
        """Seed ``n`` deals fast, without events (e.g. 100,000 for benchmarks)."""
        if n <= 0:
            return []
        with self.lock:
            template = deals.new_deal(0, _upper(defaults), now=self.now(), user_id=1, tz=self.tz,
                                      trusted=True)
            custom_title = "TITLE" in _upper(defaults)
            ids = list(range(self._next_id, self._next_id + n))
            for deal_id in ids:
                deal = dict(template)
                deal["ID"] = str(deal_id)
                deal["CONTACT_IDS"] = list(template["CONTACT_IDS"])
                if not custom_title:
                    deal["TITLE"] = f"Сделка #{deal_id}"
                self._deals[deal_id] = deal
            self._next_id += n
            self._ids = None
            return ids

    # -- operations shared with REST ----------------------------------------------------------
    def create(self, fields: dict[str, Any], actor: Actor, *, trusted: bool) -> int:
        with self.lock:
            deal_id = self._next_id
            self._next_id += 1
            deal = deals.new_deal(deal_id, fields, now=self.now(), user_id=max(actor.user_id, 1),
                                  tz=self.tz, trusted=trusted)
            self._store(deal)
            if self.faults.hide_new_deals_reads > 0:
                self._hidden[deal_id] = self.faults.hide_new_deals_reads
        self._emit("ONCRMDEALADD", deal_id)
        return deal_id

    def change(self, deal_id: int, fields: dict[str, Any], actor: Actor, *, trusted: bool) -> None:
        with self.lock:
            deal = self._require(deal_id)
            self._store(deals.update_deal(deal, fields, now=self.now(),
                                          user_id=max(actor.user_id, 1), tz=self.tz,
                                          trusted=trusted))
        self._emit("ONCRMDEALUPDATE", int(deal_id))

    def remove(self, deal_id: int, actor: Actor) -> None:
        with self.lock:
            self._require(deal_id)
            del self._deals[int(deal_id)]
            self._rows.pop(int(deal_id), None)
            self._hidden.pop(int(deal_id), None)
            self._ids = None
        self._emit("ONCRMDEALDELETE", int(deal_id))

    def replace_rows(self, deal_id: int, rows: list[Mapping[str, Any]], actor: Actor) -> None:
        with self.lock:
            deal = self._require(deal_id)
            built = []
            for index, row in enumerate(rows):
                built.append(productrows.build_row(self._next_row_id, int(deal_id), row,
                                                   (index + 1) * 10))
                self._next_row_id += 1
            self._rows[int(deal_id)] = built
            fields: dict[str, Any] = {}
            if deal["IS_MANUAL_OPPORTUNITY"] != "Y":
                fields["OPPORTUNITY"], fields["TAX_VALUE"] = deals.opportunity_from_rows(built)
            self._store(deals.update_deal(deal, fields, now=self.now(),
                                          user_id=max(actor.user_id, 1), tz=self.tz, trusted=True))
        self._emit("ONCRMDEALUPDATE", int(deal_id))

    def read_for_rest(self, deal_id: int) -> dict[str, Any] | None:
        """``crm.deal.get`` view, honouring the read-after-write lag fault."""
        with self.lock:
            left = self._hidden.get(deal_id, 0)
            if left > 0:
                if left == 1:
                    del self._hidden[deal_id]
                else:
                    self._hidden[deal_id] = left - 1
                return None
            deal = self._deals.get(deal_id)
            return deals.render(deal) if deal else None

    def exists(self, deal_id: int) -> bool:
        with self.lock:
            return int(deal_id) in self._deals

    def list_page(self, conditions: list[query.Condition], order: list[tuple[str, bool, str]],
                  start: int) -> query.Page:
        """Filter/order/page deals; uses the ID index when ordering by ID (or not at all)."""
        with self.lock:
            by_id = not order or (len(order) == 1 and order[0][0] == "ID")
            if by_id:
                descending = bool(order) and order[0][1]
                candidates = self._by_id(conditions, descending)
                return query.paginate(candidates, conditions, order, start, presorted=True)
            return query.paginate(self._deals.values(), conditions, order, start, presorted=False)

    # -- internals -----------------------------------------------------------------------------
    def _by_id(self, conditions: list[query.Condition], descending: bool) -> Iterator[deals.Deal]:
        ids = self._sorted_ids()
        lo, hi = 0, len(ids)
        for cond in conditions:
            if cond.field != "ID" or cond.empty or len(cond.values) != 1:
                continue
            bound = int(cond.values[0]) if cond.values[0] == int(cond.values[0]) else None
            if bound is None:
                continue
            if cond.op == ">":
                lo = max(lo, bisect.bisect_right(ids, bound))
            elif cond.op == ">=":
                lo = max(lo, bisect.bisect_left(ids, bound))
            elif cond.op == "<":
                hi = min(hi, bisect.bisect_left(ids, bound))
            elif cond.op == "<=":
                hi = min(hi, bisect.bisect_right(ids, bound))
            elif cond.op in {"=", "@"}:
                lo = max(lo, bisect.bisect_left(ids, bound))
                hi = min(hi, bisect.bisect_right(ids, bound))
        window = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        return (self._deals[ids[i]] for i in window)

    def _sorted_ids(self) -> list[int]:
        if self._ids is None:
            self._ids = list(self._deals)  # insertion order == ascending ids
        return self._ids

    def _require(self, deal_id: int) -> deals.Deal:
        deal = self._deals.get(int(deal_id))
        if deal is None:
            raise DealNotFound(deal_id)
        return deal

    def _store(self, deal: deals.Deal) -> None:
        deal_id = int(deal["ID"])
        if deal_id not in self._deals:
            self._ids = None
        self._deals[deal_id] = deal

    def _emit(self, event: str, deal_id: int) -> None:
        hit = self.hits.current()
        if hit is None:  # called outside any hit: make it its own
            with self.hits.open(Actor.ui()) as own:
                own.add(event, {"FIELDS": {"ID": deal_id}})
            return
        hit.add(event, {"FIELDS": {"ID": deal_id}})


def _upper(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).upper(): value for key, value in fields.items()}


kind_of = _kind_of
