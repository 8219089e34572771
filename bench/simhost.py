"""The portal simulator in a process of its own, driven through a multiprocessing manager.

A real portal is another machine: its CPU never competes with the app's. Running the
simulator inside the benchmark process would make the app and the portal share one GIL and
charge the portal's JSON rendering (2,500 deals per list batch) to the app, so the simulator
lives in a spawned process (one per benchmark run; every scenario gets a fresh portal in it). The benchmark drives it through
:class:`SimHost`, whose methods run inside that process (bursts of portal changes happen
there at full speed, not one proxy round trip at a time).
"""

from __future__ import annotations

import atexit
import multiprocessing
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from multiprocessing.managers import BaseManager
from typing import Any

STAGE = "EXECUTING"  # not in the default skip list ("NEW"), so every deal reaches the target


class SimHost:
    """Runs inside the manager process; every public method is callable through the proxy."""

    def __init__(self, **options: Any) -> None:
        from deal_monitor.simulator import PortalSimulator

        self.sim = PortalSimulator(**options).start(host="127.0.0.1", port=0)

    # -- identity ---------------------------------------------------------------------------
    def info(self) -> dict[str, str]:
        sim = self.sim
        return {
            "url": sim.url,
            "webhook_url": sim.webhook_url,
            "application_token": sim.application_token,
            "member_id": sim.member_id,
            "domain": sim.domain,
        }

    # -- portal changes -----------------------------------------------------------------------
    def bulk_add(self, n: int, stage: str = STAGE) -> list[int]:
        """Seed deals without events; returns their IDs."""
        return self.sim.portal.bulk_add(n, STAGE_ID=stage)

    def add_deals(self, titles: Sequence[str], stage: str = STAGE) -> list[int]:
        """Create deals as a user would (each fires ONCRMDEALADD)."""
        return [self.sim.portal.add_deal({"TITLE": t, "STAGE_ID": stage}) for t in titles]

    def update_titles(self, changes: Sequence[tuple[int, str]]) -> list[float]:
        """Change titles in this order as fast as possible (each fires ONCRMDEALUPDATE).

        Returns the wall-clock time (``time.time()``) of each change, when it was committed.
        """
        portal = self.sim.portal
        times = []
        for deal_id, title in changes:
            portal.update_deal(deal_id, {"TITLE": title})
            times.append(time.time())
        return times

    def change_at_rate(self, changes: Sequence[tuple[int, str]], rate: float, seed: int = 1) -> list[float]:
        """Change titles as users do: a Poisson process of ``rate`` changes per second.

        Returns the wall-clock time of each change (the moment freshness is measured from).
        """
        rng = random.Random(seed)
        portal = self.sim.portal
        due = time.monotonic()
        times = []
        for deal_id, title in changes:
            due += rng.expovariate(rate)
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            portal.update_deal(deal_id, {"TITLE": title})
            times.append(time.time())
        return times

    def update_deal(self, deal_id: int, fields: dict[str, Any]) -> None:
        self.sim.portal.update_deal(deal_id, fields)

    def titles(self, ids: Sequence[int]) -> dict[int, str | None]:
        portal = self.sim.portal
        out: dict[int, str | None] = {}
        for deal_id in ids:
            deal = portal.get_deal(deal_id)
            out[deal_id] = deal["TITLE"] if deal else None
        return out

    def deals(self, ids: Sequence[int]) -> dict[int, dict[str, Any] | None]:
        portal = self.sim.portal
        return {deal_id: portal.get_deal(deal_id) for deal_id in ids}

    def count(self) -> int:
        return len(self.sim.portal)

    # -- OAuth app ------------------------------------------------------------------------------
    def oauth_app(self, client_id: str, client_secret: str) -> dict[str, Any]:
        """Register a local app and sign it in; returns the token endpoint's answer."""
        self.sim.register_app(client_id, client_secret)
        return self.sim.issue_tokens(client_id)

    def offline_depth(self) -> int:
        """Rows waiting in the portal's offline-event queue."""
        return len(self.sim.offline)

    # -- event delivery -----------------------------------------------------------------------
    def add_webhook(self, url: str, events: Sequence[str] | None = None) -> int:
        if events is None:
            return self.sim.add_outgoing_webhook(url)
        return self.sim.add_outgoing_webhook(url, events=events)

    def remove_webhook(self, url: str) -> int:
        return self.sim.remove_outgoing_webhook(url)

    def set_delivery(self, enabled: bool) -> None:
        self.sim.delivery_enabled = enabled

    def wait_deliveries(self, timeout: float) -> bool:
        return self.sim.wait_deliveries(timeout)

    def delivery_summary(self) -> dict[str, int]:
        records = self.sim.deliveries
        ok = sum(1 for r in records if r.ok)
        late = sorted(r.at - r.queued_at for r in records if r.queued_at)
        return {"sent": len(records), "ok": ok, "failed": len(records) - ok,
                "duplicates": sum(1 for r in records if r.duplicate),
                "queue_delay_p50_s": late[len(late) // 2] if late else None,
                "queue_delay_max_s": late[-1] if late else None}

    def profile(self) -> dict[str, Any]:
        p = self.sim.profile
        return {"name": p.name, "seed": p.seed, "time_zone": str(getattr(self.sim.tz, "name", self.sim.tz)),
                "senders": p.senders, "delivery_delay_s": list(p.delivery_delay),
                "duplicate_share": p.duplicate_share, "list_page_s": list(p.list_latency),
                "method_latency_s": {k: list(v) for k, v in p.method_latency.items()},
                "other_methods_s": list(p.default_latency), "network_s": list(p.network),
                "offset_cost_s_per_row": p.offset_cost}

    def clear_deliveries(self) -> None:
        self.sim.clear_deliveries()

    # -- counters and limits --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        s = self.sim.stats
        return {
            "http_requests": s.http_requests,
            "batch_requests": s.batch_requests,
            "refusals_503": s.refusals_503,
            "refusals_429": s.refusals_429,
            "calls_by_method": dict(s.calls_by_method),
        }

    def reset_stats(self) -> None:
        self.sim.reset_stats()

    def reset_limits(self) -> None:
        self.sim.reset_limits()

    def stop(self) -> None:
        self.sim.stop()


class _Manager(BaseManager):
    pass


_Manager.register("SimHost", SimHost)


_manager: _Manager | None = None


def _shared_manager() -> _Manager:
    """One simulator process per benchmark run (spawning costs about a second each time)."""
    global _manager
    if _manager is None:
        _manager = _Manager(ctx=multiprocessing.get_context("spawn"))
        _manager.start()
        atexit.register(shutdown)
    return _manager


def shutdown() -> None:
    global _manager
    if _manager is not None:
        _manager.shutdown()
        _manager = None


@contextmanager
def simulator(**options: Any) -> Iterator[Any]:
    """A fresh simulator (new portal, limits, counters) in the simulator process."""
    host = _shared_manager().SimHost(**options)  # type: ignore[attr-defined]
    try:
        yield host
    finally:
        with suppress(Exception):  # the process may be gone already
            host.stop()
        del host
