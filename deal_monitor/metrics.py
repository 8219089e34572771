"""Prometheus metrics: ``GET /metrics`` on the listener, for the allowed networks and loopback.

One registry per process. Counters the core already keeps (worker passes, reconciliation
runs, client retries and refusals, token refreshes) are read from the watched Monitor at scrape
time by :class:`MonitorCollector`, like the gauges (inbox depth, oldest pending age); the rest
is counted by one-line hooks (``rest_request``, ``event_accepted``, ``event_refused``,
``deals_committed``, ``poll_run``) in the code where it happens.

Several instances (say, sharing one PostgreSQL inbox) are each their own scrape target, so
each has its own series (Prometheus adds the ``instance`` label); ``deal_monitor_instance_info``
names the instance as the inbox leases do (host:pid). Inbox depth and oldest pending age are
properties of the shared inbox: every instance reports the same value, aggregate them with
``max``, never ``sum``. Counters are per process and start from zero at each start.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

PATH = "/metrics"
INSTANCE_ID = f"{socket.gethostname()[:24]}:{os.getpid()}"

registry = CollectorRegistry(auto_describe=True)

EVENTS_ACCEPTED = Counter(
    "deal_monitor_events_accepted", "Events committed to the inbox before the 200 reply",
    ["event"], registry=registry,
)
EVENTS_REFUSED = Counter(
    "deal_monitor_events_refused", "Requests refused by the listener, by HTTP status and reason",
    ["status", "reason"], registry=registry,
)
REST_REQUESTS = Counter(
    "deal_monitor_rest_requests", "HTTP requests to the portal's REST API by outcome",
    ["method", "outcome"], registry=registry,
)
DEALS_WRITTEN = Counter(
    "deal_monitor_deals_written", "Deals a pass committed, by what became of them",
    ["result"], registry=registry,
)
POLL_RUNS = Counter(
    "deal_monitor_poll_runs", "Pull runs (offline events, polling) that finished",
    ["kind"], registry=registry,
)
FRESHNESS = Histogram(
    "deal_monitor_freshness_seconds",
    "From the deal's change in the portal (DATE_MODIFY, portal clock) to its commit in the target",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
    registry=registry,
)

_KNOWN_OUTCOMES = {200: "200", 429: "429", 503: "503"}
_REASON_MAX = 48


def rest_request(method: str, status: int | None) -> None:
    """One HTTP request to the portal: its status (None when no answer came)."""
    REST_REQUESTS.labels(method or "?", _KNOWN_OUTCOMES.get(status or 0, "error")).inc()


def event_accepted(event: str) -> None:
    EVENTS_ACCEPTED.labels(event or "?").inc()


def event_refused(status: int, reason: str) -> None:
    """A refused request; the reason is cut at its first colon to keep the label set small."""
    EVENTS_REFUSED.labels(str(status), reason.split(":", 1)[0].strip()[:_REASON_MAX]).inc()


def poll_run(kind: str) -> None:
    POLL_RUNS.labels(kind).inc()


def deals_committed(outcomes: Sequence[Any], now: datetime | None = None) -> None:
    """After a pass committed: count each deal's result; a deal written to the target adds
    the time from its portal change to now to the freshness histogram."""
    now = now or datetime.now(UTC)
    for out in outcomes:
        wrote = any(getattr(n, "kind", "") == "write" for n in getattr(out, "history", ()))
        if getattr(out, "retry_delay", None) is not None:
            result = "retrying"
        else:
            status = getattr(out, "status", "")
            result = "written" if wrote else str(getattr(status, "value", status))
        DEALS_WRITTEN.labels(result).inc()
        view = getattr(out, "view", None)
        modified = getattr(view, "date_modify", None)
        if wrote and modified is not None:
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            FRESHNESS.observe(max(0.0, (now - modified).total_seconds()))


class MonitorCollector:
    """Reads the watched Monitor at scrape time (gauges, and counters it already keeps)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._monitor: Callable[[], Any] = lambda: None

    def watch(self, monitor: Any) -> None:
        with self._lock:
            self._monitor = weakref.ref(monitor)

    def describe(self) -> list:
        return []  # the families depend on what the Monitor runs; described at collect time

    def collect(self) -> Iterable:
        info = GaugeMetricFamily("deal_monitor_instance_info", "This instance (host:pid)",
                                 labels=["instance_id"])
        info.add_metric([INSTANCE_ID], 1)
        yield info
        with self._lock:
            monitor = self._monitor()
        if monitor is None:
            return
        try:
            yield from _monitor_families(monitor)
        except Exception:  # a scrape must not fail because the state DB is down
            log.warning("metrics: could not read the monitor", exc_info=True)


def _monitor_families(monitor: Any) -> Iterable:
    state = monitor.state
    if state is not None:
        yield GaugeMetricFamily("deal_monitor_inbox_depth", "Queued inbox rows (shared inbox: "
                                "same for every instance)", value=state.inbox_depth())
        yield GaugeMetricFamily("deal_monitor_inbox_failed", "Inbox rows that failed for good",
                                value=state.failed_count())
        age = monitor._oldest_pending_age()
        yield GaugeMetricFamily("deal_monitor_oldest_pending_age_seconds",
                                "How long the oldest queued event has waited (0: none)",
                                value=age or 0.0)
    counters = {
        "deal_monitor_passes": ("Worker passes", getattr(monitor.worker, "passes", None)),
        "deal_monitor_reconcile_runs": ("Reconciliation runs",
                                        getattr(monitor.scheduler, "runs", None)),
        "deal_monitor_rest_retries": ("REST calls retried",
                                      getattr(getattr(monitor.client, "stats", None), "retries", None)),
        "deal_monitor_rest_refusals": ("Portal refusals (QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT)",
                                       getattr(getattr(monitor.client, "stats", None), "refusals", None)),
        "deal_monitor_token_refreshes": ("OAuth access-token refreshes",
                                         getattr(monitor.oauth, "refreshes", 0)),
    }
    for name, (text, value) in counters.items():
        if value is not None:
            yield CounterMetricFamily(name, text, value=value)
    status = monitor.status()
    yield GaugeMetricFamily("deal_monitor_listening", "1 when the listener is up",
                            value=1 if status.listening else 0)
    yield GaugeMetricFamily("deal_monitor_paused", "1 when processing is held",
                            value=1 if status.paused else 0)


collector = MonitorCollector()
registry.register(collector)


def watch(monitor: Any) -> None:
    """Report this Monitor's gauges (the latest one started in the process)."""
    collector.watch(monitor)


def allowed(remote: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Loopback always; otherwise only a sender inside the listener's allowed networks."""
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return address.is_loopback or any(address in net for net in networks)


def serve(environ: dict, start_response: Callable, networks: Sequence = ()) -> list[bytes]:
    """The WSGI answer for ``/metrics`` (the listener routes the path here)."""
    if not allowed(environ.get("REMOTE_ADDR") or "", networks):
        return _reply(start_response, "403 Forbidden", b"forbidden", "text/plain; charset=utf-8")
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return _reply(start_response, "405 Method Not Allowed", b"use GET",
                      "text/plain; charset=utf-8")
    return _reply(start_response, "200 OK", generate_latest(registry), CONTENT_TYPE_LATEST)


def _reply(start_response: Callable, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


__all__ = ["PATH", "deals_committed", "event_accepted", "event_refused", "poll_run",
           "rest_request", "serve", "watch"]
