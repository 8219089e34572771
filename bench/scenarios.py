"""The measurements. Each scenario takes its sizes, returns plain figures, and cleans up.

Every scenario starts a fresh simulator (its own process, fresh limits and counters) and a
fresh app with an empty data folder, so no scenario inherits another's backlog or budget.
"""

from __future__ import annotations

import math
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from waitress import wasyncore
from waitress.server import create_server

from . import desktop, loadgen
from .baseline import SeedServer, corrupted_rows, deal_name
from .harness import (
    Stopwatch,
    TargetReader,
    listener_url,
    monitor_settings,
    running_monitor,
    summary,
    synced_at_epoch,
    wait_for,
)
from .simhost import simulator

PLAN = "standard"
BURST, DRAIN = 50.0, 2.0  # the standard plan's bucket
OPERATING_LIMIT = 480.0  # seconds of method time per window
OPERATING_WINDOW = 600.0  # seconds (ten one-minute slots, sliding)
PROFILE = "realistic"  # deal_monitor/simulator/profile.py
SEED = 13
PAGE = 50
BATCH = 50
DEALS_PER_REQUEST = PAGE * BATCH  # 2,500


def _mean_skewed(span: tuple[float, float]) -> float:
    """Mean of the profile's triangular draw (mode at 30 % of the span)."""
    low, high = span
    return (low + high + low + 0.3 * (high - low)) / 3


@dataclass(frozen=True)
class Sizes:
    intake_rate: float = 200.0  # offered events/s
    intake_seconds: float = 10.0  # per trial
    intake_trials: int = 3
    saturate_seconds: float = 20.0  # the seed's steady state is read from the second half
    intake_deals: int = 2000
    fresh_rate: float = 3.0  # portal changes per second (Poisson): users at work
    fresh_seconds: float = 60.0
    storm: int = 1000  # changes at once (a robot's mass update)
    distinct: int = 1000
    bursty_deals: int = 50
    bursty_updates: int = 20
    connect_rate: float = 1.0  # changes per second while the ways in are compared
    connect_seconds: float = 120.0
    connect_idle_seconds: float = 180.0
    connect_deals: int = 1000
    connect_modes: tuple[str, ...] = ("pull_2s", "pull_10s", "offline_2s", "push")
    resync_small: int = 10_000
    resync_large: int = 100_000
    desktop: bool = True


FULL = Sizes()
QUICK = Sizes(
    intake_seconds=3.0, intake_trials=1, saturate_seconds=4.0, intake_deals=500, fresh_seconds=5.0,
    storm=40, distinct=100, bursty_deals=10, bursty_updates=5, resync_small=300, resync_large=1_000,
    connect_seconds=4.0, connect_idle_seconds=6.0, connect_deals=50,
    connect_modes=("pull_2s", "offline_2s"),  # the other two take the same code paths
)


def size_name(n: int | None) -> str:
    """``10000`` -> ``10k``; the figures of a run are stored under the sizes it ran."""
    if not n:
        return "none"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def sim_options(**extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "plan": PLAN, "rate_limit": True, "operating_limit": OPERATING_LIMIT,
        "operating_window": OPERATING_WINDOW, "profile": PROFILE, "seed": SEED,
    }
    options.update(extra)
    return options


def workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))


def identity(info: dict[str, str]) -> loadgen.Identity:
    return loadgen.Identity(info["application_token"], info["member_id"], info["domain"])


def _load(result: loadgen.LoadResult) -> dict[str, Any]:
    lat = summary(result.latency_ms)
    return {
        "sent": result.sent, "ok": result.ok, "errors": result.errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "seconds": result.elapsed, "ok_per_s": result.ok / result.elapsed,
        "offered_per_s": result.sent / result.elapsed,
        "ack_ms": lat, "late_send_ms_max": result.late_ms_max,
    }


# -- physical floors --------------------------------------------------------------------------
class FloorApp:
    """The least a durable ack can cost on this stack: one INSERT + fsync'd commit, nothing else.

    No parsing, no checks: the raw body goes into a WAL, ``synchronous=FULL`` SQLite table on
    the same file system, one connection per waitress thread, then 200.
    """

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.local = threading.local()
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, body BLOB)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self.local.conn = conn
        return conn

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO inbox (body) VALUES (?)", (body,))
        conn.execute("COMMIT")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"OK"]


@contextmanager
def floor_server(path: Path) -> Iterator[str]:
    """waitress with the listener's own options, serving :class:`FloorApp`."""
    server = create_server(
        FloorApp(path), host="127.0.0.1", port=0, threads=4, connection_limit=100,
        channel_timeout=20, asyncore_use_poll=True, channel_request_lookahead=0,
    )
    thread = threading.Thread(target=server.run, name="floor", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}/floor"
    finally:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5)
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=5)


def fsync_floor(seconds: float = 2.0) -> dict[str, float]:
    """Single-row commits per second into a WAL, synchronous=FULL file (no HTTP)."""
    folder = workdir("fsync")
    try:
        conn = sqlite3.connect(str(folder / "f.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        body = b"x" * 500
        n, watch = 0, Stopwatch()
        while watch.s < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (body) VALUES (?)", (body,))
            conn.execute("COMMIT")
            n += 1
        elapsed = watch.s
        conn.close()
        return {"commits_per_s": n / elapsed, "commit_ms": elapsed / n * 1000.0}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- 1. intake ------------------------------------------------------------------------------------
def intake(sizes: Sizes) -> dict[str, Any]:
    """Sustained intake (closed loop, 8 senders) and ack latency at a fixed offered load.

    The fixed load runs ``intake_trials`` times, each with a fresh app, portal and data
    folder; the trial with the median p99 is the figure (all trials are kept), so one burst
    of foreign load on the machine does not decide it. The seed reads the portal inside
    every request, so its closed-loop figure is given twice: its own speed on a portal that
    never refuses (``baseline_own``), and what it keeps up under the bucket once the burst
    allowance is spent (the second half of the run: the drain rate, whatever the run length).
    """
    out: dict[str, Any] = {"offered_rate": sizes.intake_rate, "seconds": sizes.intake_seconds,
                           "trials": sizes.intake_trials, "saturate_seconds": sizes.saturate_seconds,
                           "senders_closed_loop": 8, "senders_open_loop": 16,
                           "deals_cycled": sizes.intake_deals}
    out["fsync_floor"] = fsync_floor(1.0 if sizes.intake_seconds < 5 else 2.0)
    for who in ("floor", "monitor", "baseline"):
        out[f"{who}_saturate"] = _intake_run(who, sizes, "saturate")
        trials = [_intake_run(who, sizes, "fixed") for _ in range(sizes.intake_trials)]
        ranked = sorted(trials, key=lambda t: t["ack_ms"]["p99"])
        out[f"{who}_fixed"] = {**ranked[len(ranked) // 2], "trial_p99s": [t["ack_ms"]["p99"] for t in trials]}
    out["baseline_own_saturate"] = _intake_run("baseline", sizes, "saturate", rate_limit=False)
    return out


def _second_half_rate(result: loadgen.LoadResult, seconds: float) -> float:
    half = seconds / 2
    return sum(1 for t in result.ok_at if half <= t <= seconds) / half


def _intake_run(who: str, sizes: Sizes, mode: str, rate_limit: bool = True) -> dict[str, Any]:
    folder = workdir(f"intake-{who}")
    try:
        if who == "floor":
            with floor_server(folder / "floor.db") as url:
                ident = loadgen.Identity("t" * 32, "m" * 32, "floor.invalid")
                return _load(_drive(url, ident, [1], sizes, mode))
        with simulator(**sim_options(rate_limit=rate_limit)) as host:
            info = host.info()
            if who == "monitor":
                with running_monitor(monitor_settings(info, folder)) as monitor:
                    ids = host.bulk_add(sizes.intake_deals)
                    host.reset_stats()
                    result = _drive(listener_url(monitor), identity(info), ids, sizes, mode)
                    depth = monitor.status().inbox_depth
            else:
                with SeedServer(info["webhook_url"]) as seed:
                    ids = host.bulk_add(sizes.intake_deals)
                    host.reset_stats()
                    result = _drive(seed.url, identity(info), ids, sizes, mode)
                    depth = 0
            figures = _load(result)
            figures["portal"] = host.stats()
            figures["inbox_depth_after"] = depth
            figures["rate_limit"] = rate_limit
            if mode == "saturate":
                figures["ok_per_s_second_half"] = _second_half_rate(result, sizes.saturate_seconds)
            return figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _drive(url: str, ident: loadgen.Identity, ids: list[int], sizes: Sizes, mode: str):
    if mode == "saturate":
        return loadgen.run_in_process(url, ident, ids, rate=None, duration=sizes.saturate_seconds,
                                      threads=8)
    return loadgen.run_in_process(url, ident, ids, rate=sizes.intake_rate,
                                  duration=sizes.intake_seconds, threads=16)


# -- 2. freshness -----------------------------------------------------------------------------------
def same_width_ids(host, n: int) -> list[int]:
    """Seed deals (no events) and return n IDs of one digit count: the seed's
    ``LIKE 'Сделка №<id>%'`` then never matches another deal's row, so its freshness is not
    mixed up with its corruption (measured on its own in the last scenario)."""
    first = 10 ** len(str(n))
    host.bulk_add(first + n - 1)
    return list(range(first, first + n))


def freshness(sizes: Sizes) -> dict[str, Any]:
    """Portal change -> row in the target, through the portal's real (delayed) delivery.

    ``steady``: distinct deals changed one by one as a Poisson process at ``fresh_rate`` per
    second; ``storm``: ``storm`` distinct deals changed back to back. Freshness is measured
    from the moment of each change on the portal (not from the POST, which leaves the portal
    0.1-3 s later) to the row's ``synced_at`` for the app (stamped just before its commit)
    and to the seed's commit. A deal whose row does not hold its changed title when
    everything has settled is lost; the share is counted, not assumed.
    """
    out: dict[str, Any] = {"rate": sizes.fresh_rate, "seconds": sizes.fresh_seconds, "storm": sizes.storm}
    for mode in ("steady", "storm"):
        n = int(sizes.fresh_rate * sizes.fresh_seconds) if mode == "steady" else sizes.storm
        out[f"monitor_{mode}"] = _fresh(n, mode, sizes, seed_app=False)
        out[f"baseline_{mode}"] = _fresh(n, mode, sizes, seed_app=True)
    return out


def _fresh(n: int, mode: str, sizes: Sizes, seed_app: bool) -> dict[str, Any]:
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("fresh")
        try:
            with ExitStack() as stack:
                if seed_app:
                    seed = stack.enter_context(SeedServer(info["webhook_url"]))
                    url = seed.url
                else:
                    monitor = stack.enter_context(running_monitor(monitor_settings(info, folder)))
                    url = listener_url(monitor)
                ids = same_width_ids(host, n)
                host.add_webhook(url)
                host.reset_stats()
                changes = [(i, f"fresh {i}") for i in ids]
                if mode == "steady":
                    times = host.change_at_rate(changes, sizes.fresh_rate, SEED)
                else:
                    times = host.update_titles(changes)
                changed_at = dict(zip(ids, times, strict=True))
                host.wait_deliveries(120)
                delivered = host.delivery_summary()
                final = dict(changes)
                if seed_app:
                    settle_s = _settle(lambda: _seed_current(seed, final) == len(final), 120)
                    names = {r[1] for r in seed.rows()}
                    current = {i for i in ids if deal_name(i, final[i]) in names}
                    arrived = {i: seed.app.written[(i, final[i])] for i in current}
                else:
                    target = TargetReader(folder)
                    settle_s = _settle(lambda: target.titles(ids) == final, 120 + n / 5)
                    rows = target.rows(ids)
                    current = {i for i in ids if i in rows and rows[i]["title"] == final[i]}
                    arrived = {i: synced_at_epoch(rows[i]["synced_at"]) for i in current}
                lags = [(arrived[i] - changed_at[i]) * 1000.0 for i in sorted(arrived)]
                stats = host.stats()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return {"changes": n, "ms": summary(lags), "lost": n - len(current), "lost_share": (n - len(current)) / n,
            "settle_s": settle_s, "delivered": delivered, "portal": stats,
            "refusals_503": stats["refusals_503"], "refusals_429": stats["refusals_429"]}


def _settle(done, timeout: float) -> float | None:
    """Seconds until ``done()``; None when it was not done within ``timeout`` (counted later)."""
    watch = Stopwatch()
    with suppress(TimeoutError):
        wait_for(done, timeout, interval=0.25)
        return watch.s
    return None


def _seed_current(seed: SeedServer, final: dict[int, str]) -> int:
    names = {r[1] for r in seed.rows()}
    return sum(1 for i, t in final.items() if deal_name(i, t) in names)


# -- 3. portal cost -----------------------------------------------------------------------------------
def portal_cost(sizes: Sizes) -> dict[str, Any]:
    """REST requests per event for a burst of distinct deals and for rapid repeated updates.

    Events travel the real way: portal change -> the simulator's delivery (delayed,
    reordered, sometimes duplicated) -> handler.
    """
    distinct_ids = list(range(1, sizes.distinct + 1))
    distinct = [(i, f"burst {i}") for i in distinct_ids]
    bursty_ids = list(range(1, sizes.bursty_deals + 1))
    bursty = [(i, f"rapid {r} {i}") for r in range(sizes.bursty_updates) for i in bursty_ids]
    out: dict[str, Any] = {"distinct_deals": sizes.distinct, "bursty_deals": sizes.bursty_deals,
                           "bursty_updates_each": sizes.bursty_updates}
    for name, changes, seeded in (("distinct", distinct, sizes.distinct),
                                  ("bursty", bursty, sizes.bursty_deals)):
        final = dict(changes)  # deal -> its last title
        out[f"monitor_{name}"] = _cost_monitor(changes, final, seeded)
        out[f"baseline_{name}"] = _cost_seed(changes, final, seeded)
    return out


def _cost_monitor(changes, final: dict[int, str], seeded: int) -> dict[str, Any]:
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("cost")
        try:
            with running_monitor(monitor_settings(info, folder)) as monitor:
                host.bulk_add(seeded)
                host.add_webhook(listener_url(monitor))
                host.reset_stats()
                watch = Stopwatch()
                host.update_titles(changes)
                host.wait_deliveries(300)
                delivered = host.delivery_summary()
                target = TargetReader(folder)
                ids = list(final)
                _settle(lambda: target.titles(ids) == final, 120 + len(ids) / 5)
                elapsed = watch.s
                titles = target.titles(ids)
                stats = host.stats()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    events = len(changes)
    current = sum(1 for i, t in final.items() if titles.get(i) == t)
    return {"events": events, "delivered": delivered, "seconds_to_target": elapsed,
            "requests": stats["http_requests"], "requests_per_event": stats["http_requests"] / events,
            "refusals_503": stats["refusals_503"], "refusals_429": stats["refusals_429"],
            "portal": stats, "deals": len(final), "deals_current_in_target": current,
            "all_final": current == len(final)}


def _cost_seed(changes, final: dict[int, str], seeded: int) -> dict[str, Any]:
    with simulator(**sim_options()) as host:
        info = host.info()
        with SeedServer(info["webhook_url"]) as seed:
            host.bulk_add(seeded)
            host.add_webhook(seed.url)
            host.reset_stats()
            watch = Stopwatch()
            host.update_titles(changes)
            host.wait_deliveries(600)
            elapsed = watch.s
            delivered = host.delivery_summary()
            stats = host.stats()
            current = _seed_current(seed, final)
    events = len(changes)
    return {"events": events, "delivered": delivered, "seconds": elapsed,
            "requests": stats["http_requests"], "requests_per_event": stats["http_requests"] / events,
            "refusals_503": stats["refusals_503"], "refusals_429": stats["refusals_429"],
            "answered_500": delivered["failed"], "deals_current_in_target": current,
            "deals": len(final), "all_final": current == len(final), "portal": stats}


# -- 4. full resync ---------------------------------------------------------------------------------
def resync_model(n: int, profile: dict[str, Any]) -> dict[str, Any]:
    """The least time the limits and the per-page latency allow for n deals, on paper.

    Keyset paging chains the pages (each page's filter is the last ID of the one before), so
    pages run one after another: P pages of the profile's mean list-page time, plus one
    network round trip per request. The operating budget is charged by that same server time:
    if P pages need more than one window's limit, the listing stops once the limit is spent
    and goes on when the first slot slides out (window - limit seconds later); from then on
    slots slide out as fast as a sequential listing fills new ones. Bucket wait =
    max(0, (requests - burst) / drain).
    """
    pages = math.ceil(n / PAGE)
    requests_ = math.ceil(n / DEALS_PER_REQUEST)
    page_s = _mean_skewed(tuple(profile["list_page_s"]))
    net_s = sum(profile["network_s"]) / 2
    budget_needed = pages * page_s
    budget_wait = (OPERATING_WINDOW - OPERATING_LIMIT) if budget_needed > OPERATING_LIMIT else 0.0
    bucket_s = max(0.0, (requests_ - BURST) / DRAIN)
    latency_s = pages * page_s + requests_ * net_s
    return {
        "deals": n, "pages": pages, "fewest_requests": requests_, "mean_page_s": page_s,
        "budget_needed_s": budget_needed, "budget_wait_s": budget_wait, "bucket_bound_s": bucket_s,
        "latency_s": latency_s, "model_s": max(latency_s + budget_wait, bucket_s),
    }


def fetch_floor(webhook_url: str, n: int) -> dict[str, Any]:
    """A bare client listing n deals in the fewest requests: 50 chained pages per batch,
    same ``select`` as the product, JSON decoded, nothing else done with the rows. It waits
    out a 503 (0.5 s) and a 429 (until ``operating_reset_at``) and goes on from the last ID."""
    from deal_monitor.bitrix import phpform

    session = requests.Session()
    url = webhook_url.rstrip("/") + "/batch.json"
    base = {"order": {"ID": "ASC"}, "select": ["*", "UF_*"], "start": -1}
    last, got, req, waited = 0, 0, 0, 0.0
    rows: list[dict] = []
    sample: list[dict] = []
    watch = Stopwatch()
    while got < n:
        cmd = {}
        for k in range(min(BATCH, math.ceil((n - got) / PAGE))):  # no page past the n-th deal
            ref = last if k == 0 else f"$result[p{k - 1}][{PAGE - 1}][ID]"
            cmd[f"p{k}"] = "crm.deal.list?" + phpform.encode({**base, "filter": {">ID": ref}})
        reply = session.post(url, json={"halt": 0, "cmd": cmd}, timeout=120)
        req += 1
        if reply.status_code == 503:
            time.sleep(0.5)
            waited += 0.5
            continue
        body = reply.json()
        pages = body["result"]["result"]
        pages = pages if isinstance(pages, dict) else {f"p{k}": v for k, v in enumerate(pages)}
        rows = [row for k in range(len(cmd)) for row in (pages.get(f"p{k}") or [])]
        errors = body["result"].get("result_error") or {}
        errors = errors.values() if isinstance(errors, dict) else errors
        if rows:
            got += len(rows)
            last = int(rows[-1]["ID"])
            sample = sample or rows[:1]
        if any(e.get("error") == "OPERATION_TIME_LIMIT" for e in errors):
            # the budget ran out part-way: wait for the oldest slot to slide out
            pause = max(0.0, float(body["time"].get("operating_reset_at", time.time() + 1)) - time.time())
            time.sleep(pause + 0.5)
            waited += pause + 0.5
            continue
        if len(rows) < PAGE * len(cmd):
            break
    seconds = watch.s
    session.close()
    return {"seconds": seconds, "requests": req, "deals": got, "waited_s": waited, "sample_row": sample}


def store_floor(n: int, row: dict[str, Any] | None) -> float:
    """n rows of the target's shape in one ``executemany`` (WAL, synchronous=NORMAL, as the target)."""
    folder = workdir("store")
    try:
        conn = sqlite3.connect(str(folder / "t.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE deal (bitrix_id INTEGER PRIMARY KEY, title TEXT, stage_id TEXT, category_id INT,"
            " amount TEXT, currency_id TEXT, close_date DATE, comments TEXT, date_modify DATETIME,"
            " deleted BOOL, synced_at DATETIME)"
        )
        sample = row or {}
        values = [
            (i, sample.get("TITLE", "x"), sample.get("STAGE_ID", "S"), 0, sample.get("OPPORTUNITY", "0"),
             sample.get("CURRENCY_ID", "RUB"), None, sample.get("COMMENTS") or "", "2026-01-01 00:00:00", 0,
             "2026-01-01 00:00:00")
            for i in range(1, n + 1)
        ]
        watch = Stopwatch()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO deal VALUES (?,?,?,?,?,?,?,?,?,?,?)", values)
        conn.execute("COMMIT")
        seconds = watch.s
        conn.close()
        return seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def resync(n: int, with_desktop: bool = False) -> dict[str, Any]:
    """``Monitor.resync_all()`` from an empty target until the target holds all n deals.

    The app starts against an empty portal (its start-up reconciliation lists nothing); then
    n deals appear in the portal without events, the counters and limits are reset, and the
    resync runs. Afterwards, with the same simulator and fresh limits, the bare client lists
    the same deals (the fetch floor) and the store floor is measured.
    """
    out: dict[str, Any] = {"deals": n}
    with simulator(**sim_options()) as host:
        info = host.info()
        profile = host.profile()
        folder = workdir("resync")
        try:
            with running_monitor(monitor_settings(info, folder, listener={"enabled": False})) as monitor:
                host.bulk_add(n)
                host.reset_stats()
                host.reset_limits()
                target = TargetReader(folder)
                limit = 120 + 3 * resync_model(n, profile)["model_s"]  # a hang guard
                watch = Stopwatch()
                assert monitor.resync_all()
                listed_s = None
                while target.count() < n:
                    if listed_s is None and monitor._job is not None and not monitor._job.is_alive():
                        listed_s = watch.s
                    if watch.s > limit:
                        raise TimeoutError(f"resync of {n} deals did not finish in {limit:.0f} s")
                    # look often enough that the poll adds ~1 % at most, rarely enough that
                    # counting the rows does not slow the app down
                    time.sleep(min(0.2, max(0.02, watch.s / 100)))
                seconds = watch.s
                stats = host.stats()
                # the app's own bookkeeping (snapshots, timelines, inbox rows) may still be
                # finishing when the target is complete: when all of it is done, too
                while (monitor._job is not None and monitor._job.is_alive()) or \
                        monitor.state.inbox_depth():
                    if listed_s is None and monitor._job is not None and not monitor._job.is_alive():
                        listed_s = watch.s
                    if watch.s > limit:
                        raise TimeoutError(f"resync of {n} deals: bookkeeping not done in {limit:.0f} s")
                    time.sleep(0.05)
                done_s = watch.s
                if listed_s is None:
                    listed_s = done_s
                out.update(seconds=seconds, listing_s=listed_s, done_s=done_s,
                           deals_recorded=len(monitor.state.versions()),
                           requests=stats["http_requests"], refusals_503=stats["refusals_503"],
                           refusals_429=stats["refusals_429"], portal=stats)
            host.reset_limits()
            host.reset_stats()
            floor = fetch_floor(info["webhook_url"], n)
            floor["portal"] = host.stats()
            store_s = store_floor(n, (floor.pop("sample_row") or [None])[0])
            out["floor"] = {"fetch": floor, "store_s": store_s}
            model = resync_model(n, profile)
            out["bound"] = {**model, "fetch_floor_s": floor["seconds"], "store_floor_s": store_s,
                            "bound_s": max(floor["seconds"], store_s)}
            out["ratio_to_bound"] = out["seconds"] / out["bound"]["bound_s"]
            if with_desktop:
                host.reset_limits()
                out["desktop"] = desktop.measure(info, folder, n)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out


# -- 6. the seed's name-prefix match --------------------------------------------------------------
def corruption() -> dict[str, Any]:
    """Deals 1..19 created and changed once, then deal 1 changed: what each approach leaves.

    The seed takes ``ONCRMDEALUPDATE`` only, so its rows come from the first changes; those go
    out in two waves (1..9, then 10..19) so the portal's reordering cannot mix deal 1's first
    change in among 10..19 — then the one change of deal 1 shows the LIKE match alone.
    """
    titles = [f"Заказ {n}" for n in range(1, 20)]
    out: dict[str, Any] = {}
    with simulator(**sim_options()) as host:
        info = host.info()
        with SeedServer(info["webhook_url"]) as seed:
            host.add_webhook(seed.url)
            ids = host.add_deals(titles)
            for wave in (ids[:9], ids[9:]):
                host.update_titles([(i, f"{titles[i - 1]} — в работе") for i in wave])
                host.wait_deliveries(120)
            host.update_deal(1, {"TITLE": "Заказ 1 — изменён", "OPPORTUNITY": "1.00"})
            host.wait_deliveries(120)
            out["baseline"] = corrupted_rows(seed.rows(), host.deals(ids))
            out["baseline"]["deal_ids"] = ids
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("corrupt-monitor")
        try:
            with running_monitor(monitor_settings(info, folder)) as monitor:
                host.add_webhook(listener_url(monitor))
                ids = host.add_deals(titles)
                host.update_titles([(i, f"{titles[i - 1]} — в работе") for i in ids])
                host.update_deal(1, {"TITLE": "Заказ 1 — изменён", "OPPORTUNITY": "1.00"})
                host.wait_deliveries(120)
                portal = host.deals(ids)
                target = TargetReader(folder)
                want = {i: d["TITLE"] for i, d in portal.items()}
                with suppress(TimeoutError):  # what is wrong by then is counted below
                    wait_for(lambda: target.titles(ids) == want, 120, interval=0.2)
                rows = target.rows(ids)
                wrong = sum(1 for i in ids if i not in rows or rows[i]["title"] != want[i])
                out["monitor"] = {"rows": len(rows), "corrupted": wrong, "missing": len(set(ids) - set(rows))}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out
