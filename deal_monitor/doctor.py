"""The connection doctor: one plain-language line per thing that must work, with what to do.

``diagnose()`` (the window's "Check connection" button, ``python main.py --config FILE
check``) looks at the settings, the secrets, the portal (reachability, the crm scope, bound
handlers, the offline queue, ``event.test``), the last event and the last poll, the target and
state databases and the listener's port. Nothing is written anywhere: the target database is
checked by reflection and privilege queries only, the state DB with reads.

Each :class:`Finding` carries a stable ``code`` and ``params`` and the English ``text`` and
``action`` (the CLI prints those: all of the CLI speaks English). The window shows a finding in
its own language by the code, so every value it fills in comes as data as well: numbers as
numbers (``seconds``, ``ago_seconds``), kinds as keys (``who``, ``storage_kind``,
``missing_kind``), addresses as they are (``public_url``, ``storage_place``); the English
words of a value (``storage``, ``ago``, ``missing``) are only for the CLI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import connection
from .bitrix.events import DEAL_EVENTS
from .config import Settings
from .errors import BitrixError, DealMonitorError
from .model import EventStatus

if TYPE_CHECKING:  # pragma: no cover
    from .service import Monitor

log = logging.getLogger(__name__)

OK = "ok"
INFO = "info"
WARNING = "warning"
PROBLEM = "problem"

# code -> (text, action); {placeholders} come from the finding's params
TEXTS: dict[str, tuple[str, str]] = {
    "config.ok": ("Settings are valid ({mode_text}).", ""),
    "config.none": ("No portal is configured.",
                    "Enter an inbound webhook URL, or the address, client ID and secret of a local "
                    "application."),
    "config.private_http": ("Events reach this computer over plain http:// at {url} (a private "
                            "address; allowed by portal.allow_private_http).",
                            "Use it only inside a trusted network; anyone on it can read the "
                            "application token."),
    "secret.webhook_ok": ("The inbound webhook address is set.", ""),
    "secret.client_secret_missing": ("The application's client secret is missing.",
                                     "Enter it in the settings, or set DEAL_MONITOR_CLIENT_SECRET "
                                     "or portal.client_secret on a server."),
    "secret.client_secret_ok": ("The application's client secret is set.", ""),
    "secret.token_missing": ("Push mode needs the outgoing webhook's application token.",
                             "Copy the token the portal shows for the outgoing webhook into "
                             "portal.application_token."),
    "auth.signed_in": ("Signed in to the portal; {storage}.", ""),
    "auth.sign_in_needed": ("Not signed in to the portal ({reason}).",
                            "Press \"Sign in with Bitrix24\" (or run: main.py --config FILE "
                            "authorize) and approve the application."),
    "portal.ok": ("The portal answers at {domain} ({seconds} s).", ""),
    "portal.unreachable": ("The portal does not answer: {error}.",
                           "Check the address and this computer's internet connection."),
    "portal.refused": ("The portal refused the credentials: {error}.",
                       "Check the webhook address (it changes when the webhook is edited) or "
                       "sign in again."),
    "portal.no_crm": ("The {who} has no access to CRM (scopes: {scopes}).",
                      "Edit the webhook or application in the portal and tick the CRM scope."),
    "portal.crm_ok": ("CRM access is granted (scopes: {scopes}).", ""),
    "handlers.offline_ok": ("Offline events are bound for {events}.", ""),
    "handlers.offline_missing": ("Offline events are not bound for {events}.",
                                 "Press \"Bind offline events\" (or run: main.py --config FILE "
                                 "bind --offline); it needs a portal administrator."),
    "handlers.online_ok": ("Events are bound to {url}.", ""),
    "handlers.online_missing": ("Events are not bound to {url} for {events}.",
                                "Run: main.py --config FILE bind (the portal must reach that "
                                "address)."),
    "handlers.unknown": ("The bound handlers could not be read: {error}.", ""),
    "offline.queue": ("{count} change(s) wait in the portal's offline queue.", ""),
    "offline.queue_unknown": ("The offline queue could not be read: {error}.", ""),
    "event_test.ok": ("event.test was accepted by the portal.", ""),
    "event_test.failed": ("event.test failed: {error}.",
                          "Check that the application is installed and active."),
    "events.last": ("The last event came {ago} ago from {source}{addr}.", ""),
    "events.none": ("No event has arrived yet.", ""),
    "events.expected_none": ("No pushed event has arrived yet.",
                             "Check the outgoing webhook's handler address: the portal must "
                             "reach {url} from the internet (or your LAN for an on-premise "
                             "portal)."),
    "poll.last": ("The last change poll ran at {at} (every {interval} s).", ""),
    "poll.never": ("The change poll has not run yet (every {interval} s).",
                   "Start the app; the first poll follows the start-up reconciliation."),
    "poll.off": ("The change poll is off (sync.poll_seconds = 0): changes come in only with "
                 "reconciliation every {minutes} min.",
                 "Set sync.poll_seconds (10 is a good start)."),
    "target.ok": ("The target database answers; table {table} can be written.", ""),
    "target.will_create": ("The target database answers; table {table} does not exist yet and "
                           "will be created.", ""),
    "target.unreachable": ("The target database does not answer: {error}.",
                           "Check target.url, the server, the user and the password."),
    "target.no_table": ("Table {table} does not exist in the target database.",
                        "Create it, or choose the default preset, which creates its own."),
    "target.mapping": ("The mapping does not fit table {table}: {error}.",
                       "Fix the mapping on the Production table page."),
    "target.read_only": ("The target database user cannot write table {table} ({missing}).",
                         "Grant INSERT and UPDATE on it (CREATE where the table is created)."),
    "state.ok": ("The local state database is fine ({queued} queued, {failed} failed).", ""),
    "state.not_created": ("The local state database does not exist yet (created at the first "
                          "start).", ""),
    "state.failed": ("The local state database has a problem: {error}.",
                     "Check the data folder's disk space and permissions."),
    "listener.running": ("The event listener runs at {url}.", ""),
    "listener.port_free": ("Port {port} on {host} is free for the event listener.", ""),
    "listener.port_busy": ("The event listener cannot use {host}:{port}: {error}.",
                           "Stop the other program on that port or choose another port."),
    "listener.off": ("The event listener is switched off (listener.enabled = false).", ""),
}

# target.read_only: what stops the writes, as a key the window words in its language
# ("privileges" when ``missing`` lists the privileges the user lacks)
MISSING_KINDS = {
    "folder": "folder",
    "file is read-only": "file",
    "the server is a read-only replica": "replica",
    "the server is read-only": "server",
}

MODE_TEXT = {
    connection.PULL: "pull mode: inbound webhook, changes polled",
    connection.PUSH: "push mode: inbound and outgoing webhook",
    connection.APP: "local application",
    connection.APP_OFFLINE: "local application with offline events",
    connection.NONE: "nothing configured",
}


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    code: str
    level: str  # ok | info | warning | problem
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return TEXTS[self.code][0].format_map(_Missing(self.params))

    @property
    def action(self) -> str:
        return TEXTS[self.code][1].format_map(_Missing(self.params))

    def line(self) -> str:
        mark = {OK: "ok", INFO: "--", WARNING: "!!", PROBLEM: "XX"}[self.level]
        action = f" -> {self.action}" if self.action and self.level in (WARNING, PROBLEM) else ""
        return f"[{mark}] {self.text}{action}"


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def exit_code(findings: list[Finding]) -> int:
    """0 when nothing is a problem, 1 otherwise (the CLI's ``check``)."""
    return 1 if any(f.level == PROBLEM for f in findings) else 0


def diagnose(monitor: Monitor, on_finding: Callable[[Finding], None] | None = None
             ) -> list[Finding]:
    """Every check, in order. ``monitor`` may be running (the window) or not (the CLI: only
    its client is opened). ``on_finding`` sees each line as soon as it is known (the dialog
    fills in while slow checks run). Blocking: call it off the GUI thread."""
    findings = []
    for finding in _checks(monitor):
        findings.append(finding)
        if on_finding is not None:
            on_finding(finding)
    return findings


def _checks(monitor: Monitor) -> Iterator[Finding]:
    settings = monitor.settings
    current = monitor.connection_mode()
    yield from _config_checks(monitor, settings, current)
    if current == connection.NONE:
        return
    if monitor.client is None:
        monitor.open_client()
    if monitor.oauth is not None and monitor.oauth.needs_reauthorization:
        # no token to ask the portal with: "sign in" above is the one thing to do
        yield from _local_checks(monitor, current)
        return
    reachable = False
    for finding in _portal_checks(monitor, current):
        reachable = reachable or finding.code == "portal.ok"
        yield finding
    if reachable and current in (connection.APP, connection.APP_OFFLINE):
        yield from _app_checks(monitor, settings, current)
    yield from _local_checks(monitor, current)


def _local_checks(monitor: Monitor, current: str) -> Iterator[Finding]:
    yield from _event_checks(monitor, monitor.settings, current)
    yield _target_check(monitor)
    yield _state_check(monitor)
    yield _listener_check(monitor, current)


def _config_checks(monitor: Monitor, settings: Settings, current: str) -> Iterator[Finding]:
    if current == connection.NONE:
        yield Finding("config.none", PROBLEM)
        return
    yield Finding("config.ok", OK, {"mode": current, "mode_text": MODE_TEXT[current]})
    public = settings.listener.public_url
    if public.startswith("http://"):
        yield Finding("config.private_http", WARNING, {"url": public})
    if current in (connection.PULL, connection.PUSH):
        yield Finding("secret.webhook_ok", OK)
        return
    oauth = monitor.oauth_auth()
    if not oauth.has_client_secret():
        yield Finding("secret.client_secret_missing", PROBLEM)
    else:
        yield Finding("secret.client_secret_ok", OK)
    if oauth.needs_reauthorization:
        yield Finding("auth.sign_in_needed", PROBLEM,
                      {"reason": oauth.reason or "not authorized yet"})
    else:
        yield Finding("auth.signed_in", OK, {"storage": monitor.token_storage(),
                                             **token_place(monitor.tokens)})


def _portal_checks(monitor: Monitor, current: str) -> Iterator[Finding]:
    client = monitor.client
    assert client is not None
    domain = settings_domain(monitor.settings)
    started = datetime.now(UTC)
    try:
        reply = client.call("scope")
        scopes = [str(s) for s in reply.result] if isinstance(reply.result, list) else []
    except BitrixError as exc:
        if exc.code in BitrixError.AUTH_CODES or exc.code in ("invalid_grant", "expired_token"):
            yield Finding("portal.refused", PROBLEM, {"error": _short(exc)})
            return
        if exc.code == "ERROR_METHOD_NOT_FOUND":
            scopes = []
        else:
            yield Finding("portal.unreachable", PROBLEM, {"error": _short(exc)})
            return
    seconds = (datetime.now(UTC) - started).total_seconds()
    yield Finding("portal.ok", OK, {"domain": domain, "seconds": f"{seconds:.1f}"})
    who = "webhook" if current in (connection.PULL, connection.PUSH) else "application"
    if scopes and "crm" not in scopes:
        yield Finding("portal.no_crm", PROBLEM, {"who": who, "scopes": ", ".join(scopes)})
        return
    if not scopes:  # no `scope` method answered: try a crm call itself
        try:
            client.call("crm.deal.fields")
        except BitrixError as exc:
            yield Finding("portal.no_crm", PROBLEM, {"who": who, "scopes": _short(exc)})
            return
        scopes = ["crm"]
    yield Finding("portal.crm_ok", OK, {"scopes": ", ".join(scopes)})


def _app_checks(monitor: Monitor, settings: Settings, current: str) -> Iterator[Finding]:
    client = monitor.client
    assert client is not None
    try:
        handlers = monitor.handlers()
    except BitrixError as exc:
        yield Finding("handlers.unknown", WARNING, {"error": _short(exc)})
        handlers = None
    if handlers is not None:
        if current == connection.APP_OFFLINE:
            bound = {str(h.get("event", "")).upper() for h in handlers
                     if str(h.get("offline")) == "1"
                     and str(h.get("connector_id") or "") == settings.portal.auth_connector}
            missing = sorted(DEAL_EVENTS - bound)
            if missing:
                yield Finding("handlers.offline_missing", PROBLEM, {"events": ", ".join(missing)})
            else:
                yield Finding("handlers.offline_ok", OK, {"events": ", ".join(sorted(bound))})
        elif settings.listener.public_url:
            url = settings.listener.public_url
            bound = {str(h.get("event", "")).upper() for h in handlers
                     if str(h.get("offline")) != "1" and h.get("handler") == url}
            missing = sorted(DEAL_EVENTS - bound)
            if missing:
                yield Finding("handlers.online_missing", PROBLEM,
                              {"url": url, "events": ", ".join(missing)})
            else:
                yield Finding("handlers.online_ok", OK, {"url": url})
    if current == connection.APP_OFFLINE:
        try:
            params: dict[str, Any] = {}
            if settings.portal.auth_connector:
                params["auth_connector"] = settings.portal.auth_connector
            reply = client.call("event.offline.list", params)
            count = reply.total if reply.total is not None else len(reply.result or [])
            yield Finding("offline.queue", OK if count < 1000 else WARNING, {"count": str(count)})
        except BitrixError as exc:
            yield Finding("offline.queue_unknown", WARNING, {"error": _short(exc)})
    try:
        client.call("event.test")
        yield Finding("event_test.ok", OK)
    except BitrixError as exc:
        yield Finding("event_test.failed", WARNING, {"error": _short(exc)})


def _event_checks(monitor: Monitor, settings: Settings, current: str) -> Iterator[Finding]:
    state = monitor.state_store()
    last = None
    if state is not None:
        try:
            records = state.recent_events(limit=50)
            last = next((r for r in records if r.status != EventStatus.REJECTED), None)
        except Exception as exc:  # reported by the state check below
            log.debug("doctor: recent events unreadable: %s", exc)
    if last is not None:
        seconds = _seconds_ago(last.received_at)
        addr = f" ({last.remote_addr})" if last.remote_addr else ""
        yield Finding("events.last", INFO, {"ago": _ago(seconds), "ago_seconds": str(seconds),
                                            "source": str(last.source.value),
                                            "addr": addr, "event": last.event})
    elif current == connection.PUSH:
        public = settings.listener.public_url
        yield Finding("events.expected_none", WARNING,
                      {"url": public or "the listener", "public_url": public})
    else:
        yield Finding("events.none", INFO)
    interval = connection.poll_seconds(settings, current)
    if current == connection.PULL or interval > 0:
        if interval <= 0:
            yield Finding("poll.off", WARNING,
                          {"minutes": f"{settings.sync.reconcile_minutes:g}"})
            return
        at = monitor.last_poll()
        if at:
            yield Finding("poll.last", OK, {"at": at, "interval": f"{interval:g}"})
        else:
            yield Finding("poll.never", INFO, {"interval": f"{interval:g}"})


def _target_check(monitor: Monitor) -> Finding:
    return inspect_target(monitor)


def inspect_target(monitor: Monitor) -> Finding:
    """Reachable, the table there and fitting the mapping, and writable — without writing:
    reflection and the database's own privilege answers only (SQLite: file permissions)."""
    from sqlalchemy import create_engine, inspect

    from .service import locations, make_writer
    from .store.engine import is_sqlite, make_engine

    settings = monitor.settings
    url = locations(settings).target_url
    table = settings.target.table
    params = {"table": table}
    if is_sqlite(url):
        path = Path(make_url_path(url))
        if not path.exists():
            if not sqlite_writable(path):
                return Finding("target.read_only", PROBLEM,
                               {**params, "missing": "folder", "missing_kind": "folder"})
            if settings.mapping.preset != "default":
                return Finding("target.no_table", PROBLEM, params)
            return Finding("target.will_create", OK, params)
        # read-only: connecting with make_engine would set WAL pragmas, a write
        engine = create_engine(f"sqlite:///file:{path.as_posix()}?mode=ro&uri=true")
    else:
        try:
            engine = make_engine(url, synchronous="NORMAL")
        except Exception as exc:  # bad URL, missing driver
            return Finding("target.unreachable", PROBLEM, {**params, "error": _short(exc)})
    try:
        try:
            exists = inspect(engine).has_table(table)
        except Exception as exc:
            return Finding("target.unreachable", PROBLEM, {**params, "error": _short(exc)})
        if monitor.client is None:
            monitor.open_client()
        writer = make_writer(settings, engine, monitor.client, monitor.pipelines)
        try:
            writer.prepare(create=False)
        except DealMonitorError as exc:
            code = "target.no_table" if not exists else "target.mapping"
            return Finding(code, PROBLEM, {**params, "error": _short(exc)})
        if is_sqlite(url):
            ok = sqlite_writable(path)
            missing = "" if ok else "file is read-only"
        else:
            missing = _missing_privileges(engine, table, exists)
        if missing:
            return Finding("target.read_only", PROBLEM,
                           {**params, "missing": missing, "missing_kind": MISSING_KINDS.get(
                               missing, "privileges")})
        return Finding("target.ok" if exists else "target.will_create", OK, params)
    finally:
        engine.dispose()


def make_url_path(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or ""


def _missing_privileges(engine, table: str, exists: bool) -> str:
    """The privileges the app needs and the database says this user lacks ("" = none)."""
    from sqlalchemy import text

    backend = engine.dialect.name
    with engine.connect() as conn:
        if backend == "postgresql":
            if conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                return "the server is a read-only replica"
            if not exists:
                ok = conn.execute(text(
                    "SELECT has_schema_privilege(current_schema(), 'CREATE')")).scalar()
                return "" if ok else "CREATE"
            lacking = [p for p in ("INSERT", "UPDATE", "SELECT") if not conn.execute(
                text("SELECT has_table_privilege(CAST(:t AS text), :p)"), {"t": table, "p": p}
            ).scalar()]
            return ", ".join(lacking)
        if backend in ("mysql", "mariadb"):
            if conn.execute(text("SELECT @@global.read_only")).scalar():
                return "the server is read-only"
            grantee = ("CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", "
                       "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")")
            rows = conn.execute(text(
                f"SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
                f"WHERE GRANTEE = {grantee} "
                f"UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
                f"WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = DATABASE() "
                f"UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES "
                f"WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
            ), {"t": table}).scalars().all()
            have = {str(r).upper() for r in rows}
            needed = ("INSERT", "UPDATE", "SELECT") if exists else ("CREATE",)
            return ", ".join(p for p in needed if p not in have)
    return ""  # other databases: reflection worked, privileges are not asked


def _state_check(monitor: Monitor) -> Finding:
    try:
        state = monitor.state_store()
        if state is None:
            return Finding("state.not_created", INFO)
        if not state.integrity_ok():
            return Finding("state.failed", PROBLEM, {"error": "integrity check failed"})
        return Finding("state.ok", OK, {"queued": str(state.inbox_depth()),
                                        "failed": str(state.failed_count())})
    except Exception as exc:
        return Finding("state.failed", PROBLEM, {"error": _short(exc)})


def _listener_check(monitor: Monitor, current: str) -> Finding:
    from .service import check_listen

    ls = monitor.settings.listener
    if monitor.listener is not None and monitor.listener.running:
        return Finding("listener.running", OK, {"url": monitor.status().listen_url})
    if not ls.enabled:
        return Finding("listener.off", INFO)
    error = check_listen(ls.host, ls.port)
    if error:
        return Finding("listener.port_busy", PROBLEM,
                       {"host": ls.host, "port": str(ls.port), "error": error})
    return Finding("listener.port_free", OK, {"host": ls.host, "port": str(ls.port)})


# -- helpers ------------------------------------------------------------------------------------
def settings_domain(settings: Settings) -> str:
    return settings.portal.domain or "?"


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def token_place(tokens: object) -> dict[str, str]:
    """Where the OAuth tokens are, as data: ``storage_kind`` keyring | file | memory and
    ``storage_place`` (the keyring's backend, the file's path)."""
    from .credentials import FileStore, KeyringStore

    if isinstance(tokens, KeyringStore):
        return {"storage_kind": "keyring", "storage_place": str(tokens.backend)}
    if isinstance(tokens, FileStore):
        return {"storage_kind": "file", "storage_place": str(tokens.path)}
    return {"storage_kind": "memory", "storage_place": ""}


def _seconds_ago(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, int((datetime.now(UTC) - moment).total_seconds()))


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def sqlite_writable(path: Path) -> bool:
    """Whether this user may write the SQLite file (or create it in its folder)."""
    if path.exists():
        return os.access(path, os.W_OK)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return os.access(parent, os.W_OK)
