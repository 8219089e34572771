"""The incremental change poll (pull mode): deals changed since a watermark, every few seconds.

With only an inbound webhook nothing tells the app that a deal changed, so it asks: one
``crm.deal.list`` with ``>DATE_MODIFY`` a little before the last listing began, on the portal's
own clock (the ``time`` block of the reply), never the local one. DATE_MODIFY has one-second
resolution, so the filter reaches ``overlap`` seconds back: a change saved in the same second
as the last listing is listed again, and the reconciler's "already seen at this version with
these fields" test keeps that from queuing anything twice. Unlike reconciliation it never
reaches ``reconcile_overlap_minutes`` back, so an idle portal costs one request per poll.

The listed deals go into the inbox through the reconciler (carrying the deal as read, so the
worker need not read it again): every source of work goes through the inbox.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from ..bitrix.deal import parse_datetime
from ..store.state import StateStore
from .pullloop import PullLoop
from .reconciler import WATERMARK_KEY as RECONCILE_WATERMARK
from .reconciler import Reconciler

log = logging.getLogger(__name__)

WATERMARK_KEY = "poll.watermark"
OVERLAP_SECONDS = 2.0


class ChangePoller(PullLoop):
    """A thread that lists changed deals every ``interval`` seconds (start()/stop())."""

    thread_name = "change-poller"
    metrics_kind = "poll"
    first_wait = True  # the start-up reconciliation lists first
    log = log

    def __init__(
        self,
        reconciler: Reconciler,
        state: StateStore,
        interval: float,
        overlap_seconds: float = OVERLAP_SECONDS,
    ) -> None:
        super().__init__(interval)
        self.reconciler = reconciler
        self.state = state
        self.overlap = timedelta(seconds=overlap_seconds)
        self.last_poll_at: datetime | None = None  # local time of the last successful poll
        self.polls = 0

    def step(self) -> bool:
        self.poll()
        return False

    def _since(self) -> datetime | None:
        """Where this poll starts: its own watermark, else the reconciliation's (the start-up
        reconciliation covers everything before it); None while neither exists yet."""
        for key in (WATERMARK_KEY, RECONCILE_WATERMARK):
            value = self.state.get_value(key)
            moment = parse_datetime(value) if value else None
            if moment is not None:
                return moment
        return None

    def poll(self) -> int:
        """One poll; returns how many deals went into the inbox."""
        since = self._since()
        if since is None:
            return 0  # the start-up reconciliation has not finished its first listing
        result = self.reconciler.run_since(since - self.overlap, job="poll")
        if result.watermark:
            # never move back: a reconciliation may have set a later one meanwhile
            current = parse_datetime(self.state.get_value(WATERMARK_KEY) or "")
            new = parse_datetime(result.watermark)
            if new is not None and (current is None or new > current):
                self.state.set_value(WATERMARK_KEY, result.watermark)
        self.last_poll_at = datetime.now(UTC)
        self.last_error = ""
        self.polls += 1
        return result.queued
