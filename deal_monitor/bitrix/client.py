"""The Bitrix24 REST client: one session per portal, paced, retried, batched.

Every call goes through one ``requests.Session`` (connection reuse), waits for a slot in the
shared :class:`LeakyBucket` before it is sent, and retries what a retry can fix (503, 5xx,
HTML error pages, network trouble) with exponential backoff and jitter. ``batch`` packs up to
50 commands into one HTTP request under non-numeric keys, so each error maps back to its
command. Listing uses the fast form (order by ID, ``>ID``, ``start=-1``), chaining many list
pages in one ``batch`` through ``$result`` references.

Reading many deals by ID overlaps its batch requests: at most ``max_in_flight`` HTTP requests
of the client are in flight at once (a semaphore around every request, whichever thread
sends it), each still paced by the bucket and the operating budget; see ``get_deals``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import requests

from .. import __version__, metrics
from ..errors import BitrixError
from ..logs import secrets
from . import phpform
from .throttle import (
    Cancelled,
    LeakyBucket,
    OperatingBudget,
    seconds_until_reset,
    wait_or_cancel,
)

log = logging.getLogger(__name__)
# jitter from a generator of our own: the global one belongs to whoever seeds it (tests)
_JITTER = random.Random()

BATCH_LIMIT = 50
PAGE_SIZE = 50
DEAL_SELECT = ("*", "UF_*")
PRODUCTS_KEY = "__products__"  # where get_deals puts a deal's product rows
# HTTP requests of one client in flight at once. A batch of 50 crm.deal.get runs seconds on
# the portal (~7 s in the simulator's realistic profile), so the bucket (2 req/s, burst 50)
# is never what limits reads: four in flight send ~0.6 req/s. The operating budget (480 s
# per method per 10 min) is, and overlapping batches spend it that many times as fast;
# ``OperatingBudget.headroom`` lets a request overlap only while that stays safe. Four cuts
# a storm's read time ~3-4x and is still a small load on a shared portal (Bitrix24 blocks
# "dramatic" REST load by hand: OVERLOAD_LIMIT); more would mostly bring the budget's pause
# sooner, since a storm of ~3,000 deals spends the budget's soft share either way.
MAX_IN_FLIGHT = 4
_POLL = 0.1  # how often a waiting read looks at the owner's cancel flag

T = TypeVar("T")
R = TypeVar("R")


class Auth(Protocol):
    """Where a method is called and with which credentials."""

    def url_for(self, method: str) -> str: ...
    def auth_params(self) -> dict[str, str]: ...
    def recover(self, error: BitrixError) -> bool:
        """Fix the credentials after ``error`` if possible; True means "call again"."""
        ...


class WebhookAuth:
    """Inbound webhook: the secret is part of the URL; nothing to refresh."""

    def __init__(self, webhook_url: str) -> None:
        self.base = webhook_url.rstrip("/") + "/"
        secrets.add(webhook_url, self.base.rstrip("/").rsplit("/", 1)[-1])

    def url_for(self, method: str) -> str:
        return f"{self.base}{method}.json"

    def auth_params(self) -> dict[str, str]:
        return {}

    def recover(self, error: BitrixError) -> bool:
        return False


@dataclass
class Reply:
    """A successful answer: the result and the paging and timing around it."""

    result: Any
    total: int | None = None
    next: int | None = None
    time: dict = field(default_factory=dict)


@dataclass
class BatchReply:
    results: dict[str, Any]
    errors: dict[str, BitrixError]
    totals: dict[str, int]
    nexts: dict[str, int]
    time: dict


@dataclass
class ClientStats:
    http_requests: int = 0
    refusals: int = 0
    retries: int = 0
    bad_answers: int = 0  # replies of the wrong shape (not an object, another deal's ID, ...)


def _section(value: Any) -> dict:
    """PHP sends an empty section as ``[]``; treat it (and junk) as an empty dict."""
    return value if isinstance(value, dict) else {}


def bad_answer(description: str) -> BitrixError:
    """A reply of the wrong shape: counted and retried like a server error, never used."""
    return BitrixError("ERROR_UNEXPECTED_ANSWER", description, 502)


def row_id(row: Any) -> int | None:
    """The ``ID`` of a deal row as the portal sends it (a decimal string), or None."""
    if not isinstance(row, dict):
        return None
    value = row.get("ID")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
        return number if number > 0 else None
    return None


def checked_deal(value: Any, asked: int) -> dict | BitrixError:
    """The answer to "read deal ``asked``": a dict with that ID, else a bad-answer error."""
    if not isinstance(value, dict):
        return bad_answer(f"deal {asked}: the answer is {type(value).__name__}, not an object")
    found = row_id(value)
    if found != asked:
        return bad_answer(f"asked for deal {asked}, the answer is deal {found}")
    return value


def checked_page(value: Any) -> list[dict]:
    """A ``crm.deal.list`` page: a list of deal rows, each with a valid ID, in ID order."""
    if not isinstance(value, list):
        raise bad_answer(f"a list page is {type(value).__name__}, not a list")
    last = 0
    for row in value:
        found = row_id(row)
        if found is None:
            raise bad_answer("a list page holds a row without a valid ID")
        if found <= last:
            raise bad_answer("a list page is not in ID order")
        last = found
    return value


class BitrixClient:
    """REST calls for one portal. Thread-safe; at most ``max_in_flight`` requests at once."""

    def __init__(
        self,
        auth: Auth,
        bucket: LeakyBucket,
        *,
        timeout: tuple[float, float] = (5.0, 65.0),
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        operating_limit: float = 480.0,
        default_block_seconds: float = 60.0,
        cancel: threading.Event | None = None,
        session: requests.Session | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._auth = auth
        self.bucket = bucket
        self.budget = OperatingBudget(operating_limit)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.default_block_seconds = default_block_seconds
        self.cancel = cancel or threading.Event()
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"DealMonitor/{__version__}"
        self.stats = ClientStats()
        self._times = threading.local()
        self._lock = threading.Lock()  # the counters in ``stats``
        self.max_in_flight = max(1, max_in_flight)
        self._slots = threading.BoundedSemaphore(self.max_in_flight)
        self.overload_pause = 900.0
        self.auth_pause = 900.0
        self._blocked_until = 0.0  # OVERLOAD_LIMIT, or credentials the portal refused
        self._block: BitrixError | None = None

    @property
    def auth(self) -> Auth:
        return self._auth

    @property
    def last_time(self) -> dict:
        """The ``time`` block of this thread's last reply (per thread: a watermark taken from
        the portal's clock must be the one of the caller's own listing, not another thread's)."""
        return getattr(self._times, "block", {})

    @last_time.setter
    def last_time(self, block: dict) -> None:
        self._times.block = block

    @auth.setter
    def auth(self, auth: Auth) -> None:
        """New credentials lift a block that the old ones caused."""
        self._auth = auth
        self.unblock()

    def unblock(self) -> None:
        self._blocked_until = 0.0
        self._block = None

    @property
    def blocked(self) -> BitrixError | None:
        """The error that holds every call back now (None when calls may go out)."""
        if self._block is not None and time.monotonic() < self._blocked_until:
            return self._block
        return None

    def _hold(self, error: BitrixError, seconds: float) -> None:
        """Make no calls for a while: the portal blocked us, or refused our credentials.

        Every event would otherwise cost a call the portal answers the same way.
        """
        self._block = error
        self._blocked_until = time.monotonic() + seconds
        log.error("portal calls paused for %.0f s: %s", seconds, error)

    def close(self) -> None:
        self.session.close()

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + amount)

    # -- single calls -------------------------------------------------------------------
    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        cancel: threading.Event | None = None,
        charged: Sequence[str] = (),
    ) -> Reply:
        """Call one method, retrying transient failures; raise BitrixError otherwise.

        ``cancel`` (default: the client's) cuts every wait short and stops further tries;
        ``charged`` names the methods the request is charged to besides ``method`` (a
        batch's commands), whose operating-budget pauses it waits out too.
        """
        cancel = cancel or self.cancel
        methods = (method, *charged)
        last: BitrixError | None = None
        recovered = False
        for attempt in range(self.max_retries + 1):
            if cancel.is_set():  # the owner is stopping: no new request goes out
                raise Cancelled()
            if (block := self.blocked) is not None:
                raise block
            self._admit(methods, cancel)
            try:
                with self._slot(cancel):
                    return self._send(method, params or {})
            except BitrixError as error:
                last = error
                if error.code == "QUERY_LIMIT_EXCEEDED":
                    self._count("refusals")
                    self.bucket.refused()
                elif error.code == "OPERATION_TIME_LIMIT":
                    self._count("refusals")
                    self.budget.pause(
                        method, error_reset_seconds(error), self.default_block_seconds
                    )
                elif error.code == "OVERLOAD_LIMIT":  # a manual block by Bitrix24 support
                    self._hold(error, self.overload_pause)
                    raise
                if error.is_auth and not recovered and self.auth.recover(error):
                    recovered = True
                    continue
                if error.code in ("NO_AUTH_FOUND", "invalid_token", "NOT_INSTALLED"):
                    self._hold(error, self.auth_pause)
                if not error.transient or attempt == self.max_retries:
                    raise
            self._count("retries")
            wait_or_cancel(self._retry_delay(last, attempt), cancel)
        assert last is not None
        raise last

    def _admit(self, methods: Sequence[str], cancel: threading.Event) -> None:
        """Wait out the budget's pauses of every charged method, then take a bucket slot.

        The budget is looked at again after the bucket: a request waiting for the bucket
        must not go out if an answer meanwhile paused its method.
        """
        while True:
            wait_or_cancel(max(self.budget.wait_time(m) for m in methods), cancel)
            self.bucket.acquire(cancel)
            if all(self.budget.wait_time(m) <= 0 for m in methods):
                return

    @contextlib.contextmanager
    def _slot(self, cancel: threading.Event) -> Iterator[None]:
        """One of the ``max_in_flight`` request slots, held while the request is out."""
        while not self._slots.acquire(timeout=_POLL):
            if cancel.is_set():
                raise Cancelled()
        try:
            yield
        finally:
            self._slots.release()

    def _retry_delay(self, error: BitrixError, attempt: int) -> float:
        """How long to wait before the next try, beyond the bucket's own wait.

        A 503 ``QUERY_LIMIT_EXCEEDED`` means the portal's bucket is full: ``bucket.refused()``
        already makes the next request wait for a slot to drain (1/rate), which is the delay
        the portal asks for; exponential backoff on top of it only adds latency (five 503s in
        a row cost ~16 s that way). It starts only when refusals repeat — then other apps
        share the bucket and our mirror of it is too optimistic. Other transient errors back
        off exponentially from the first retry.
        """
        if error.code == "QUERY_LIMIT_EXCEEDED":
            if attempt < 2:
                return 0.0
            attempt -= 2
        delay = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return delay * _JITTER.uniform(0.5, 1.5)

    def _send(self, method: str, params: Mapping[str, Any]) -> Reply:
        payload = dict(params)
        payload.update(self.auth.auth_params())
        url = self.auth.url_for(method)
        self._count("http_requests")
        try:
            response = self.session.post(url, json=payload, timeout=self.timeout)
            metrics.rest_request(method, response.status_code)
        except requests.RequestException as exc:
            metrics.rest_request(method, None)
            raise BitrixError(
                "NETWORK_ERROR", secrets.redact(f"{type(exc).__name__}: {exc}")[:300]
            ) from None
        try:
            body = response.json()
        except ValueError:
            raise BitrixError(
                "ERROR_UNEXPECTED_ANSWER",
                f"HTTP {response.status_code}, not JSON ({response.headers.get('Content-Type', '?')})",
                response.status_code if response.status_code >= 400 else 502,
            ) from None
        if not isinstance(body, dict):
            raise BitrixError("ERROR_UNEXPECTED_ANSWER", "JSON is not an object", 502)
        if "error" in body and "result" not in body:
            error = BitrixError(
                str(body.get("error") or ""),
                str(body.get("error_description") or ""),
                response.status_code,
            )
            error.time_block = body.get("time")  # type: ignore[attr-defined]
            error.auth_used = payload.get("auth")  # type: ignore[attr-defined]
            raise error
        if response.status_code >= 400:
            raise BitrixError("HTTP_ERROR", f"HTTP {response.status_code}", response.status_code)
        time_block = body.get("time") if isinstance(body.get("time"), dict) else {}
        self.last_time = time_block
        self.budget.observe(method, time_block)
        if method != "batch":  # a batch's commands are noted one by one, each to its method
            self.budget.note_cost(method, _call_cost(time_block))
        return Reply(
            result=body.get("result"),
            total=_int_or_none(body.get("total")),
            next=_int_or_none(body.get("next")),
            time=time_block,
        )

    # -- batch ---------------------------------------------------------------------------
    def batch(
        self,
        commands: Mapping[str, tuple[str, Mapping[str, Any]]],
        halt: bool = False,
        *,
        cancel: threading.Event | None = None,
    ) -> BatchReply:
        """Run up to 50 commands in one request; keys must not be numeric.

        The request waits out the budget pauses of its commands' methods (each command is
        charged to its own method); a command refused by the operating limit pauses its
        method like a refused call.
        """
        if len(commands) > BATCH_LIMIT:
            raise ValueError(f"a batch holds at most {BATCH_LIMIT} commands")
        cmd = {}
        for key, (method, params) in commands.items():
            if key.isdigit():
                raise ValueError("batch keys must not be numeric (errors would lose their key)")
            query = phpform.encode(params)
            cmd[key] = f"{method}?{query}" if query else method
        charged = sorted({method for method, _ in commands.values()})
        reply = self.call(
            "batch", {"halt": 1 if halt else 0, "cmd": cmd}, cancel=cancel, charged=charged
        )
        inner = reply.result if isinstance(reply.result, dict) else {}
        errors = {
            key: BitrixError(
                str(err.get("error") or ""), str(err.get("error_description") or ""), 400
            )
            for key, err in _section(inner.get("result_error")).items()
            if isinstance(err, dict)
        }
        before: dict[str, float] = {}  # method -> ``operating`` after its previous command
        for key, timing in _section(inner.get("result_time")).items():
            if key not in commands:
                continue
            method = commands[key][0]
            self.budget.observe(method, timing)
            # the cost of a command is its own run time, or the rise of ``operating`` since
            # the previous command of its method, whichever is more (the rise also holds what
            # overlapping requests were charged meanwhile: an estimate on the safe side)
            operating = _seconds(timing, "operating") if isinstance(timing, dict) else 0.0
            rise = operating - before[method] if method in before else 0.0
            before[method] = operating
            self.budget.note_cost(method, max(_call_cost(timing), rise))
        for key, error in errors.items():
            if error.code == "OPERATION_TIME_LIMIT" and key in commands:
                self._count("refusals")
                self.budget.pause(
                    commands[key][0], seconds_until_reset(reply.time), self.default_block_seconds
                )
        return BatchReply(
            results=_section(inner.get("result")),
            errors=errors,
            totals={k: int(v) for k, v in _section(inner.get("result_total")).items()},
            nexts={k: int(v) for k, v in _section(inner.get("result_next")).items()},
            time=reply.time,
        )

    # -- deals ---------------------------------------------------------------------------
    def get_deals(
        self, ids: Sequence[int], with_products: bool = False
    ) -> tuple[dict[int, dict], dict[int, BitrixError]]:
        """Read deals by ID: one ``crm.deal.get``, or batches of 50 for several.

        Returns the deals found and, per ID, the error the portal gave for it ("Not found"
        for deleted deals). A failure of the whole request raises. ``with_products`` reads
        each deal's product rows in the same batch; they land in ``deal["__products__"]``.
        """
        found: dict[int, dict] = {}
        failed: dict[int, BitrixError] = {}
        if len(ids) == 1 and not with_products:
            try:
                reply = self.call("crm.deal.get", {"id": ids[0]})
            except BitrixError as error:
                if error.transient or error.is_auth:
                    raise
                failed[ids[0]] = error
            else:
                deal = checked_deal(reply.result, ids[0])
                if isinstance(deal, BitrixError):
                    self._count("bad_answers")
                    failed[ids[0]] = deal
                else:
                    found[ids[0]] = deal
            return found, failed
        per_batch = BATCH_LIMIT // 2 if with_products else BATCH_LIMIT
        chunks = [ids[start : start + per_batch] for start in range(0, len(ids), per_batch)]
        calls = {"crm.deal.get": per_batch}
        if with_products:
            calls["crm.deal.productrows.get"] = per_batch

        def read(chunk: Sequence[int], cancel: threading.Event) -> BatchReply:
            commands: dict[str, tuple[str, Mapping[str, Any]]] = {}
            for i in chunk:
                commands[f"d{i}"] = ("crm.deal.get", {"id": i})
                if with_products:
                    commands[f"p{i}"] = ("crm.deal.productrows.get", {"id": i})
            return self.batch(commands, cancel=cancel)

        for chunk, reply in zip(chunks, self.overlapped(chunks, read, calls), strict=True):
            for deal_id in chunk:
                key = f"d{deal_id}"
                if key in reply.errors and key not in reply.results:
                    failed[deal_id] = reply.errors[key]
                elif key not in reply.results:
                    self._count("bad_answers")
                    failed[deal_id] = bad_answer(f"deal {deal_id}: no result in the batch")
                else:
                    deal = checked_deal(reply.results[key], deal_id)
                    if isinstance(deal, BitrixError):
                        self._count("bad_answers")
                        failed[deal_id] = deal
                    else:
                        found[deal_id] = deal
                if with_products and deal_id in found:
                    rows = reply.results.get(f"p{deal_id}")
                    if isinstance(rows, list):
                        found[deal_id] = {**found[deal_id], PRODUCTS_KEY: rows}
                    else:  # a deal without its rows must not be written as if it had none
                        del found[deal_id]
                        failed[deal_id] = reply.errors.get(f"p{deal_id}") or BitrixError(
                            "ERROR_UNEXPECTED_ANSWER", "no product rows", 502
                        )
        return found, failed

    def get_product_rows(self, ids: Sequence[int]) -> dict[int, list[dict]]:
        """Product rows of deals whose fields we already have (batches of 50)."""
        rows: dict[int, list[dict]] = {}
        chunks = [ids[start : start + BATCH_LIMIT] for start in range(0, len(ids), BATCH_LIMIT)]

        def read(chunk: Sequence[int], cancel: threading.Event) -> BatchReply:
            commands = {f"p{i}": ("crm.deal.productrows.get", {"id": i}) for i in chunk}
            return self.batch(commands, cancel=cancel)

        replies = self.overlapped(chunks, read, {"crm.deal.productrows.get": BATCH_LIMIT})
        for chunk, reply in zip(chunks, replies, strict=True):
            for deal_id in chunk:
                value = reply.results.get(f"p{deal_id}")
                if isinstance(value, list):
                    rows[deal_id] = value
        return rows

    def overlapped(
        self,
        jobs: Sequence[T],
        run: Callable[[T, threading.Event], R],
        calls: Mapping[str, int],
    ) -> list[R]:
        """``run(job, cancel)`` for every job, up to ``max_in_flight`` at once; results in order.

        A pool of its own lives for this call only, so no thread outlives it. Another job
        joins the ones in flight only while the operating budget has room for all of them
        (``OperatingBudget.headroom``; ``calls``: the method calls one job makes); otherwise
        they go one at a time.
        The first failure stops the launching of jobs, cuts the waits of the running ones
        short, and is raised once they have ended; so is :class:`Cancelled` when the client's
        ``cancel`` is set meanwhile (mirrored into the jobs' own flag every ``_POLL`` s).
        Requests already out finish (an HTTP request cannot be recalled); their answers are
        dropped, and the caller's rows stay queued.
        """
        if len(jobs) <= 1 or self.max_in_flight == 1:
            return [run(job, self.cancel) for job in jobs]
        stop = threading.Event()
        results: dict[int, R] = {}
        failure: BaseException | None = None
        waiting = list(enumerate(jobs))[::-1]  # popped from the end: job order
        running: dict[Future[R], int] = {}
        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="bitrix-read") as pool:
            try:
                while waiting or running:
                    if self.cancel.is_set():
                        stop.set()
                    while waiting and not stop.is_set() and (
                        not running
                        or (
                            len(running) < self.max_in_flight
                            and self.budget.headroom(calls, len(running))
                        )
                    ):
                        index, job = waiting.pop()
                        running[pool.submit(run, job, stop)] = index
                    if not running:
                        break
                    done, _ = wait(running, timeout=_POLL, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = running.pop(future)
                        try:
                            results[index] = future.result()
                        except BaseException as exc:  # noqa: BLE001 - raised below, first one wins
                            failure = failure or exc
                            stop.set()
            finally:
                stop.set()  # leaving early (an exception here): the running jobs stop waiting
        if failure is not None:
            raise failure
        if len(results) < len(jobs):
            raise Cancelled()
        return [results[i] for i in range(len(jobs))]

    def iter_deal_pages(
        self,
        filter: Mapping[str, Any] | None = None,
        select: Sequence[str] = DEAL_SELECT,
        after_id: int = 0,
        pages_per_batch: int = BATCH_LIMIT,
        expected: int | None = None,
    ) -> Iterator[list[dict]]:
        """Yield every matching deal in ID order, a list per request.

        The first request reads one plain page; if it is full, later requests chain
        ``pages_per_batch`` fast pages in one ``batch`` through ``$result[pN][49][ID]``.
        ``after_id`` resumes an interrupted listing. ``expected`` (a count the caller already
        has) sizes the last batch, so it does not chain pages that cannot exist: each of those
        would still run, fail, and be charged to the method's operating budget.
        """
        base_filter = dict(filter or {})
        params = {
            "order": {"ID": "ASC"},
            "filter": {**base_filter, ">ID": after_id},
            "select": list(select),
            "start": -1,
        }
        reply = self.call("crm.deal.list", params)
        page = self._page(reply.result)
        if page:
            yield page
        exhausted = len(page) < PAGE_SIZE
        last_id = int(page[-1]["ID"]) if page else after_id
        listed = len(page)
        while not exhausted:
            pages = pages_per_batch
            if expected is not None:
                # one page more than the count says, in case deals were added meanwhile
                pages = max(1, min(pages, -(-max(0, expected - listed) // PAGE_SIZE) + 1))
            commands: dict[str, tuple[str, Mapping[str, Any]]] = {}
            for n in range(pages):
                ref = last_id if n == 0 else f"$result[p{n - 1}][{PAGE_SIZE - 1}][ID]"
                commands[f"p{n}"] = (
                    "crm.deal.list",
                    {**params, "filter": {**base_filter, ">ID": ref}},
                )
            batch = self.batch(commands)
            rows: list[dict] = []
            for n in range(pages):
                page = batch.results.get(f"p{n}")
                if page is None and f"p{n}" in batch.errors:
                    if n == 0:
                        raise batch.errors[f"p{n}"]
                    break  # a later page failed: go on from the last row we have
                if page is None and n == 0:
                    self._count("bad_answers")
                    raise bad_answer("list page missing")
                if page is None:
                    break
                page = self._page(page)
                if rows and page and row_id(page[0]) <= row_id(rows[-1]):  # type: ignore[operator]
                    self._count("bad_answers")
                    raise bad_answer("list pages overlap")
                rows.extend(page)
                if len(page) < PAGE_SIZE:
                    exhausted = True
                    break
            if rows:
                last_id = int(rows[-1]["ID"])
                listed += len(rows)
                yield rows
            # let the consumer's finished rows go before the next batch is read (up to 2,500
            # decoded deals each)
            batch = rows = page = None  # type: ignore[assignment]


    def _page(self, value: Any) -> list[dict]:
        """A checked list page; a malformed one is counted and raised as a bad answer."""
        try:
            return checked_page(value)
        except BitrixError:
            self._count("bad_answers")
            raise


def error_reset_seconds(error: BitrixError) -> float | None:
    return seconds_until_reset(getattr(error, "time_block", None))


def _call_cost(time_block: Any) -> float:
    """Seconds a ``time`` block says the call ran (what its method's budget is charged)."""
    if not isinstance(time_block, dict):
        return 0.0
    return max(_seconds(time_block, "processing"), _seconds(time_block, "duration"))


def _seconds(time_block: dict, key: str) -> float:
    try:
        return max(0.0, float(time_block.get(key) or 0.0))
    except (TypeError, ValueError):
        return 0.0


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


__all__ = [
    "Auth",
    "BatchReply",
    "BitrixClient",
    "Cancelled",
    "LeakyBucket",
    "Reply",
    "WebhookAuth",
]
