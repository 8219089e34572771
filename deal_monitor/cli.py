"""Command line: the headless service, admin commands, and the door to the desktop app.

``python main.py`` opens the window; ``--headless`` runs the core alone until SIGINT/SIGTERM;
subcommands (``status``, ``resync``) talk to the same state DB, so they work next to a
running instance.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import __version__, config, envconfig, instance, logformat, logs, paths
from .config import ConfigError, Settings
from .errors import DealMonitorError

log = logging.getLogger("deal_monitor")


def _global_options(parser: argparse.ArgumentParser, *, after_command: bool) -> None:
    """Options accepted before the subcommand and after it (``status --config x.toml``).

    After the subcommand their defaults are suppressed, so one given before is not reset.
    """
    default = {"default": argparse.SUPPRESS} if after_command else {}
    flag = {"default": argparse.SUPPRESS} if after_command else {"default": False}
    parser.add_argument("--config", type=Path, help="settings file (TOML)", **default)
    parser.add_argument("--lang", choices=["ru", "en"], help="interface language", **default)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging", **flag)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deal-monitor",
        description="Keeps a production database in step with Bitrix24 deals.",
    )
    parser.add_argument("--version", action="version", version=f"deal-monitor {__version__}")
    _global_options(parser, after_command=False)
    parser.add_argument("--headless", action="store_true", help="run the sync core without a window")
    parser.add_argument("--demo", action="store_true", help="start with the built-in portal simulator")
    parser.add_argument("--log-format", choices=logformat.FORMATS, default="text",
                        help="json: one JSON object per line (for journald, Docker, shippers)")
    parser.add_argument("--no-log-file", action="store_true",
                        help="log to the console only (the service manager keeps the log)")
    parser.add_argument("--wait-for-credentials", action="store_true",
                        help="headless: start without usable credentials and wait for them")
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, after_command=True)
    sub = parser.add_subparsers(dest="command", metavar="command")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, parents=[common])

    command("status", "print the state of the inbox and the last sync as JSON")
    resync = command("resync", "read deals again from the portal")
    resync.add_argument("ids", nargs="*", type=int, help="deal IDs")
    resync.add_argument("--all", action="store_true", help="every deal (resumable)")
    bind = command("bind", "app mode: bind deal events to listener.public_url")
    bind.add_argument("--offline", action="store_true", help="bind offline events instead")
    command("unbind", "app mode: remove this app's deal-event handlers")
    command("handlers", "app mode: list bound handlers (event.get)")
    preview = command("preview", "dry run: what syncing these deals would write")
    preview.add_argument("ids", nargs="*", type=int, help="deal IDs")
    preview.add_argument("--next", type=int, default=0, metavar="N",
                         help="the deals of the next N queued events")
    authorize = command("authorize", "app mode: sign in through the browser (or exchange a code)")
    authorize.add_argument("code", nargs="?", help="the code from the portal's redirect")
    command("check", "connection doctor: check every part, say what to do")
    backup = sub.add_parser("backup", help="copy the SQLite state DB (safe while running)")
    backup.add_argument("path", type=Path, help="file (or folder) for the copy")
    return parser


def load_settings(path: Path | None) -> Settings:
    path = path or envconfig.config_path()  # DEAL_MONITOR_CONFIG
    if path is None:
        default = paths.default_config_file()
        path = default if default.exists() else None
    return config.load(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.headless and not args.command:
        from .gui.app import run_gui  # the only place the core reaches for Qt

        return run_gui(args)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    level = logging.DEBUG if args.verbose else logging.INFO
    try:
        data_dir = paths.data_dir(settings.storage.data_dir)
        # only the long-running instance writes (and rotates) the log file; an admin command
        # next to it logs to the console, so two processes never rotate one file
        log_dir = None if (args.no_log_file or args.command) else data_dir / "logs"
        logs.setup(log_dir, level=level, fmt=args.log_format)
        if args.command == "status":
            return _status(settings)
        if args.command == "resync" and not args.all:
            return _resync(settings, args)
        if args.command == "preview" and not args.ids and args.next <= 0:
            parser.error("preview needs deal IDs or --next N")
        if args.command == "check":  # reads only: works next to a running instance
            return _check(settings)
        if args.command == "preview":
            _open_state(settings).engine.dispose()  # reads the state: refuse an old schema
            return _preview(settings, args.ids, args.next)
        if args.command == "backup":  # SQLite's online backup: safe next to a running instance
            from .backup import backup_state
            from .service import locations

            print(f"state DB copied to {backup_state(locations(settings).state_url, args.path)}")
            return 0
        if not args.command:
            return run_headless(settings, wait_for_credentials=args.wait_for_credentials)
        # the other commands run a worker on the inbox: one instance per data folder
        with instance.for_settings(settings):
            if args.command == "resync":
                return _resync(settings, args)
            return _app_command(settings, args)
    except DealMonitorError as exc:
        print(f"error: {exc} {exc.hint}".strip(), file=sys.stderr)
        return EXIT_ALREADY_RUNNING if isinstance(exc, instance.AlreadyRunning) else 1


def _secret_store():
    from .credentials import KeyringStore, MemoryStore, SecretStoreUnavailable

    try:
        return KeyringStore()
    except SecretStoreUnavailable as exc:
        log.warning(
            "%s: secrets are kept for this session only and not stored; give them in the "
            "config file or DEAL_MONITOR_* environment variables", exc
        )
        return MemoryStore()


def _token_store(settings: Settings):
    """OAuth tokens: the keyring, or an owner-only file in the data folder where none exists."""
    from .credentials import open_token_store

    return open_token_store(paths.data_dir(settings.storage.data_dir))


def run_headless(settings: Settings, stop: threading.Event | None = None,
                 wait_for_credentials: bool = False) -> int:
    """Run until SIGINT/SIGTERM (or ``stop``), then shut down cleanly.

    Without usable credentials it refuses to start (exit 2, one line) — a server that says
    "ready" and then refuses every event helps nobody — unless told to wait for them."""
    stop = stop or threading.Event()

    def _on_signal(signum, _frame) -> None:
        if stop.is_set():
            # a second signal: the operator does not want to wait for the pass in progress.
            # Nothing is lost: accepted events are committed, an unfinished pass is redone.
            log.warning("signal %s again: exiting now", signum)
            logging.shutdown()
            os._exit(EXIT_FORCED)
        log.info("signal %s: stopping (send it again to exit at once)", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
    with instance.for_settings(settings):  # raises AlreadyRunning
        return _run_until_stopped(settings, stop, wait_for_credentials)


def _run_until_stopped(settings: Settings, stop: threading.Event,
                       wait_for_credentials: bool = False) -> int:
    from .service import Monitor

    tokens = _token_store(settings) if settings.portal.client_id else None
    monitor = Monitor(settings, secrets=_secret_store(), tokens=tokens)
    missing = "" if wait_for_credentials else missing_credentials(monitor)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    monitor.start()
    status = monitor.status()
    if status.listening:
        log.info("ready: events to %s", status.listen_url)
    elif status.listen_error:
        log.error("listener not running: %s", status.listen_error)
        monitor.stop()
        return 3
    try:
        while not stop.wait(1.0):
            pass
    finally:
        monitor.stop()
        log.info("stopped")
    return 0


EXIT_FORCED = 130
EXIT_ALREADY_RUNNING = 4


def missing_credentials(monitor) -> str:
    """What keeps this instance from doing its job ("" when nothing does)."""
    monitor.open_client()
    try:
        if not monitor.has_credentials():
            return ("no usable portal credentials: set portal.webhook_url (or "
                    "DEAL_MONITOR_WEBHOOK_URL), or authorize the app; --wait-for-credentials "
                    "starts anyway")
        if monitor.listen and not monitor.application_token and monitor.oauth is None:
            # pull mode (an inbound webhook alone) is complete: changes come by polling
            log.warning("no application token: pushed events are refused; changes come in "
                        "by polling and reconciliation")
        return ""
    finally:
        monitor.client.close()

WEBHOOK_BIND_HELP = (
    "An inbound webhook cannot bind events (Bitrix24 answers WRONG_AUTH_TYPE). In the portal open "
    "Developer resources → Other → Outgoing webhook, pick ONCRMDEALADD, ONCRMDEALUPDATE and "
    "ONCRMDEALDELETE, enter {url} as the handler, and put the application token it shows into "
    "portal.application_token."
)


def _app_command(settings: Settings, args: argparse.Namespace) -> int:
    """bind / unbind / handlers / authorize: one short-lived portal client."""
    from .service import Monitor

    if not settings.portal.client_id and args.command != "handlers":
        url = settings.listener.public_url or "<public URL of the listener>"
        print(WEBHOOK_BIND_HELP.format(url=url))
        return 2 if args.command != "unbind" else 0
    if args.command == "authorize":
        return _authorize(settings, args.code)
    monitor = Monitor(settings, secrets=_secret_store(), listen=False,
                      tokens=_token_store(settings))
    # only the portal client: no worker, and no offline puller reserving a batch next to a
    # running instance's
    monitor.open_client()
    try:
        if args.command == "bind":
            for line in monitor.bind_handlers(offline=args.offline):
                print(line)
        elif args.command == "unbind":
            print(f"removed {monitor.unbind_handlers()} handler(s)")
        else:
            for handler in monitor.handlers():
                print(json.dumps(handler, ensure_ascii=False))
    finally:
        monitor.stop()
    return 0


SIGN_IN_MINUTES = 10


def _authorize(settings: Settings, code: str | None) -> int:
    """Without a code: the browser sign-in — print the address, wait for the portal's redirect
    on 127.0.0.1 (up to ten minutes). With a code: exchange it (the manual way)."""
    from .service import Monitor

    monitor = Monitor(settings, secrets=_secret_store(), listen=False,
                      tokens=_token_store(settings))
    try:
        oauth = monitor.oauth_auth()
        if not oauth.has_client_secret():
            print("error: the client secret is missing: set DEAL_MONITOR_CLIENT_SECRET or "
                  "portal.client_secret (or store it from the window)", file=sys.stderr)
            return 2
        if code:
            monitor.authorize(code)
        else:
            url = monitor.start_sign_in()
            print("Open this address in a browser, sign in to Bitrix24 and approve the app "
                  f"(waiting up to {SIGN_IN_MINUTES} minutes):\n{url}", flush=True)
            result = monitor.wait_sign_in(SIGN_IN_MINUTES * 60.0)
            if not result.ok:
                print(f"error: sign-in failed: {result.error} ({result.detail})", file=sys.stderr)
                return 1
        print(f"signed in; {monitor.token_storage()}")
        return 0
    finally:
        monitor.stop()


def _check(settings: Settings) -> int:
    """The connection doctor: one line per check; exit 0 all fine, 1 a problem found."""
    from .doctor import exit_code
    from .service import Monitor

    tokens = _token_store(settings) if settings.portal.client_id else None
    monitor = Monitor(settings, secrets=_secret_store(), listen=False, tokens=tokens)
    try:
        findings = monitor.diagnose(lambda finding: print(finding.line(), flush=True))
    finally:
        monitor.stop()
    return exit_code(findings)


DECISION_TEXT = {
    "insert": "insert (a new row)",
    "update": "update",
    "no_change": "no change",
    "keep_newer": "keep: the target already holds newer data",
    "skip_stage": "skip: the stage is filtered out",
    "deleted": "deleted in the portal: the row would be marked deleted",
    "error": "cannot be read",
}


def _preview(settings: Settings, ids: list[int], next_events: int = 0) -> int:
    """Print, per deal, the row that would be written and how it differs from the target.

    Only the portal client and the target's reflection are opened: no worker, no listener,
    nothing created or written.
    """
    from .service import Monitor

    monitor = Monitor(settings, secrets=_secret_store(), listen=False)
    try:
        if next_events > 0:
            queued = monitor.queued_deal_ids(next_events)
            if not queued:
                print("no queued events")
            ids = [*ids, *queued]
        for result in monitor.dry_run(ids):
            decision = DECISION_TEXT[result.decision]
            preview = result.preview
            if preview is None:
                print(f"deal {result.deal_id}: {decision} ({result.problem})")
                continue
            print(f"deal {result.deal_id} -> table {preview.table}: {decision}")
            for column, old, new in preview.changes:
                was = "" if preview.current is None else f"{old!s} -> "
                print(f"  {column}: {was}{new!s}")
            if preview.products or preview.current_products:
                print(f"  product rows: {len(preview.current_products)} -> {len(preview.products)}")
            for problem in preview.problems:
                print(f"  {'refused' if problem.error else 'warning'}: {problem.text}")
    finally:
        monitor.stop()
    return 0


def _open_state(settings: Settings):
    """The state DB for a command that only reads it or adds inbox rows: it works next to a
    running instance, but upgrades the schema only when no instance holds the data folder."""
    from .service import locations
    from .store import migrations
    from .store.engine import make_engine
    from .store.state import StateStore

    state = StateStore(make_engine(locations(settings).state_url))
    if migrations.needs_upgrade(state.engine):
        lock = instance.for_settings(settings)
        if not lock.acquire():
            state.engine.dispose()
            raise DealMonitorError(
                "the state database has an older schema and a running Deal Monitor holds it",
                "Stop it and start this version once (it upgrades the database), then retry.")
        try:
            state.create()
        finally:
            lock.release()
    return state


def _status(settings: Settings) -> int:
    state = _open_state(settings)
    counts = state.count_by_status()
    last = state.last_event_at()
    print(
        json.dumps(
            {
                "inbox_depth": counts.get("queued", 0),
                "by_status": counts,
                "deals": len(state.deals()),
                "last_event_at": last.isoformat() if last else None,
            },
            indent=2,
        )
    )
    state.engine.dispose()
    return 0


def _resync(settings: Settings, args: argparse.Namespace) -> int:
    from .model import Source
    from .store.state import NewEvent

    if not args.all and not args.ids:
        print("error: name deal IDs or --all", file=sys.stderr)
        return 2
    if args.all:
        return _resync_all(settings)
    state = _open_state(settings)
    stored = state.add_events(
        [NewEvent(event="RESYNC", deal_id=i, source=Source.MANUAL) for i in args.ids]
    )
    print(f"queued {len(stored)} deal(s); a running instance syncs them within seconds")
    state.engine.dispose()
    return 0


def _resync_all(settings: Settings) -> int:
    """List every deal into the inbox with progress; Ctrl+C stops, a rerun resumes."""
    from .model import NullSink, Progress
    from .service import Monitor

    done = threading.Event()

    class TerminalProgress(NullSink):
        def progress_changed(self, progress: Progress) -> None:
            total = f"/{progress.total}" if progress.total else ""
            eta = f", ETA {progress.eta_seconds:.0f} s" if progress.eta_seconds else ""
            print(f"\rresync: {progress.done}{total} deals listed{eta}   ", end="", flush=True)
            if progress.finished:
                print()
                done.set()

    monitor = Monitor(settings, sink=TerminalProgress(), secrets=_secret_store(), listen=False)
    monitor.start()
    monitor.resync_all()
    try:
        while not done.wait(0.5):
            pass
        while monitor.status().inbox_depth:
            print(f"\rsyncing: {monitor.status().inbox_depth} left   ", end="", flush=True)
            if done.wait(1.0) and not monitor.status().inbox_depth:
                break
        print("\rresync finished            ")
    except KeyboardInterrupt:
        monitor.cancel_job()
        print("\ninterrupted; run the same command again to resume")
    finally:
        monitor.stop()
    return 0
