"""The seed's approach, rebuilt faithfully as a comparison point (not product code).

What the seed article did, per event POST, synchronously inside the HTTP request:

1. read the form (``parse_qs``; no token check — the seed's hole 2),
2. act on ``ONCRMDEALUPDATE`` only (the seed registered no ADD handler; ``handle_add=True``
   is the labelled variant that also takes ``ONCRMDEALADD``),
3. ``crm.deal.get`` through ``requests`` (a new connection per call, no pacing, no retry),
4. open a MySQL connection (here the local MariaDB, ``pymysql`` defaults: autocommit off),
   ``SELECT ... WHERE name LIKE 'Сделка №<id>%'`` on ``deal(name, date, amount, comment,
   accounting)``, then ``UPDATE ... WHERE name LIKE`` the same pattern when a row matched,
   else ``INSERT``; the columns are the seed preset's (``mapping/presets.py``): ``name`` =
   ``"Сделка №<ID> — <TITLE>"``, ``date`` = ``CLOSEDATE``'s date part, ``amount`` =
   ``OPPORTUNITY``, ``comment`` = ``COMMENTS``, ``accounting`` = the preset's constant; commit,
5. answer 200 — or 500 when anything above raised (a refused REST call, a lock wait):
   Bitrix24 never resends, so that event is lost.

Served by waitress with its defaults (4 threads), against the same simulator the product
uses. The name-prefix match is the seed's correctness bug: ``'Сделка №1%'`` also matches
deals 10..19, 100..199 and so on.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pymysql
import requests
from waitress import wasyncore
from waitress.server import create_server

from deal_monitor.mapping.presets import SEED_COLUMNS

MYSQL_URL = "mysql://root@127.0.0.1:3306/test"  # the local MariaDB (no password)
ACCOUNTING = int(SEED_COLUMNS["accounting"].split(":", 1)[1].split("|", 1)[0])


def _field(column: str) -> str:
    """The portal field the seed preset reads for a column (``field:CLOSEDATE|date``)."""
    return SEED_COLUMNS[column].split(":", 1)[1].split("|", 1)[0]


DATE_FIELD, AMOUNT_FIELD, COMMENT_FIELD = _field("date"), _field("amount"), _field("comment")


def deal_name(deal_id: int | str, title: str) -> str:
    return f"Сделка №{deal_id} — {title}"


def connect(url: str = MYSQL_URL) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                           user=parts.username or "root", password=parts.password or "",
                           database=parts.path.lstrip("/") or "test", charset="utf8mb4",
                           connect_timeout=10)


class SeedApp:
    """The seed's WSGI handler."""

    def __init__(self, webhook_url: str, *, handle_add: bool = False, db_url: str = MYSQL_URL) -> None:
        self.webhook_url = webhook_url.rstrip("/") + "/"
        self.handle_add = handle_add
        self.db_url = db_url
        self.table = f"seed_deal_{uuid.uuid4().hex[:10]}"  # a fresh table per run
        self.handled = 0
        self.failed = 0
        # (deal id, title) -> time.time() of the first commit that wrote that version
        self.written: dict[tuple[int, str], float] = {}
        self._count = threading.Lock()
        conn = connect(db_url)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE TABLE {self.table} (name VARCHAR(255), date DATE, "
                            "amount DECIMAL(18,2), comment TEXT, accounting INT) "
                            "CHARACTER SET utf8mb4")
            conn.commit()
        finally:
            conn.close()

    def events(self) -> tuple[str, ...]:
        return ("ONCRMDEALADD", "ONCRMDEALUPDATE") if self.handle_add else ("ONCRMDEALUPDATE",)

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"seed"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8"))
            if form["event"][0] in self.events():
                self.handle(form["data[FIELDS][ID]"][0])
        except Exception:
            with self._count:
                self.failed += 1
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"error"]
        with self._count:
            self.handled += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"OK"]

    def handle(self, deal_id: str) -> None:
        reply = requests.get(f"{self.webhook_url}crm.deal.get.json", params={"id": deal_id}, timeout=30)
        deal = reply.json()["result"]  # a refusal has no "result": KeyError -> 500
        name = deal_name(deal["ID"], deal["TITLE"])
        day = (deal.get(DATE_FIELD) or "")[:10] or None
        values = (name, day, deal.get(AMOUNT_FIELD) or "0", deal.get(COMMENT_FIELD) or "")
        pattern = f"Сделка №{deal['ID']}%"
        conn = connect(self.db_url)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT name FROM {self.table} WHERE name LIKE %s", (pattern,))
                if cur.fetchone():
                    cur.execute(f"UPDATE {self.table} SET name = %s, date = %s, amount = %s, "
                                "comment = %s WHERE name LIKE %s", (*values, pattern))
                else:
                    cur.execute(f"INSERT INTO {self.table} (name, date, amount, comment, accounting) "
                                "VALUES (%s, %s, %s, %s, %s)", (*values, ACCOUNTING))
            conn.commit()
        finally:
            conn.close()
        with self._count:
            self.written.setdefault((int(deal["ID"]), deal["TITLE"]), time.time())

    def rows(self) -> list[tuple]:
        conn = connect(self.db_url)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT name, date, amount, comment, accounting FROM {self.table}")
                return [(None, *row) for row in cur.fetchall()]
        finally:
            conn.close()

    def drop(self) -> None:
        conn = connect(self.db_url)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self.table}")
            conn.commit()
        finally:
            conn.close()


class SeedServer:
    """waitress (defaults) serving :class:`SeedApp` on a free loopback port."""

    def __init__(self, webhook_url: str, *, handle_add: bool = False, path: str = "/handler") -> None:
        self.app = SeedApp(webhook_url, handle_add=handle_add)
        self.path = path
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.effective_port}{self.path}"

    def start(self) -> SeedServer:
        logging.getLogger("waitress").setLevel(logging.CRITICAL)  # the seed's 500s are expected
        self._server = create_server(self.app, host="127.0.0.1", port=0)
        self._thread = threading.Thread(target=self._server.run, name="seed-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        if self._thread is not None:
            self._thread.join(5)
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=5)
        self._server = None
        self.app.drop()

    def rows(self) -> list[tuple]:
        """(None, name, date, amount, comment, accounting) per row (no rowid in MySQL)."""
        return self.app.rows()

    def __enter__(self) -> SeedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def corrupted_rows(rows: list[tuple], portal_deals: dict[int, dict]) -> dict[str, int]:
    """Compare the seed's table with the portal: which deals are wrong or missing.

    A deal is *correct* when exactly one row carries its name and that row holds its data.
    ``corrupted`` counts rows whose content belongs to another deal than the one they were
    written for (the LIKE match overwrote them); ``missing`` counts deals without their row.
    """
    by_name: dict[str, list[tuple]] = {}
    for row in rows:
        by_name.setdefault(row[1], []).append(row)
    expected = {
        deal_id: deal_name(deal_id, deal["TITLE"]) for deal_id, deal in portal_deals.items() if deal
    }
    wanted = set(expected.values())
    corrupted = sum(1 for row in rows if row[1] not in wanted) + sum(
        len(found) - 1 for name, found in by_name.items() if name in wanted
    )
    missing = sum(1 for name in expected.values() if name not in by_name)
    return {"rows": len(rows), "corrupted": corrupted, "missing": missing}
