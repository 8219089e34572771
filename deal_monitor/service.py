"""Monitor: builds the core from Settings, starts and stops it, and is what the GUI and CLI call.

Start order: state DB, target DB, REST client, worker, listener, scheduler; stop in reverse
(the listener first, so nothing new arrives while the rest winds down). Queued work that is not
finished at stop stays in the inbox for the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DatabaseError

from . import config, connection, envconfig, faultpoints, metrics, paths
from .anomalies import Anomalies, ts_skewed
from .bitrix.client import BitrixClient, LeakyBucket, WebhookAuth
from .bitrix.events import APP_EVENTS, DEAL_EVENTS, IncomingEvent, Rejection, valid_member_id
from .bitrix.oauth import DEFAULT_OAUTH_SERVER, OAuthAuth
from .bitrix.stages import Pipeline, StageFilter, entity_id, parse_stage
from .config import Settings
from .credentials import MemoryStore, SecretStore, SecretStoreUnavailable, describe_store
from .errors import BitrixError, DealMonitorError, ListenerError, TargetError
from .health import CRITICAL, HealthBoard
from .listener.app import ListenerApp, Verification
from .listener.server import ListenerServer
from .logs import secrets as secret_registry
from .mapping.check import ColumnShape
from .model import (
    DealView,
    EventRecord,
    EventSink,
    EventStatus,
    FanoutSink,
    HistoryEntry,
    LogSink,
    Progress,
    Source,
    StatusSnapshot,
)
from .refusals import RefusalLog
from .store.engine import make_engine
from .store.mapped import MappedWriter
from .store.products import ProductWriter
from .store.shape import read_columns
from .store.state import NewEvent, StateStore
from .store.target import TargetWriter
from .supervisor import SupervisedThread
from .sync.dryrun import DryRun, dry_run
from .sync.installs import InstallQueueFull, InstallVerifier
from .sync.lookups import PortalLookups
from .sync.offline import OfflinePuller
from .sync.poller import WATERMARK_KEY as POLL_WATERMARK
from .sync.poller import ChangePoller
from .sync.reconciler import Reconciler
from .sync.retention import RetentionJob
from .sync.scheduler import Scheduler
from .sync.worker import SyncWorker, WorkerOptions

log = logging.getLogger(__name__)

SECRET_WEBHOOK = "webhook_url"
SECRET_APP_TOKEN = "application_token"
SECRET_PREVIOUS_TOKEN = "previous_application_token"  # the one rotated out, for a grace period
PREVIOUS_TOKEN_UNTIL = "previous_token_until"  # state key: end of the grace period (Unix time)
PINNED_MEMBER = "pinned_member_id"  # state key: <token fingerprint>:<member_id>
# unread events of one deal beyond which more are counted, not stored (a valid-token flood)
INTAKE_COALESCE_AT = 20
STATUS_INTERVAL = 0.25  # seconds: at most four status snapshots a second
RESYNC_CURSOR = "resync.cursor"


@dataclass(frozen=True)
class Locations:
    data_dir: Path
    state_url: str
    target_url: str


def locations(settings: Settings) -> Locations:
    data = paths.data_dir(settings.storage.data_dir)
    return Locations(
        data_dir=data,
        state_url=settings.storage.state_url or paths.sqlite_url(data / "state.db"),
        target_url=settings.target.url or paths.sqlite_url(data / "target.db"),
    )


def make_writer(settings: Settings, engine, client: BitrixClient,
                pipelines: Callable[[], list[Pipeline]]) -> TargetWriter | MappedWriter:
    """The target writer the settings' table and mapping describe (not prepared yet)."""
    mapping = config.mapping_of(settings)
    products = (
        ProductWriter(engine, mapping.product_table, mapping.product_columns,
                      *mapping.product_keys)
        if mapping.products
        else None
    )
    if mapping.preset == "default":
        return TargetWriter(engine, settings.target.table, products)
    return MappedWriter(engine, mapping, PortalLookups(client, pipelines), products)


def read_target_columns(url: str, table: str) -> list[ColumnShape] | None:
    """The target table's columns (None when it does not exist) — the mapping page's list."""
    engine = make_engine(url, synchronous="NORMAL")
    try:
        return read_columns(engine, table)
    finally:
        engine.dispose()


def _fingerprint(token: str) -> str:
    """A short hash that tells tokens apart without keeping one (for the member_id pin)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


class Monitor:
    """The whole sync core for one portal."""

    def __init__(
        self,
        settings: Settings,
        sink: EventSink | None = None,
        secrets: SecretStore | None = None,
        listen: bool = True,
        tokens: SecretStore | None = None,
    ) -> None:
        self.settings = settings
        self.sink = FanoutSink(LogSink())
        if sink is not None:
            self.sink.add(sink)
        self.secrets = secrets or MemoryStore()
        envconfig.use_secret_store(self.secrets)  # DB passwords kept in the keyring
        # OAuth tokens: the keyring, or where none exists an owner-only file (open_token_store)
        self.tokens = tokens or self.secrets
        self.listen = listen and settings.listener.enabled
        self.where = locations(settings)
        self.state: StateStore | None = None
        self.target: TargetWriter | None = None
        self.client: BitrixClient | None = None
        self.worker: SyncWorker | None = None
        self.listener: ListenerServer | None = None
        self.scheduler: Scheduler | None = None
        self.reconciler: Reconciler | None = None
        self.oauth: OAuthAuth | None = None
        self.offline: OfflinePuller | None = None
        self.retention: RetentionJob | None = None
        self.poller: ChangePoller | None = None
        self._signin = None  # the browser sign-in in progress (bitrix.signin.LoopbackSignIn)
        self._stage_filter = StageFilter(settings.sync.skip_stages)
        self.board = HealthBoard()  # per-component health: each clears only its own error
        self.intake_failures = 0
        self.installs: InstallVerifier | None = None
        self._last_sync_at: datetime | None = None
        self._last_event_at: datetime | None = None
        self._listen_error = ""
        self._job: threading.Thread | None = None
        self._job_cancel = threading.Event()
        self._held = False  # paused by the user (not merely for lack of credentials)
        self._secret_cache: dict[str, str] = {}
        self._intake_gap = False  # an event could not be stored: reconcile when we can
        self._pipelines: list[Pipeline] | None = None
        self._status_lock = threading.Lock()
        self._last_status_at = 0.0
        self._status_wanted = threading.Event()
        self._status_stop = threading.Event()
        self._status_thread: SupervisedThread | None = None
        self.anomalies = Anomalies()
        self.refusals = RefusalLog()
        self._previous_token = ""  # rotated out by a settings change, accepted until the time below
        self._previous_until = 0.0
        self._pinned_member = ""  # webhook mode without member_id: learnt from the first event
        self.started = False

    # -- secrets -------------------------------------------------------------------------
    def _secret(self, name: str, from_settings: str) -> str:
        """A secret from the settings, else from the store — read once and kept, because a
        locked keyring answers slowly and the listener asks on every request."""
        if from_settings:
            secret_registry.add(from_settings)
            return from_settings
        if name not in self._secret_cache:
            try:
                value = self.secrets.get(name) or ""
            except SecretStoreUnavailable as exc:
                log.warning("secret store unavailable: %s", exc)
                value = ""
            secret_registry.add(value)
            self._secret_cache[name] = value
        return self._secret_cache[name]

    def forget_secrets(self) -> None:
        """Read secrets from the store again (after the settings dialog saved new ones)."""
        self._secret_cache.clear()

    @property
    def webhook_url(self) -> str:
        return self._secret(SECRET_WEBHOOK, self.settings.portal.webhook_url)

    @property
    def application_token(self) -> str:
        return self._secret(SECRET_APP_TOKEN, self.settings.portal.application_token)

    def _verification(self) -> Verification:
        portal = self.settings.portal
        domain = ""
        url = self.webhook_url or portal.portal_url
        if url:
            from urllib.parse import urlsplit

            domain = urlsplit(url).netloc
        install_check = self._queue_install if self.oauth is not None else None
        return Verification(self.application_token, portal.member_id or self._pinned_member,
                            domain, install_check, self.previous_token)

    # -- token rotation and member_id pinning ------------------------------------------------------
    @property
    def previous_token(self) -> str:
        """The token rotated out: from the settings (headless, operator-managed), or the one a
        settings change replaced, until its grace period ends."""
        configured = self.settings.portal.previous_application_token
        if configured:
            secret_registry.add(configured)
            return configured
        if self._previous_token and time.time() < self._previous_until:
            return self._previous_token
        return ""

    def _token_rotated(self, old: str, new: str) -> None:
        """Keep accepting ``old`` for the grace period: Bitrix24 events signed before the
        change may still be on their way, and the sender would not resend a refused one."""
        if not old or old == new:
            return
        grace = self.settings.portal.token_grace_minutes * 60
        self._previous_token, self._previous_until = old, time.time() + grace
        self._pinned_member = ""  # a new token may belong to another portal: learn it again
        try:
            self.secrets.set(SECRET_PREVIOUS_TOKEN, old)
        except SecretStoreUnavailable as exc:
            log.warning("previous token kept in memory only: %s", exc)
        if self.state is not None:
            self.state.set_value(PREVIOUS_TOKEN_UNTIL, str(self._previous_until))
            self.state.set_value(PINNED_MEMBER, None)
        log.info("application token changed; the previous one is accepted for %.0f more minutes",
                 grace / 60)

    def _load_rotation(self) -> None:
        """After a restart: the previous token (keyring) while its grace period lasts; the pin."""
        assert self.state is not None
        until = float(self.state.get_value(PREVIOUS_TOKEN_UNTIL) or 0)
        if until > time.time():
            with contextlib.suppress(SecretStoreUnavailable):
                self._previous_token = self.secrets.get(SECRET_PREVIOUS_TOKEN) or ""
                secret_registry.add(self._previous_token)
                self._previous_until = until
        elif until:
            self.state.set_value(PREVIOUS_TOKEN_UNTIL, None)
            with contextlib.suppress(SecretStoreUnavailable):
                self.secrets.delete(SECRET_PREVIOUS_TOKEN)
        fingerprint, _, member = (self.state.get_value(PINNED_MEMBER) or "").partition(":")
        if member and not valid_member_id(member):
            log.warning("the pinned member_id is malformed; learning it again from the next event")
            self.state.set_value(PINNED_MEMBER, None)
        elif member and fingerprint == _fingerprint(self.application_token):
            self._pinned_member = member

    def _pin_member(self, event: IncomingEvent) -> None:
        """Webhook mode with no member_id set: the first event signed with the token names the
        portal; later events must come from the same one."""
        if self.settings.portal.member_id or self._pinned_member or not event.member_id:
            return
        if event.previous_token or self.state is None or not valid_member_id(event.member_id):
            return
        self._pinned_member = event.member_id
        self.state.set_value(PINNED_MEMBER, f"{_fingerprint(self.application_token)}:{event.member_id}")
        log.info("events are now accepted from portal member_id %s only", event.member_id)

    def has_credentials(self) -> bool:
        """Whether REST calls can be made (webhook, or an authorized OAuth app)."""
        if self.webhook_url:
            return True
        return self.oauth is not None and not self.oauth.needs_reauthorization

    def _queue_install(self, form: dict) -> bool:
        """Listener thread: an ONAPPINSTALL with a new token is checked for shape and queued;
        the REST call that proves it runs on the install verifier, under the rate limiter."""
        from .bitrix import phpform

        access = phpform.get_path(form, "auth", "access_token") or ""
        refresh = phpform.get_path(form, "auth", "refresh_token") or ""
        app_token = phpform.get_path(form, "auth", "application_token") or ""
        member = phpform.get_path(form, "auth", "member_id") or ""
        pinned = self.settings.portal.member_id
        if self.oauth is None or self.installs is None or not (access and refresh and app_token):
            return False
        if not all(isinstance(v, str) and v.isascii() and 0 < len(v) <= 256
                   for v in (access, refresh, app_token)):
            return False
        if pinned and member.lower() != pinned.lower():
            return False
        secret_registry.add(access, refresh, app_token)
        try:
            self.installs.submit(form)
        except InstallQueueFull:
            raise Rejection(503, "too many install events wait for verification") from None
        return True

    def _prove_install(self, access: str) -> bool:
        """Install verifier thread: the configured portal answers app.info for this token."""
        auth = self.oauth
        if auth is None:
            return False
        try:
            reply = auth.session.get(auth.url_for("app.info"), params={"auth": access}, timeout=10)
            return reply.ok and isinstance(reply.json().get("result"), dict)
        except (ValueError, OSError, AttributeError) as exc:
            log.warning("could not verify the install event: %s", type(exc).__name__)
            return False

    def _store_install(self, form: dict) -> None:
        """Keep what ONAPPINSTALL brings: the application token and the installer's tokens."""
        from .bitrix import phpform

        if self.oauth is None:
            return
        access = phpform.get_path(form, "auth", "access_token") or ""
        refresh = phpform.get_path(form, "auth", "refresh_token") or ""
        app_token = phpform.get_path(form, "auth", "application_token") or ""
        if app_token:
            self.secrets.set(SECRET_APP_TOKEN, app_token)
            self.forget_secrets()
        if access and refresh:
            self.oauth.install(access, refresh, phpform.get_path(form, "auth", "member_id") or "")
        log.info("app installed: application token and tokens stored")
        if self.worker is not None:
            self.worker.resume()
        self.reconcile_now()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start everything; a listener that cannot bind is reported, not fatal."""
        self._open_state()
        # read the secrets now, off the listener's path (a locked keyring answers slowly)
        _ = self.webhook_url, self.application_token
        self.client = self._make_client()
        self.target = self._make_target(make_engine(self.where.target_url, synchronous="NORMAL"))
        try:
            self.target.prepare()
        except TargetError as exc:
            if not exc.transient:
                self.stop()
                raise
            self.board.failed("target", f"target database: {exc}")
            log.warning("target not ready yet (%s); events wait in the inbox", exc)
        self.worker = SyncWorker(
            self.state,
            self.target,
            self.client,
            lambda: self._stage_filter,
            self.sink,
            WorkerOptions(
                debounce=self.settings.sync.debounce_seconds,
                max_delay=self.settings.sync.max_delay_seconds,
                max_attempts=self.settings.sync.max_attempts,
            ),
            on_pass=self._on_pass,
            on_anomaly=self.anomalies.note,
            board=self.board,
        )
        self.reconciler = Reconciler(
            self.client,
            self.state,
            self.sink,
            overlap_minutes=self.settings.sync.reconcile_overlap_minutes,
            on_queued=self.worker.wake,
        )
        if not self.webhook_url and self.oauth is None:
            self.worker.pause()  # nothing to read deals with; events still wait in the inbox
        self.worker.start()
        self._start_pull_sources()
        if self.oauth is not None:
            self.installs = InstallVerifier(self._prove_install, self._store_install,
                                            lambda: self.client.bucket, self.board)
            self.installs.start()
        if self.listen:
            self._start_listener()
        self.scheduler = Scheduler(self, board=self.board)
        self.scheduler.start()
        self.retention = RetentionJob(self.state, self.settings.storage.keep_days).start()
        self._start_status_thread()
        self.started = True
        metrics.watch(self)
        self.publish_status(force=True)

    def _start_pull_sources(self) -> None:
        """The offline-event puller (app mode with offline events) and the change poll (pull
        mode, or wherever sync.poll_seconds asks for it)."""
        assert self.worker is not None and self.reconciler is not None and self.state is not None
        if self.oauth is not None and self.settings.portal.offline_events:
            self.offline = OfflinePuller(
                self.client,
                self.state,
                self.sink,
                self.settings.portal.auth_connector,
                interval=self.settings.sync.offline_poll_seconds,
                on_queued=self.worker.wake,
            )
            self.offline.board = self.board
            self.offline.start()
        interval = connection.poll_seconds(self.settings, self.connection_mode())
        if interval > 0:
            self.poller = ChangePoller(self.reconciler, self.state, interval)
            self.poller.board = self.board
            self.poller.start()

    def _stop_pull_sources(self) -> None:
        if self.offline is not None:
            self.offline.stop()
            self.offline = None
        if self.poller is not None:
            self.poller.stop()
            self.poller = None

    def _open_state(self) -> None:
        engine = make_engine(self.where.state_url, synchronous="FULL")
        state = StateStore(engine)
        try:
            state.create()
            healthy = state.integrity_ok()
        except DatabaseError as exc:  # "file is not a database", malformed pages
            log.error("state database unreadable: %s", str(exc.orig or exc)[:200])
            healthy = False
        if not healthy:
            engine.dispose()
            self._move_aside_state()
            engine = make_engine(self.where.state_url, synchronous="FULL")
            state = StateStore(engine)
            state.create()
        state.prune()
        self._last_event_at = state.last_event_at()
        state.on_coalesced = lambda deal_id: self.anomalies.note(
            "coalesced_at_intake", f"deal {deal_id}: enough unread events already wait")
        self.state = state
        self._load_rotation()

    def _move_aside_state(self) -> None:
        url = self.where.state_url
        if not url.startswith("sqlite:///"):
            raise DealMonitorError("state database failed its integrity check")
        path = Path(url[len("sqlite:///"):])
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                shutil.move(src, src.with_name(f"{src.name}.corrupt-{stamp}"))
        message = "state database was corrupt; moved aside, full reconciliation follows"
        self.board.failed("state_recovery", message)  # cleared by the next reconciliation
        log.error(message)

    def _make_target(self, engine) -> TargetWriter | MappedWriter:
        assert self.client is not None
        return make_writer(self.settings, engine, self.client, self.pipelines)

    def _make_auth(self):
        portal = self.settings.portal
        self.oauth = None
        if self.webhook_url:
            return WebhookAuth(self.webhook_url)
        if portal.client_id and portal.portal_url:
            self.oauth = OAuthAuth(
                portal.portal_url,
                portal.client_id,
                self.secrets,
                portal.oauth_server or DEFAULT_OAUTH_SERVER,
                token_store=self.tokens,
                client_secret=portal.client_secret,
            )
            log.info("OAuth app: %s", describe_store(self.tokens))
            return self.oauth
        return WebhookAuth("http://unconfigured.invalid/rest/0/none/")

    def _make_client(self) -> BitrixClient:
        burst, rate = self.settings.portal.bucket
        return BitrixClient(self._make_auth(), LeakyBucket(burst, rate))

    def _start_listener(self) -> None:
        ls = self.settings.listener
        if ls.public_url.startswith("http://"):  # allowed only to a private address
            log.warning("events come over plain http:// to %s (portal.allow_private_http): "
                        "anyone on that network can read the application token", ls.public_url)
        app = ListenerApp(ls.path, self._verification, self, ls.allow_networks)
        server = ListenerServer(app, ls.host, ls.port, trusted_proxy=ls.trusted_proxy)
        try:
            server.start()
        except ListenerError as exc:
            self._listen_error = str(exc)
            log.error("%s", exc)
            return
        self.listener = server
        self._listen_error = ""

    def stop(self) -> None:
        """Stop accepting, finish the pass in progress, keep the rest queued."""
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        self._stop_status_thread()
        self._flush_refusals()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.retention is not None:
            self.retention.stop()
        self._stop_pull_sources()
        self.cancel_sign_in()
        if self.installs is not None:
            self.installs.stop()
            self.installs = None
        self._job_cancel.set()
        if self._job is not None:
            self._job.join(10)
        if self.worker is not None:
            self.worker.stop()
        if self.client is not None:
            self.client.close()
        for store in (self.state, self.target):
            if store is not None:
                store.engine.dispose()
        self.started = False

    def restart_listener(self) -> None:
        """Apply new listener settings (host, port, path) without restarting the rest."""
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        if self.listen:
            self._start_listener()
        self.publish_status(force=True)

    def apply_settings(self, settings: Settings) -> bool:
        """Take new settings, restarting only the parts they touch.

        Returns False when a change needs a restart of the whole core (the data folder or
        the state DB moved). Secrets are read again from the store: a new webhook URL saved
        to the keyring takes effect here.
        """
        old = self.settings
        old_token = self.application_token
        self.settings = settings
        self.forget_secrets()
        self._token_rotated(old_token, self.application_token)
        self._stage_filter = StageFilter(settings.sync.skip_stages)
        if self.client is not None:
            self.client.auth = self._make_auth()
            if self.state is not None:
                self.state.release_backoff()  # work held back by the old credentials goes now
            if old.portal.plan != settings.portal.plan:
                self.client.bucket = LeakyBucket(*settings.portal.bucket)
            if old.portal != settings.portal:
                self._pipelines = None
            if self.worker is not None and self.has_credentials() and not self._held:
                self.worker.resume()
        if (old.target, old.mapping) != (settings.target, settings.mapping) and self.worker:
            self._swap_target()
        if old.listener != settings.listener:
            self.restart_listener()
        if (old.portal, old.sync) != (settings.portal, settings.sync) and self.worker is not None:
            self._stop_pull_sources()  # the mode may have changed; the inbox stays as it is
            self._start_pull_sources()
        self.publish_status(force=True)
        return old.storage == settings.storage

    def _swap_target(self) -> None:
        """Point the worker at a new target DB or mapping between two passes."""
        self.where = locations(self.settings)
        new = self._make_target(make_engine(self.where.target_url, synchronous="NORMAL"))
        try:
            new.prepare()
        except TargetError as exc:
            self.board.failed("target", f"target database: {exc}")
            log.error("new target not usable: %s", exc)
        old = self.worker.replace_target(new)
        self.target = new
        old.engine.dispose()

    # -- intake (called on listener threads) ---------------------------------------------------
    def accept(self, event: IncomingEvent, remote_addr: str) -> None:
        if event.previous_token:
            self.anomalies.note("previous_token", f"event {event.event} from {remote_addr}")
        if ts_skewed(event.ts):
            self.anomalies.note("ts_skew", f"event {event.event} ts={event.ts} from {remote_addr}")
        self._pin_member(event)
        if event.event in DEAL_EVENTS:
            status = EventStatus.QUEUED
        else:
            status = EventStatus.IGNORED
            if event.event == "ONAPPUNINSTALL" and self.oauth is not None:
                self.oauth.forget("the app was uninstalled from the portal")
            elif event.event == "ONAPPINSTALL" and not event.unverified_install:
                self._store_install(event.fields)  # signed with the token we know
            elif event.event not in APP_EVENTS:
                log.info("ignored event %s from %s", event.event, remote_addr)
        assert self.state is not None
        try:
            records = self._store_event(event, remote_addr, status)
        except Exception as exc:
            # the sender gets a 503 and will not resend: what it announced is fetched by a
            # reconciliation as soon as the inbox takes writes again
            self._intake_gap = True
            self.intake_failures += 1
            detail = str(getattr(exc, "orig", None) or exc)[:200]
            self.board.failed("intake", f"events cannot be stored: {type(exc).__name__}: {detail}")
            self.publish_status()  # a flag: the status thread's queries stay off this thread
            raise
        self.board.recovered("intake")
        if self._intake_gap:
            self._intake_gap = False
            log.warning("intake works again; reconciling what was refused meanwhile")
            self.reconcile_now()
        faultpoints.reach("after_inbox_commit")
        metrics.event_accepted(event.event)
        if records:
            self._last_event_at = records[-1].received_at
        for record in records:
            self.sink.event_received(record)
        if records and status == EventStatus.QUEUED and self.worker is not None:
            self.worker.wake()
        self.publish_status()

    def _store_event(self, event: IncomingEvent, remote_addr: str, status: EventStatus) -> list:
        assert self.state is not None
        return self.state.add_events(
            coalesce_at=INTAKE_COALESCE_AT,
            events=[
                NewEvent(
                    event=event.event,
                    deal_id=event.deal_id,
                    source=Source.PUSH,
                    handler_id=event.handler_id,
                    ts=event.ts,
                    dedup_key=event.dedup_key,
                    remote_addr=remote_addr,
                    status=status,
                )
            ]
        )

    def reject(self, remote_addr: str, status: int, reason: str) -> None:
        """Listener thread: count the refusal; the status thread writes it (in a batch)."""
        metrics.event_refused(status, reason)
        if status == 401:
            self.anomalies.auth_failure()
        self.refusals.record(remote_addr, status, reason)
        self.publish_status()

    def _flush_refusals(self) -> None:
        """Write the buffered refusals in one transaction and show them."""
        if self.state is None or not self.refusals.pending:
            return
        items = self.refusals.take()
        try:
            records = self.state.add_rejections(items)
        except Exception:  # recording an attack must not become the attack
            log.exception("could not record %d refused request(s)", len(items))
            return
        for record in records:
            self.sink.event_received(record)

    def problems(self) -> list[str]:
        """Why the instance cannot do its job right now (empty: ready)."""
        found: list[str] = []
        if self.listen and (self.listener is None or not self.listener.running):
            found.append(f"listener not listening{': ' + self._listen_error if self._listen_error else ''}")
        failing = dict(self.board.failing())
        for name in sorted(CRITICAL & set(failing)):
            found.append(failing[name])
        for name in self.board.any_stopped():
            found.append(f"{name} stopped")
        if self.started:
            for name, owner in (("worker", self.worker), ("scheduler", self.scheduler)):
                if owner is not None and not owner.alive and f"{name} stopped" not in found:
                    found.append(f"{name} stopped")
        auth_state = self.status_auth_state()
        if auth_state == "reauthorize":
            found.append("the portal refused our credentials: authorize again")
        elif auth_state == "no_credentials":
            found.append("no credentials to read deals with")
        return found

    def health(self) -> dict[str, Any]:
        """The health document: ``ready`` False (HTTP 503) when the instance cannot do its job;
        ``status`` ok / degraded (ready, but a component reports trouble) / unavailable."""
        status = self.status()
        problems = self.problems()
        ready = not problems
        return {
            "status": "unavailable" if not ready else ("ok" if not status.last_error else "degraded"),
            "ready": ready,
            "problems": problems,
            "listening": status.listening,
            "paused": status.paused,
            "inbox_depth": status.inbox_depth,
            "failed": status.failed_count,
            "last_event_at": status.last_event_at.isoformat() if status.last_event_at else None,
            "last_sync_at": status.last_sync_at.isoformat() if status.last_sync_at else None,
            "last_error": status.last_error,
            "auth_state": status.auth_state,
            "components": self.board.snapshot(),
            "intake_failures": self.intake_failures,
            "refused": {"total": self.refusals.total, "by_reason": self.refusals.counts()},
            "events_silent": status.events_silent,
            "silence_hint": status.silence_hint,
            "oldest_pending_age_s": self._oldest_pending_age(),
            "auth_failures_last_hour": self.anomalies.auth_failures_last_hour(),
            "anomalies": self.anomalies.counts(),
            "warnings": self.anomalies.warnings(),
        }

    def _oldest_pending_age(self) -> float | None:
        """Seconds the oldest queued event has waited (None: nothing waits)."""
        oldest = self.state.oldest_queued_at() if self.state is not None else None
        if oldest is None:
            return None
        return round(max(0.0, (datetime.now(UTC) - oldest).total_seconds()), 1)

    # -- status ------------------------------------------------------------------------------
    def _on_pass(self, error: str) -> None:
        if not error:
            self._last_sync_at = datetime.now(UTC)
        self.publish_status()

    def status(self) -> StatusSnapshot:
        state = self.state
        listener = self.listener
        listening = listener is not None and listener.running
        url = ""
        if listening:
            ls = self.settings.listener
            url = ls.public_url or f"http://{ls.host}:{listener.port}{ls.path}"
        auth_state = self.status_auth_state()
        silent = self.scheduler.events_silent if self.scheduler else False
        return StatusSnapshot(
            listening=listening,
            listen_url=url,
            listen_error=self._listen_error,
            paused=self.worker.paused if self.worker else False,
            inbox_depth=state.inbox_depth() if state else 0,
            failed_count=state.failed_count() if state else 0,
            last_event_at=self._last_event_at,
            last_sync_at=self._last_sync_at,
            last_error=self.board.summary(),
            rate_budget=self.client.bucket.available() if self.client else 0.0,
            rate_burst=self.client.bucket.burst if self.client else 0,
            auth_state=auth_state,
            events_silent=silent,
            silence_hint=self.scheduler.silence_hint if self.scheduler else "",
            warnings=tuple(self.anomalies.warnings()),
            connection_mode=self.connection_mode(),
            token_storage=self.token_storage() if self.oauth is not None else "",
            auth_reason=self.oauth.reason if self.oauth is not None else "",
            last_poll_at=self.poller.last_poll_at if self.poller is not None else None,
            offline_note=self.offline.note if self.offline is not None else "",
        )

    def status_auth_state(self) -> str:
        """ok, no_credentials, or reauthorize (the portal refused what we have)."""
        blocked = self.client.blocked if self.client is not None else None
        if (
            (self.oauth is not None and self.oauth.needs_reauthorization)
            or (blocked is not None and blocked.is_auth)
            or any(code in error for _, error in self.board.failing()
                   for code in BitrixError.AUTH_CODES)
        ):
            return "reauthorize"
        return "ok" if self.has_credentials() else "no_credentials"

    def publish_status(self, force: bool = False) -> None:
        """Send a status snapshot to the sink, at most a few times a second.

        Unforced updates (one per accepted event) only raise a flag: the snapshot costs two
        COUNT queries, which do not belong on the listener thread between the commit and the
        200. The status thread sends one snapshot per STATUS_INTERVAL for any number of flags.
        """
        if not force and self._status_thread is not None:
            self._status_wanted.set()
            return
        now = time.monotonic()
        with self._status_lock:
            if not force and now - self._last_status_at < STATUS_INTERVAL:
                return
            self._last_status_at = now
        self._send_status()

    def _send_status(self) -> None:
        try:
            self._flush_refusals()
            self.sink.status_changed(self.status())
        except Exception:
            log.exception("status update failed")

    def _status_loop(self) -> None:
        while True:
            self._status_wanted.wait()
            if self._status_stop.is_set():
                return
            self._status_wanted.clear()
            self._flush_refusals()
            self.sink.status_changed(self.status())
            if self._status_stop.wait(STATUS_INTERVAL):
                return

    def _start_status_thread(self) -> None:
        self._status_stop.clear()
        self._status_thread = SupervisedThread("status", self._status_loop, self._status_stop,
                                               self.board)
        self._status_thread.start()

    def _stop_status_thread(self) -> None:
        thread, self._status_thread = self._status_thread, None
        if thread is not None:
            self._status_stop.set()
            self._status_wanted.set()
            thread.join(5)

    # -- actions for the GUI and CLI -------------------------------------------------------------
    def resync(self, deal_ids: Sequence[int]) -> list[EventRecord]:
        """Read these deals again now (the "Resync deal" button)."""
        assert self.state is not None
        records = self.state.add_events(
            [NewEvent(event="RESYNC", deal_id=int(i), source=Source.MANUAL) for i in deal_ids]
        )
        for record in records:
            self.sink.event_received(record)
        if self.worker is not None:
            self.worker.wake()
        self.publish_status(force=True)
        return records

    def retry_failed(self) -> int:
        assert self.state is not None
        count = self.state.requeue_failed()
        if self.worker is not None:
            self.worker.wake()
        self.publish_status(force=True)
        return count

    def reconcile_now(self) -> None:
        if self.scheduler is not None:
            self.scheduler.trigger()

    def resync_all(self) -> bool:
        """Start a full resync in the background; False if one is already running."""
        if self._job is not None and self._job.is_alive():
            return False
        self._job_cancel.clear()
        self._job = threading.Thread(target=self._resync_all, name="resync-all", daemon=True)
        self._job.start()
        return True

    def cancel_job(self) -> None:
        self._job_cancel.set()

    def _resync_all(self) -> None:
        assert self.reconciler is not None and self.client is not None and self.state is not None
        started = time.monotonic()
        cursor = int(self.state.get_value(RESYNC_CURSOR) or 0)
        total = None
        try:  # one request buys the progress bar, the ETA and right-sized batches
            total = self.client.call(
                "crm.deal.list", {"select": ["ID"], "filter": {">ID": cursor}, "start": 0}
            ).total
        except BitrixError as exc:
            log.warning("could not count deals: %s", exc)
        sink = self.sink

        class _ProgressSink(FanoutSink):
            def progress_changed(self, progress: Progress) -> None:
                elapsed = time.monotonic() - started
                eta = None
                if total and progress.done:
                    eta = elapsed / progress.done * max(0, total - progress.done)
                sink.progress_changed(Progress("resync", progress.done, total, eta_seconds=eta))

        from .bitrix.throttle import Cancelled
        from .sync.resync import FullResync

        try:
            if self.worker is not None:
                # each listed page goes straight to the target, in bulk (sync/resync.py)
                result = FullResync(
                    self.client, self.state, self.worker, lambda: self._stage_filter,
                    _ProgressSink(sink), cursor_key=RESYNC_CURSOR, on_queued=self.worker.wake,
                    on_page=self._on_pass,
                ).run(cancel=self._job_cancel, expected=total)
            else:
                result = Reconciler(self.client, self.state, _ProgressSink(sink)).run(
                    full=True, cancel=self._job_cancel, job="resync", cursor_key=RESYNC_CURSOR,
                    expected=total,
                )
        except (BitrixError, TargetError) as exc:
            sink.progress_changed(Progress("resync", 0, total, finished=True, error=str(exc)))
            return
        except Cancelled:  # the app is stopping; the cursor keeps what was done
            sink.progress_changed(Progress("resync", 0, total, finished=True, cancelled=True))
            return
        except Exception as exc:  # the progress bar must not wait forever for a crashed job
            log.exception("full resync failed")
            sink.progress_changed(Progress("resync", 0, total, finished=True,
                                           error=f"internal error: {type(exc).__name__}"))
            return
        cancelled = getattr(result, "cancelled", self._job_cancel.is_set())
        sink.progress_changed(
            Progress("resync", result.listed, total, finished=True, cancelled=cancelled)
        )

    def pause(self) -> None:
        """Hold processing (intake goes on: Bitrix24 would not resend what we refuse)."""
        self._held = True
        if self.worker is not None:
            self.worker.pause()
        self.publish_status(force=True)

    def resume(self) -> None:
        self._held = False
        if self.worker is not None and self.has_credentials():
            self.worker.resume()
        self.publish_status(force=True)

    def set_skip_stages(self, stages: Sequence[str]) -> list[int]:
        """Change the stage filter at once; returns skipped deals it now lets through."""
        self.settings = self.settings.replace("sync", skip_stages=tuple(stages))
        self._stage_filter = StageFilter(self.settings.sync.skip_stages)
        assert self.state is not None
        return [
            deal_id
            for deal_id, stage_id in self.state.skipped_deals()
            if not self._stage_filter.skips(stage_id)
        ]

    @property
    def stage_filter(self) -> StageFilter:
        return self._stage_filter

    def pipelines(self, refresh: bool = False) -> list[Pipeline]:
        """The portal's pipelines and their stages by name (cached)."""
        if self._pipelines is not None and not refresh:
            return self._pipelines
        assert self.client is not None
        reply = self.client.call("crm.category.list", {"entityTypeId": 2})
        categories = (reply.result or {}).get("categories", []) if isinstance(reply.result, dict) else []
        if not any(int(c.get("id", -1)) == 0 for c in categories):
            categories = [{"id": 0, "name": "General", "sort": 0}, *categories]
        categories.sort(key=lambda c: (int(c.get("sort") or 0), int(c.get("id") or 0)))
        commands = {
            f"s{int(c['id'])}": (
                "crm.status.list",
                {"filter": {"ENTITY_ID": entity_id(int(c["id"]))}, "order": {"SORT": "ASC"}},
            )
            for c in categories[:50]
        }
        batch = self.client.batch(commands)
        pipelines = []
        for c in categories[:50]:
            rows = batch.results.get(f"s{int(c['id'])}") or []
            stages = tuple(sorted((parse_stage(r) for r in rows), key=lambda s: s.sort))
            pipelines.append(Pipeline(int(c["id"]), str(c.get("name") or c["id"]), stages))
        self._pipelines = pipelines
        return pipelines

    # -- reads for the GUI ------------------------------------------------------------------------
    def deals(self) -> list[DealView]:
        assert self.state is not None
        return self.state.deals()

    def events(self, limit: int = 2000) -> list[EventRecord]:
        assert self.state is not None
        return self.state.recent_events(limit)

    def history(self, deal_id: int) -> list[HistoryEntry]:
        assert self.state is not None
        return self.state.history(deal_id)

    # -- app mode -----------------------------------------------------------------------------------
    def authorize(self, code: str) -> None:
        """Finish the OAuth authorization-code step (code from the portal's redirect)."""
        self.oauth_auth().exchange_code(code)
        self._signed_in()

    def start_sign_in(self, on_done: Callable[[Any], None] | None = None) -> str:
        """Start the browser sign-in (RFC 8252 loopback); returns the address to open.

        A loopback server on 127.0.0.1 (``portal.signin_port``, 0 = any free port) takes the
        portal's redirect, checks ``state``, exchanges the code and stores the tokens; then
        ``on_done(SignInResult)`` is called from that server's thread, the worker resumes and a
        reconciliation runs. A sign-in already in progress is cancelled first.
        """
        from .bitrix.signin import LoopbackSignIn

        oauth = self.oauth_auth()
        self.cancel_sign_in()

        def finished(result) -> None:
            if result.ok:
                self._signed_in()
            if on_done is not None:
                on_done(result)

        self._signin = LoopbackSignIn(oauth, self.settings.portal.signin_port, finished)
        return self._signin.start()

    def wait_sign_in(self, timeout: float | None = 600.0):
        """Block until the sign-in started by start_sign_in() ends (the headless ``authorize``)."""
        if self._signin is None:
            raise DealMonitorError("no sign-in in progress")
        return self._signin.wait(timeout)

    def cancel_sign_in(self) -> None:
        signin, self._signin = self._signin, None
        if signin is not None and not signin.done:
            signin.cancel()

    def _signed_in(self) -> None:
        for name, error in self.board.failing():  # the refusals were about the old tokens
            if any(auth_code in error for auth_code in BitrixError.AUTH_CODES):
                self.board.recovered(name)
        if self.client is not None:
            self.client.unblock()
        if self.state is not None and self.worker is not None:
            self.state.release_backoff()  # reads held back for want of a token go now
        if self.worker is not None:
            self.worker.resume()
            self.reconcile_now()
        self.publish_status(force=True)

    def oauth_auth(self) -> OAuthAuth:
        """The OAuth app's auth (opening the client if the core is not started)."""
        if self.client is None:
            self.open_client()
        if self.oauth is None:
            raise DealMonitorError("OAuth is not configured", "Set portal.client_id and portal_url.")
        return self.oauth

    def connection_mode(self) -> str:
        """pull | push | app | app_offline | none (see connection.py)."""
        return connection.mode(self.settings, self.webhook_url, self.application_token)

    def token_storage(self) -> str:
        """Where the OAuth tokens are kept, in words ("tokens stored in <file>", ...)."""
        return describe_store(self.tokens)

    def last_poll(self) -> str:
        """Pull mode: the portal time up to which the last change poll listed ("" = never)."""
        if self.poller is not None and self.poller.last_poll_at is not None:
            return self.poller.last_poll_at.isoformat(timespec="seconds")
        state = self.state_store()
        try:
            return (state.get_value(POLL_WATERMARK) or "") if state is not None else ""
        except Exception:  # the doctor's state check reports an unreadable state DB
            return ""

    def state_store(self) -> StateStore | None:
        """The state DB: the running one, or opened for reading (the CLI's ``check``)."""
        if self.state is None:
            url = self.where.state_url
            if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
                return None  # never started: do not create it just by looking
            self.state = StateStore(make_engine(url, synchronous="FULL"))
        return self.state

    def diagnose(self, on_finding: Callable[[Any], None] | None = None) -> list:
        """The connection doctor's findings (deal_monitor.doctor); blocking, off the GUI thread."""
        from .doctor import diagnose

        return diagnose(self, on_finding)

    def handlers(self) -> list[dict]:
        """``event.get``: the handlers bound for this app."""
        assert self.client is not None
        reply = self.client.call("event.get")
        return [h for h in (reply.result or []) if isinstance(h, dict)]

    def bind_handlers(self, offline: bool = False) -> list[str]:
        """Bind the deal events to the public URL (and offline, if asked); returns what was done."""
        assert self.client is not None
        done = []
        url = self.settings.listener.public_url
        if not offline and not url:
            raise DealMonitorError(
                "listener.public_url is not set",
                "Bitrix24 must reach the listener from the internet: set the tunnel's URL.",
            )
        existing = self.handlers()
        for name in sorted(DEAL_EVENTS):
            if offline:
                params = {"event": name, "event_type": "offline"}
                if self.settings.portal.auth_connector:
                    params["auth_connector"] = self.settings.portal.auth_connector
                if any(h.get("event", "").upper() == name and h.get("offline") in (1, "1") for h in existing):
                    done.append(f"{name}: offline already bound")
                    continue
            else:
                params = {"event": name, "handler": url}
                if any(h.get("event", "").upper() == name and h.get("handler") == url for h in existing):
                    done.append(f"{name}: already bound to {url}")
                    continue
            self.client.call("event.bind", params)
            done.append(f"{name}: bound" + (" (offline)" if offline else f" to {url}"))
        return done

    def unbind_handlers(self) -> int:
        """Remove this app's deal-event handlers (online and offline); returns how many."""
        assert self.client is not None
        count = 0
        for name in sorted(DEAL_EVENTS):
            for params in ({"event": name}, {"event": name, "event_type": "offline",
                                              "auth_connector": self.settings.portal.auth_connector}):
                reply = self.client.call("event.unbind", params)
                if isinstance(reply.result, dict):
                    count += int(reply.result.get("count") or 0)
        return count

    def dry_run(self, deal_ids: Sequence[int], settings: Settings | None = None) -> list[DryRun]:
        """What syncing these deals now would write, without writing.

        With ``settings`` (say, a mapping the planner has not saved yet) the rows are rendered
        through their target and mapping instead of the running one; nothing is created.
        """
        if self.client is None:
            self.open_client()
        assert self.client is not None
        settings = settings or self.settings
        running = self.target if settings is self.settings else None
        if running is not None and running.prepared:
            return dry_run(self.client, running, self._stage_filter, deal_ids)
        url = locations(settings).target_url
        writer = make_writer(settings, make_engine(url, synchronous="NORMAL"),
                             self.client, self.pipelines)
        try:
            writer.prepare(create=False)
            return dry_run(self.client, writer, StageFilter(settings.sync.skip_stages), deal_ids)
        finally:
            writer.engine.dispose()

    def open_client(self) -> None:
        """Only the portal client, for one-off commands (dry run) that must not start the worker."""
        self.client = self._make_client()

    def queued_deal_ids(self, limit: int) -> list[int]:
        """The deals of the next ``limit`` queued events, oldest first (what the worker takes next)."""
        if self.state is None:
            self._open_state()
        assert self.state is not None
        return self.state.queued_deal_ids(limit)

    def deal_fields(self) -> list[tuple[str, str, str]]:
        """(code, label, type) of every deal field, for the mapping page."""
        assert self.client is not None
        reply = self.client.call("crm.deal.fields")
        fields = reply.result if isinstance(reply.result, dict) else {}
        result = []
        for code, info in fields.items():
            info = info if isinstance(info, dict) else {}
            label = info.get("formLabel") or info.get("listLabel") or info.get("title") or code
            result.append((code, str(label), str(info.get("type") or "")))
        return result

    def test_portal(self) -> str:
        """One cheap call to the portal; returns "" when it works, else what is wrong."""
        if self.client is None:
            return "not started"
        try:
            self.client.call("crm.deal.fields")
        except BitrixError as exc:
            return f"{exc} {exc.hint}".strip()
        return ""


def check_target_url(url: str, table: str = "deal") -> str:
    """The settings' Test button for the target DB: "" when it works, else what is wrong."""
    try:
        engine = make_engine(url, synchronous="NORMAL")
    except Exception as exc:  # bad URL, missing driver
        return f"cannot use this URL: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    try:
        writer = TargetWriter(engine, table)
        writer.check()
        writer.prepare()
    except TargetError as exc:
        return f"{exc} {exc.hint}".strip()
    finally:
        engine.dispose()
    return ""


def check_webhook_url(webhook_url: str) -> str:
    """The Test button for the portal connection: one cheap call with these credentials."""
    from .config import ConfigError, from_mapping

    try:
        from_mapping({"portal": {"webhook_url": webhook_url}}, env={})
    except ConfigError as exc:
        return exc.problem
    client = BitrixClient(WebhookAuth(webhook_url), LeakyBucket(50, 2.0), max_retries=1,
                          timeout=(5.0, 15.0))
    try:
        client.call("crm.deal.fields")
    except BitrixError as exc:
        return f"{exc} {exc.hint}".strip()
    finally:
        client.close()
    return ""


def check_listen(host: str, port: int) -> str:
    """The Test button for the listener address: can we bind it?"""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(address)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return ""


__all__ = [
    "Monitor",
    "check_listen",
    "check_target_url",
    "check_webhook_url",
    "locations",
]
