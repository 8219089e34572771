"""The seed's approach, rebuilt faithfully as a comparison point (not product code).

What the seed article did, per event POST, synchronously inside the HTTP request:

1. read the form (``parse_qs``; no token check — the seed's hole 2),
2. ``crm.deal.get`` through ``requests`` (a new connection per call, no pacing, no retry),
3. open the SQLite file (library defaults: rollback journal, ``synchronous=FULL``),
   ``SELECT ... WHERE name LIKE 'Сделка №<id>%'`` on ``deal(name, date, amount, comment,
   accounting)``, then ``UPDATE ... WHERE name LIKE`` the same pattern when a row matched,
   else ``INSERT``, with ``name = "Сделка №<ID> — <TITLE>"``; commit,
4. answer 200 — or 500 when anything above raised (a refused REST call, a locked database):
   Bitrix24 never resends, so that event is lost.

Served by waitress with its defaults (4 threads), against the same simulator the product
uses. The name-prefix match is the seed's correctness bug: ``'Сделка №1%'`` also matches
deals 10..19, 100..199 and so on.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from urllib.parse import parse_qs

import requests
from waitress import wasyncore
from waitress.server import create_server

SCHEMA = "CREATE TABLE IF NOT EXISTS deal (name TEXT, date TEXT, amount REAL, comment TEXT, accounting INTEGER)"


def deal_name(deal_id: int | str, title: str) -> str:
    return f"Сделка №{deal_id} — {title}"


class SeedApp:
    """The seed's WSGI handler."""

    def __init__(self, webhook_url: str, db_path: Path) -> None:
        self.webhook_url = webhook_url.rstrip("/") + "/"
        self.db_path = str(db_path)
        self.handled = 0
        self.failed = 0
        self._count = threading.Lock()
        with sqlite3.connect(self.db_path) as conn:
            conn.execute(SCHEMA)

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"seed"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8"))
            event = form["event"][0]
            if event in ("ONCRMDEALADD", "ONCRMDEALUPDATE"):
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
        values = (name, deal.get("BEGINDATE"), float(deal.get("OPPORTUNITY") or 0), deal.get("COMMENTS") or "")
        pattern = f"Сделка №{deal['ID']}%"
        conn = sqlite3.connect(self.db_path)
        try:
            cur = conn.cursor()
            cur.execute("SELECT rowid FROM deal WHERE name LIKE ?", (pattern,))
            if cur.fetchone():
                cur.execute(
                    "UPDATE deal SET name = ?, date = ?, amount = ?, comment = ? WHERE name LIKE ?",
                    (*values, pattern),
                )
            else:
                cur.execute(
                    "INSERT INTO deal (name, date, amount, comment, accounting) VALUES (?, ?, ?, ?, 0)",
                    values,
                )
            conn.commit()
        finally:
            conn.close()


class SeedServer:
    """waitress (defaults) serving :class:`SeedApp` on a free loopback port."""

    def __init__(self, webhook_url: str, db_path: Path, path: str = "/handler") -> None:
        self.app = SeedApp(webhook_url, db_path)
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

    def rows(self) -> list[tuple]:
        with sqlite3.connect(self.app.db_path) as conn:
            return conn.execute("SELECT rowid, name, date, amount, comment, accounting FROM deal").fetchall()

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
