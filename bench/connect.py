"""The ways in, measured side by side: pull mode, offline events, and a public address.

Each mode gets a fresh portal (realistic profile) with ``CONNECT_DEALS`` deals and a fresh app
configured as that mode's user would configure it:

- ``pull_2s`` / ``pull_10s``: an inbound webhook only, ``sync.poll_seconds`` 2 or 10; the
  portal delivers no event to anyone;
- ``offline_2s``: an OAuth local app signed in (tokens as the keyring holds them), deal events
  bound as offline events, ``sync.offline_poll_seconds`` 2 (the default);
- ``push``: a public address, the outgoing webhook posting to the app's listener.

Then distinct deals change as a Poisson process (``connect_rate`` per second for
``connect_seconds``); freshness is the time from each change on the portal to the row's
``synced_at``. When every row holds its change, the app is left alone for
``connect_idle_seconds`` and the portal counts what it was asked: the idle cost of the way in.
Scheduled reconciliation and the deletion check are off here (as in every scenario): they cost
every mode the same (a reconciliation of a quiet portal is one list request every 5 minutes,
12 an hour; the deletion check ceil(N / 2,500) requests an hour).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from typing import Any

from deal_monitor.credentials import MemoryStore
from deal_monitor.sync.poller import OVERLAP_SECONDS

from .harness import (
    TargetReader,
    listener_url,
    monitor_settings,
    running_monitor,
    summary,
    synced_at_epoch,
    wait_for,
)
from .scenarios import SEED, Sizes, _settle, sim_options, workdir
from .simhost import simulator

MODES = ("pull_2s", "pull_10s", "offline_2s", "push")
CLIENT_ID, CLIENT_SECRET = "local.bench0001.connect", "bench-connect-secret"


def connect(sizes: Sizes) -> dict[str, Any]:
    """Every mode in turn; each returns freshness, loss and idle requests."""
    out: dict[str, Any] = {"rate": sizes.connect_rate, "seconds": sizes.connect_seconds,
                           "idle_seconds": sizes.connect_idle_seconds, "deals": sizes.connect_deals}
    for mode in sizes.connect_modes:
        if mode not in MODES:
            raise ValueError(f"unknown way in: {mode}")
        out[mode] = _run(mode, sizes)
    return out


def _settings(mode: str, info: dict[str, str], folder, tokens: dict[str, Any] | None):
    sync: dict[str, Any] = {}
    if mode.startswith("pull"):
        return monitor_settings(
            info, folder,
            portal={"application_token": "", "member_id": ""},
            sync={**sync, "poll_seconds": float(mode.removeprefix("pull_").removesuffix("s"))})
    if mode == "offline_2s":
        assert tokens is not None
        return monitor_settings(
            info, folder,
            portal={"webhook_url": "", "application_token": "", "member_id": "",
                    "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                    "portal_url": info["url"], "oauth_server": info["url"], "offline_events": True,
                    "allow_private_http": True},  # the simulator: plain http on 127.0.0.1
            listener={"enabled": False},
            sync={**sync, "offline_poll_seconds": 2.0})
    return monitor_settings(info, folder, sync=sync)


def _run(mode: str, sizes: Sizes) -> dict[str, Any]:
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir(f"connect-{mode}")
        try:
            tokens = None
            if mode == "offline_2s":
                issued = host.oauth_app(CLIENT_ID, CLIENT_SECRET)
                tokens = MemoryStore({"oauth_tokens": json.dumps({
                    "access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
                    "expires": time.time() + 3600, "member_id": info["member_id"]})})
            ids = list(host.bulk_add(sizes.connect_deals))
            host.set_delivery(mode == "push")
            # past the poll's overlap: the seeding is not a change the first poll lists again
            time.sleep(OVERLAP_SECONDS + 1.0)
            with ExitStack() as stack:
                monitor = stack.enter_context(running_monitor(_settings(mode, info, folder, tokens),
                                                              tokens=tokens))
                if mode == "offline_2s":
                    monitor.bind_handlers(offline=True)
                if mode == "push":
                    host.add_webhook(listener_url(monitor))
                _settled(monitor)
                return _measure(host, monitor, ids, sizes, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _settled(monitor) -> None:
    """The start-up backlog written and each pull source through one round: the changes
    measured meet an app at work, not one still starting."""
    wait_for(lambda: monitor.state.inbox_depth() == 0, 300)
    for source in (monitor.poller, monitor.offline):
        if source is not None:
            rounds = source.rounds
            wait_for(lambda source=source, rounds=rounds: source.rounds > rounds, 60)


def _measure(host, monitor, all_ids: list[int], sizes: Sizes, folder) -> dict[str, Any]:
    source = monitor.poller or monitor.offline
    interval = source.interval if source is not None else 0.0
    n = int(sizes.connect_rate * sizes.connect_seconds)
    ids = all_ids[:n]
    target = TargetReader(folder)
    host.reset_stats()
    changes = [(i, f"connect {i}") for i in ids]
    times = host.change_at_rate(changes, sizes.connect_rate, SEED)
    changed_at = dict(zip(ids, times, strict=True))
    final = dict(changes)
    settle_s = _settle(lambda: target.titles(ids) == final, 120)
    rows = target.rows(ids)
    current = {i for i in ids if i in rows and rows[i]["title"] == final[i]}
    lags = [(synced_at_epoch(rows[i]["synced_at"]) - changed_at[i]) * 1000.0 for i in sorted(current)]
    busy = host.stats()

    time.sleep(2.0)  # the last reads finish
    host.reset_stats()
    started = time.monotonic()
    time.sleep(sizes.connect_idle_seconds)
    window = time.monotonic() - started
    idle = host.stats()
    health = monitor.health()
    return {
        "changes": n, "ms": summary(lags), "lost": n - len(current), "lost_share": (n - len(current)) / n,
        "settle_s": settle_s, "portal_busy": busy,
        "requests_per_change": busy["http_requests"] / n,
        "idle_window_s": window, "idle_portal": idle,
        "idle_requests_per_hour": idle["http_requests"] * 3600.0 / window,
        "idle_requests_per_poll": idle["http_requests"] / (window / interval) if interval else None,
        "refusals_503": busy["refusals_503"] + idle["refusals_503"],
        "refusals_429": busy["refusals_429"] + idle["refusals_429"],
        "ready": bool(health.get("ready")),
    }
