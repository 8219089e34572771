"""Method dispatch: operating-limit checks, cost accounting and the ``time`` block.

Every response carries ``time`` (``start``, ``finish``, ``duration``, ``processing``,
``date_start``, ``date_finish``, ``operating_reset_at``, ``operating``); list methods get
``total`` and ``next`` beside ``result``. The outer ``batch`` is not charged to the operating
budget; each inner command is charged to its own method. Under a timed profile
(:mod:`.profile`) every call really takes its drawn server time, reports it as
``processing`` and is charged by it (unless ``method_costs`` names the method); a batch
takes the sum of its commands' time, at most the per-request wall limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any

from . import batch, errors, methods_crm, methods_event, methods_reference
from .formats import format_datetime, to_int
from .hits import Actor
from .limits import OperatingLimiter, OperatingState
from .params import Call, Listing
from .profile import DEFAULT, WALL_LIMIT, Draws
from .services import Services
from .stats import Stats

METHODS: dict[str, Callable[[Services, Call], Any]] = {
    **methods_crm.METHODS,
    **methods_reference.METHODS,
    **methods_event.METHODS,
}

DEFAULT_COSTS: dict[str, float] = {
    "crm.deal.list": 0.05,
    "crm.deal.get": 0.01,
    "crm.deal.add": 0.03,
    "crm.deal.update": 0.03,
    "crm.deal.delete": 0.02,
    "crm.deal.productrows.set": 0.03,
}
DEFAULT_COST = 0.01


class RestService:
    """Executes REST methods for the HTTP layer."""

    def __init__(self, services: Services, limiter: OperatingLimiter, stats: Stats,
                 costs: Mapping[str, float] | None, tz: tzinfo,
                 skew: Callable[[], float] = lambda: 0.0, draws: Draws | None = None) -> None:
        self.services = services
        self.skew = skew
        self.limiter = limiter
        self.stats = stats
        self.costs = {**DEFAULT_COSTS, **(costs or {})}
        self.explicit_costs = dict(costs or {})
        self.tz = tz
        self.draws = draws or Draws(DEFAULT)
        self._wall = threading.local()  # seconds a running batch may still spend

    def cost(self, method: str) -> float:
        return self.costs.get(method, DEFAULT_COST)

    def call(self, method: str, params: dict[str, Any], actor: Actor, auth_type: str) -> dict[str, Any]:
        """One top-level call (``batch`` included); raises RestError for error answers."""
        if method == "batch":
            return self._batch(params, actor, auth_type)
        return self._invoke(method, params, actor, auth_type)

    def _invoke(self, method: str, params: dict[str, Any], actor: Actor,
                auth_type: str) -> dict[str, Any]:
        started, perf = time.time(), time.perf_counter()
        self.stats.count_call(method)
        handler = METHODS.get(method)
        if handler is None:
            raise errors.method_not_found()
        key = (actor.auth_key, method)
        if self.limiter.blocked(key) is not None:
            self.stats.bump("refusals_429")
            raise errors.operation_time_limit()
        start = to_int(params.get("start")) if not isinstance(params.get("start"), dict) else 0
        call = Call(actor, auth_type, params, start or 0)
        timed = self.draws.profile.timed
        server = self.draws.server_time(method, call.start) if timed else 0.0
        processing_start = time.perf_counter()
        try:
            value = handler(self.services, call)
        except Exception:
            server = self.draws.server_time("") if timed else 0.0  # a refused call is cheap
            raise
        finally:
            if timed:
                server = self._spend(server, time.perf_counter() - processing_start)
            cost = server if timed and method not in self.explicit_costs else self.cost(method)
            state = self.limiter.charge(key, cost)
        payload: dict[str, Any] = {}
        if isinstance(value, Listing):
            payload["result"] = value.result
            if value.next is not None:
                payload["next"] = value.next
            if value.total is not None:
                payload["total"] = value.total
        else:
            payload["result"] = value
        processing = server if timed else time.perf_counter() - processing_start
        payload["time"] = self.time_block(started, perf, processing, state)
        return payload

    def _spend(self, server: float, spent: float) -> float:
        """Wait out the rest of a call's server time (capped by a batch's wall limit)."""
        left = getattr(self._wall, "left", None)
        if left is not None:
            server = min(server, max(0.0, left))
            self._wall.left = left - server
        if server > spent:
            time.sleep(server - spent)
        return max(server, spent)

    def _batch(self, params: dict[str, Any], actor: Actor, auth_type: str) -> dict[str, Any]:
        started, perf = time.time(), time.perf_counter()
        self.stats.bump("batch_requests")
        self.stats.count_call("batch")
        states: list[OperatingState] = []

        def inner(method: str, inner_params: dict[str, Any]) -> dict[str, Any]:
            payload = self._invoke(method, inner_params, actor, auth_type)
            states.append(self.limiter.peek((actor.auth_key, method)))
            return payload

        self._wall.left = WALL_LIMIT
        try:
            result = batch.run_batch(params, inner)
        finally:
            self._wall.left = None
        state = max(states, key=lambda s: s.operating) if states else self.limiter.peek(
            (actor.auth_key, "batch"))
        processing = time.perf_counter() - perf
        return {"result": result, "time": self.time_block(started, perf, processing, state)}

    def time_block(self, started: float, perf: float, processing: float,
                   state: OperatingState) -> dict[str, Any]:
        duration = time.perf_counter() - perf
        skew = self.skew()  # the portal's clock, as set by Portal.clock_offset
        started += skew
        finish = started + duration
        reset_at: float = state.reset_at + skew
        block: dict[str, Any] = {
            "start": round(started, 6),
            "finish": round(finish, 6),
            "duration": duration,
            "processing": processing,
            "date_start": format_datetime(datetime.fromtimestamp(started, self.tz), self.tz),
            "date_finish": format_datetime(datetime.fromtimestamp(finish, self.tz), self.tz),
            "operating_reset_at": int(reset_at) if self.limiter.window >= 60 else round(reset_at, 3),
            "operating": round(state.operating, 6) if state.operating else 0,
        }
        return block
