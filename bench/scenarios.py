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
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from waitress import wasyncore
from waitress.server import create_server

from . import desktop, loadgen
from .baseline import SeedServer, corrupted_rows
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
LIST_PAGE_COST = 0.2  # seconds charged to crm.deal.list's budget per executed page
METHOD_COSTS = {"crm.deal.list": LIST_PAGE_COST}
PAGE = 50
BATCH = 50
DEALS_PER_REQUEST = PAGE * BATCH  # 2,500


@dataclass(frozen=True)
class Sizes:
    intake_rate: float = 200.0  # offered events/s
    intake_seconds: float = 10.0  # per trial
    intake_trials: int = 3
    saturate_seconds: float = 10.0
    intake_deals: int = 2000
    fresh_rate: float = 20.0
    fresh_seconds: float = 30.0
    distinct: int = 1000
    bursty_deals: int = 50
    bursty_updates: int = 20
    resync_small: int = 10_000
    resync_large: int = 100_000
    desktop: bool = True


FULL = Sizes()
QUICK = Sizes(
    intake_seconds=3.0, intake_trials=1, saturate_seconds=2.0, intake_deals=500, fresh_seconds=4.0,
    distinct=300, bursty_deals=20, bursty_updates=10, resync_small=1_000, resync_large=3_000,
)


def sim_options(**extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "plan": PLAN, "rate_limit": True, "operating_limit": OPERATING_LIMIT,
        "operating_window": OPERATING_WINDOW, "method_costs": METHOD_COSTS,
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
    of foreign load on the machine does not decide it.
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
    return out


def _intake_run(who: str, sizes: Sizes, mode: str) -> dict[str, Any]:
    folder = workdir(f"intake-{who}")
    try:
        if who == "floor":
            with floor_server(folder / "floor.db") as url:
                ident = loadgen.Identity("t" * 32, "m" * 32, "floor.invalid")
                return _load(_drive(url, ident, [1], sizes, mode))
        with simulator(**sim_options()) as host:
            info = host.info()
            if who == "monitor":
                with running_monitor(monitor_settings(info, folder)) as monitor:
                    ids = host.bulk_add(sizes.intake_deals)
                    host.reset_stats()
                    result = _drive(listener_url(monitor), identity(info), ids, sizes, mode)
                    depth = monitor.status().inbox_depth
            else:
                with SeedServer(info["webhook_url"], folder / "seed.db") as seed:
                    ids = host.bulk_add(sizes.intake_deals)
                    host.reset_stats()
                    result = _drive(seed.url, identity(info), ids, sizes, mode)
                    depth = 0
            figures = _load(result)
            figures["portal"] = host.stats()
            figures["inbox_depth_after"] = depth
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
def freshness(sizes: Sizes) -> dict[str, Any]:
    """Event POST -> row in the target, one distinct deal per event, at a steady rate.

    The deals are changed in the portal first; then the events are posted (open loop). For
    the product the moment of arrival is the row's ``synced_at``, stamped by the writer in
    the same process clock just before its commit. The seed writes before answering, so for
    it the figure is the latency of its 200s; non-200s are events it lost.
    """
    n = int(sizes.fresh_rate * sizes.fresh_seconds)
    out: dict[str, Any] = {"rate": sizes.fresh_rate, "events": n}
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("fresh")
        try:
            with running_monitor(monitor_settings(info, folder)) as monitor:
                ids = host.bulk_add(n)
                host.update_titles([(i, f"fresh {i}") for i in ids])
                host.reset_stats()
                result = loadgen.run_in_process(listener_url(monitor), identity(info), ids,
                                                rate=sizes.fresh_rate, duration=sizes.fresh_seconds)
                target = TargetReader(folder)
                wait_for(lambda: target.count() >= n, 120 + n / 50)
                rows = target.rows(ids)
                lags = [
                    (synced_at_epoch(rows[deal_id]["synced_at"]) - result.sent_at[i]) * 1000.0
                    for i, deal_id in enumerate(ids[: len(result.sent_at)])
                ]
                out["monitor"] = {"ms": summary(lags), "portal": host.stats(),
                                  "all_titles_match": all(rows[i]["title"] == f"fresh {i}" for i in ids)}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("fresh-seed")
        try:
            with SeedServer(info["webhook_url"], folder / "seed.db") as seed:
                ids = host.bulk_add(n)
                host.reset_stats()
                result = loadgen.run_in_process(seed.url, identity(info), ids,
                                                rate=sizes.fresh_rate, duration=sizes.fresh_seconds)
                figures = _load(result)
                out["baseline"] = {"ms": figures["ack_ms"], "lost": result.sent - result.ok,
                                   "lost_share": (result.sent - result.ok) / max(1, result.sent),
                                   "portal": host.stats()}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out


# -- 3. portal cost -----------------------------------------------------------------------------------
def portal_cost(sizes: Sizes) -> dict[str, Any]:
    """REST requests per event for a burst of distinct deals and for rapid repeated updates.

    Events travel the real way: portal change -> the simulator's delivery thread -> handler.
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
                wait_for(lambda: target.titles(ids) == final, 120, interval=0.2)
                elapsed = watch.s
                stats = host.stats()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    events = len(changes)
    return {"events": events, "delivered": delivered, "seconds_to_target": elapsed,
            "requests": stats["http_requests"], "requests_per_event": stats["http_requests"] / events,
            "refusals_503": stats["refusals_503"], "refusals_429": stats["refusals_429"],
            "portal": stats, "all_final": True}


def _cost_seed(changes, final: dict[int, str], seeded: int) -> dict[str, Any]:
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("cost-seed")
        try:
            with SeedServer(info["webhook_url"], folder / "seed.db") as seed:
                host.bulk_add(seeded)
                host.add_webhook(seed.url)
                host.reset_stats()
                watch = Stopwatch()
                host.update_titles(changes)
                host.wait_deliveries(600)
                elapsed = watch.s
                delivered = host.delivery_summary()
                stats = host.stats()
                names = {row[1] for row in seed.rows()}
                portal = host.titles(list(final))
                current = sum(1 for i, t in portal.items() if f"Сделка №{i} — {t}" in names)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    events = len(changes)
    return {"events": events, "delivered": delivered, "seconds": elapsed,
            "requests": stats["http_requests"], "requests_per_event": stats["http_requests"] / events,
            "refusals_503": stats["refusals_503"], "refusals_429": stats["refusals_429"],
            "answered_500": delivered["failed"], "deals_current_in_target": current,
            "deals": len(final), "portal": stats}


# -- 4. full resync ---------------------------------------------------------------------------------
def resync_bound(n: int, fetch_floor_s: float, store_floor_s: float) -> dict[str, Any]:
    """The fewest requests and the least time the limits (and this machine) allow for n deals."""
    pages = math.ceil(n / PAGE)
    fewest = math.ceil(n / DEALS_PER_REQUEST)
    budget_needed = pages * LIST_PAGE_COST
    # one window admits calls while its sum is <= the limit (the call that crosses still runs)
    per_window = math.floor(OPERATING_LIMIT / LIST_PAGE_COST) + 1
    rounds = math.ceil(pages / per_window)
    # best case: each spent window slides out after nine of its ten slots
    budget_s = (rounds - 1) * OPERATING_WINDOW * 0.9
    bucket_s = max(0.0, (fewest - BURST) / DRAIN)
    limits_s = max(budget_s, bucket_s)
    return {
        "deals": n, "pages": pages, "fewest_requests": fewest,
        "budget_needed_s": budget_needed, "budget_windows": rounds,
        "bucket_bound_s": bucket_s, "budget_bound_s": budget_s, "limits_bound_s": limits_s,
        "fetch_floor_s": fetch_floor_s, "store_floor_s": store_floor_s,
        "bound_s": max(limits_s, fetch_floor_s, store_floor_s),
    }


def fetch_floor(webhook_url: str, n: int) -> dict[str, Any]:
    """A bare client listing n deals in the fewest requests: 50 chained pages per batch,
    same ``select`` as the product, JSON decoded, nothing else done with the rows."""
    from deal_monitor.bitrix import phpform

    session = requests.Session()
    url = webhook_url.rstrip("/") + "/batch.json"
    base = {"order": {"ID": "ASC"}, "select": ["*", "UF_*"], "start": -1}
    last, got, req = 0, 0, 0
    rows: list[dict] = []
    watch = Stopwatch()
    while got < n:
        cmd = {}
        for k in range(BATCH):
            ref = last if k == 0 else f"$result[p{k - 1}][{PAGE - 1}][ID]"
            cmd[f"p{k}"] = "crm.deal.list?" + phpform.encode({**base, "filter": {">ID": ref}})
        body = session.post(url, json={"halt": 0, "cmd": cmd}, timeout=120).json()
        req += 1
        pages = body["result"]["result"]
        rows = [row for k in range(BATCH) for row in (pages.get(f"p{k}") or [])]
        if not rows:
            break
        got += len(rows)
        last = int(rows[-1]["ID"])
    seconds = watch.s
    session.close()
    return {"seconds": seconds, "requests": req, "deals": got, "sample_row": rows[:1]}


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
    resync runs. Afterwards, with the same simulator, the floors are measured.
    """
    out: dict[str, Any] = {"deals": n}
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("resync")
        try:
            with running_monitor(monitor_settings(info, folder, listener={"enabled": False})) as monitor:
                host.bulk_add(n)
                host.reset_stats()
                host.reset_limits()
                target = TargetReader(folder)
                watch = Stopwatch()
                assert monitor.resync_all()
                listed_s = None
                while target.count() < n:
                    if listed_s is None and monitor._job is not None and not monitor._job.is_alive():
                        listed_s = watch.s
                    if watch.s > 900:
                        raise TimeoutError(f"resync of {n} deals did not finish in 900 s")
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
                    if watch.s > 900:
                        raise TimeoutError(f"resync of {n} deals: bookkeeping not done in 900 s")
                    time.sleep(0.05)
                done_s = watch.s
                if listed_s is None:
                    listed_s = done_s
                out.update(seconds=seconds, listing_s=listed_s, done_s=done_s,
                           deals_recorded=len(monitor.state.versions()),
                           requests=stats["http_requests"], refusals_503=stats["refusals_503"],
                           refusals_429=stats["refusals_429"], portal=stats)
            host.reset_limits()
            floor = fetch_floor(info["webhook_url"], n)
            store_s = store_floor(n, (floor.pop("sample_row") or [None])[0])
            out["floor"] = {"fetch": floor, "store_s": store_s}
            out["bound"] = resync_bound(n, floor["seconds"], store_s)
            out["ratio_to_bound"] = out["seconds"] / out["bound"]["bound_s"]
            if with_desktop:
                host.reset_limits()
                out["desktop"] = desktop.measure(info, folder, n)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out


# -- 6. the seed's name-prefix match --------------------------------------------------------------
def corruption() -> dict[str, Any]:
    """Deals 1..19 created, then deal 1 changed: what each approach leaves in its table."""
    titles = [f"Заказ {n}" for n in range(1, 20)]
    out: dict[str, Any] = {}
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("corrupt-seed")
        try:
            with SeedServer(info["webhook_url"], folder / "seed.db") as seed:
                host.add_webhook(seed.url)
                ids = host.add_deals(titles)
                host.wait_deliveries(60)
                host.update_deal(1, {"TITLE": "Заказ 1 — изменён", "OPPORTUNITY": "1.00"})
                host.wait_deliveries(60)
                out["baseline"] = corrupted_rows(seed.rows(), host.deals(ids))
                out["baseline"]["deal_ids"] = ids
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    with simulator(**sim_options()) as host:
        info = host.info()
        folder = workdir("corrupt-monitor")
        try:
            with running_monitor(monitor_settings(info, folder)) as monitor:
                host.add_webhook(listener_url(monitor))
                ids = host.add_deals(titles)
                host.update_deal(1, {"TITLE": "Заказ 1 — изменён", "OPPORTUNITY": "1.00"})
                host.wait_deliveries(60)
                portal = host.deals(ids)
                target = TargetReader(folder)
                want = {i: d["TITLE"] for i, d in portal.items()}
                with suppress(TimeoutError):  # what is wrong by then is counted below
                    wait_for(lambda: target.titles(ids) == want, 60, interval=0.2)
                rows = target.rows(ids)
                wrong = sum(1 for i in ids if i not in rows or rows[i]["title"] != want[i])
                out["monitor"] = {"rows": len(rows), "corrupted": wrong, "missing": len(set(ids) - set(rows))}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return out

