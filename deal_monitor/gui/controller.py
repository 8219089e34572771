"""The application controller: owns the Monitor, the bridge and the table models.

Widgets never call the Monitor or the database directly; they call the controller, which runs
anything that may block (start-up, portal requests, snapshot reads) on a worker thread and
reports back through signals. Reports from the core arrive as queued signals of the bridge
(``on_<signal>`` slots here) and are applied to the models in small batches, so a burst of
thousands of updates costs the GUI thread a handful of model operations.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from .. import config, instance
from ..config import Settings
from ..credentials import MemoryStore, SecretStore, SecretStoreUnavailable
from ..model import DealState, DealView, EventRecord, Progress, StatusSnapshot, SyncOutcome
from ..service import SECRET_APP_TOKEN, SECRET_WEBHOOK, Monitor, locations
from . import texts
from .bridge import SignalBridge
from .models import DealsModel, EventsModel, StageCatalog
from .tasks import run_in_background

log = logging.getLogger(__name__)

FLUSH_MS = 100
STATUS_POLL_MS = 3000
NOTICE_COALESCE_MS = 1500
PRODUCTION_NOTICE_GAP_S = 20.0  # good news may wait; a balloon every few seconds is noise


@dataclass(frozen=True)
class Notice:
    """Something the user should see: a tray balloon, or an in-window message."""

    kind: str  # failure | production | error | info
    title: str
    text: str
    deal_ids: tuple[int, ...] = ()

    @property
    def urgent(self) -> bool:
        return self.kind in ("failure", "error")


def ui_settings() -> QSettings:
    """Window cosmetics and UI choices (geometry, language, notifications)."""
    return QSettings()


def strip_secrets(settings: Settings) -> Settings:
    """The settings as written to the TOML file in desktop mode: no secrets."""
    portal = dataclasses.replace(settings.portal, webhook_url="", application_token="",
                                 previous_application_token="", client_secret="")
    return dataclasses.replace(settings, portal=portal)


def write_settings_file(path: Path, settings: Settings) -> None:
    """Write the settings file atomically, never with secrets in it (only the keys that differ
    from their defaults; the user's comments and order stay: config.save)."""
    config.save(path, strip_secrets(settings))


class AppController(QObject):
    """Everything the window shows and every action it offers, without any widget."""

    started = Signal()
    start_failed = Signal(str)
    loaded = Signal()
    status_updated = Signal(object)  # StatusSnapshot
    progress_updated = Signal(object)  # Progress of the full resync
    pipelines_loaded = Signal()
    pipelines_failed = Signal(str)
    deal_updated = Signal(int)  # a deal's row or timeline changed
    notified = Signal(object)  # Notice
    settings_changed = Signal(object)  # Settings

    def __init__(
        self,
        settings: Settings,
        secrets: SecretStore | None = None,
        *,
        config_path: Path | None = None,
        secrets_persistent: bool = False,
        secrets_problem: str = "",
        demo=None,
        parent: QObject | None = None,
        tokens: SecretStore | None = None,
        data_lock: instance.DataFolderLock | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        # the lock of the folders the core uses (held by the app; None: not managed here)
        self.data_lock = data_lock
        self._retired_locks: list[instance.InstanceLock] = []  # released once the core moved
        self._pending_restart: Settings | None = None
        self.secrets: SecretStore = secrets or MemoryStore()
        # OAuth tokens: the keyring, or where none exists an owner-only file (open_token_store)
        self.tokens: SecretStore = tokens or self.secrets
        self.secrets_persistent = secrets_persistent
        self.secrets_problem = secrets_problem
        self.config_path = config_path
        self.demo = demo
        self.bridge = SignalBridge(self)
        self.bridge.connect_to(self)
        self.catalog = StageCatalog()
        self.deals_model = DealsModel(self.catalog, self)
        self.events_model = EventsModel(parent=self)
        self.monitor = Monitor(self._runtime_settings(settings), sink=self.bridge.sink,
                               secrets=self.secrets, tokens=self.tokens)
        self.status = StatusSnapshot()
        self.progress: Progress | None = None
        self.running = False
        self.loading = False
        self.start_error = ""
        self._warnings_told: set[str] = set()
        self._closing = False
        self._pending_deals: dict[int, DealView] = {}
        self._pending_events: dict[int, EventRecord] = {}
        self._buffer_deals: list[DealView] = []
        self._buffer_events: list[EventRecord] = []
        self._failed_notices: list[SyncOutcome] = []
        self._production_notices: list[SyncOutcome] = []
        self._last_error_seen = ""

        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush)
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.setInterval(NOTICE_COALESCE_MS)
        self._notice_timer.timeout.connect(self._send_failure_notice)
        self._production_timer = QTimer(self)
        self._production_timer.setSingleShot(True)
        self._production_timer.timeout.connect(self._send_production_notice)
        self._last_production_notice = -PRODUCTION_NOTICE_GAP_S
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_POLL_MS)
        self._status_timer.timeout.connect(self.refresh_status)

    # -- settings ----------------------------------------------------------------------------
    def _runtime_settings(self, settings: Settings) -> Settings:
        """Settings for the Monitor: the secrets filled in from the secret store.

        The file never holds them in desktop mode; giving them to the Monitor in memory lets
        ``apply_settings`` notice a changed webhook like any other changed setting.
        """
        portal = settings.portal
        changes = {}
        for field, name in (("webhook_url", SECRET_WEBHOOK), ("application_token", SECRET_APP_TOKEN)):
            if not getattr(portal, field):
                try:
                    value = self.secrets.get(name) or ""
                except SecretStoreUnavailable as exc:
                    log.warning("secret store: %s", exc)
                    value = ""
                if value:
                    changes[field] = value
        if not changes:
            return settings
        return dataclasses.replace(settings, portal=dataclasses.replace(portal, **changes))

    @property
    def configured(self) -> bool:
        return self.monitor.connection_mode() != "none"

    @property
    def notify_failures(self) -> bool:
        return _bool(ui_settings().value("notifications/failures", True))

    @property
    def notify_production(self) -> bool:
        default = self.demo is not None
        return _bool(ui_settings().value("notifications/production", default))

    def save_settings(self) -> str:
        """Write the settings file (not in demo mode); returns a problem or ""."""
        if self.demo is not None or self.config_path is None:
            return ""
        try:
            write_settings_file(self.config_path, self.settings)
        except OSError as exc:
            log.error("cannot write %s: %s", self.config_path, exc)
            return self.tr("Could not save the settings file: %1").replace("%1", str(exc))
        return ""

    def store_secrets(self, webhook_url: str, application_token: str) -> str:
        """Keep the secrets in the keyring (or this session's memory); returns a problem or ""."""
        problem = ""
        for name, value in ((SECRET_WEBHOOK, webhook_url), (SECRET_APP_TOKEN, application_token)):
            try:
                if value:
                    self.secrets.set(name, value)
                else:
                    self.secrets.delete(name)
            except SecretStoreUnavailable as exc:
                log.warning("keyring: %s", exc)
                problem = str(exc)
        if problem:
            # the keyring failed now: keep the secrets for this session, never on disk
            self.secrets = MemoryStore({SECRET_WEBHOOK: webhook_url, SECRET_APP_TOKEN: application_token})
            self.monitor.secrets = self.secrets
            self.secrets_persistent = False
            self.secrets_problem = problem
            return self.tr(
                "The system keyring did not accept the secrets (%1); they are kept until the "
                "app closes and are not written to disk."
            ).replace("%1", problem)
        return ""

    def claim_data_folder(self, settings: Settings) -> str:
        """Before the core moves to another data folder: hold the new folder's lock (the old
        one is released once the old core has stopped). Returns "" when held (or nothing
        moves), else why the move is refused — then nothing changed."""
        if self.data_lock is None:
            return ""
        try:
            where = locations(settings)  # creates the data folder
            moved, retired = self.data_lock.switch(where.data_dir, where.state_url)
        except instance.AlreadyRunning as exc:
            log.error("data folder not changed: %s", exc)
            return self.tr(
                "Another Deal Monitor (a service, or a window with another settings file) "
                "already uses the data folder %1. The data folder was not changed."
            ).replace("%1", str(exc.folder))
        except OSError as exc:
            log.error("data folder not changed: %s", exc)
            return self.tr("The data folder cannot be used (%1). The data folder was not "
                           "changed.").replace("%1", str(exc))
        self.data_lock = moved
        self._retired_locks.extend(retired)
        return ""

    def apply_settings(self, settings: Settings, webhook_url: str, application_token: str) -> str:
        """Take settings from the dialog: secrets to the store, the rest to the file.

        A data folder another instance holds is refused: the settings stay as they were."""
        refused = self.claim_data_folder(settings)
        if refused:
            return refused
        problem = self.store_secrets(webhook_url, application_token)
        old = self.settings
        self.settings = strip_secrets(settings)
        runtime = self._runtime_settings(self.settings)
        # the core applies portal, listener and sync changes in place; a new production or
        # state database needs a fresh start (the inbox is kept: nothing is lost)
        moved = old.target != self.settings.target or old.storage != self.settings.storage
        if self.running and not moved:
            self.monitor.apply_settings(runtime)
            self.load_pipelines(refresh=True)
        elif not self.loading:
            self.restart(runtime)
        else:  # still starting or loading: restart once that is done, never in its middle
            self._pending_restart = runtime
        saved = self.save_settings()
        self.settings_changed.emit(self.settings)
        self.refresh_status()
        return " ".join(p for p in (problem, saved) if p)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the Monitor on a worker thread, then load the tables."""
        if self.running or self.loading:
            return
        self.loading = True
        self._status_timer.start()
        run_in_background(self.monitor.start, self._on_monitor_started, self._on_monitor_failed,
                          name="start", owner=self)

    def restart(self, runtime: Settings) -> None:
        """Stop the core and start a new one with these settings (off the GUI thread)."""
        previous = self.monitor
        self.running = False
        self.start_error = ""
        self.monitor = Monitor(runtime, sink=self.bridge.sink, secrets=self.secrets,
                               tokens=self.tokens)
        self.loading = True
        monitor = self.monitor
        retired, self._retired_locks = self._retired_locks, []

        def swap() -> None:
            try:
                if previous.started or previous.state is not None:
                    previous.stop()
            finally:
                for lock in retired:  # the old folders are no longer used
                    lock.release()
            monitor.start()

        run_in_background(swap, self._on_monitor_started, self._on_monitor_failed,
                          name="restart", owner=self)

    def _on_monitor_started(self, _result: object) -> None:
        if self._closing:  # shut down while it was starting: stop what just started
            self.monitor.stop()
            return
        self.running = True
        self.start_error = ""
        if self.demo is not None:
            listen_url = self.monitor.status().listen_url
            if listen_url:
                self.demo.connect(listen_url)
        self.started.emit()
        self.reload()
        self.load_pipelines()

    def _restart_if_pending(self) -> bool:
        runtime, self._pending_restart = self._pending_restart, None
        if runtime is None or self._closing:
            return False
        self.restart(runtime)
        return True

    def _on_monitor_failed(self, exc: Exception) -> None:
        self.loading = False
        if self._restart_if_pending():
            return
        hint = getattr(exc, "hint", "")
        self.start_error = f"{exc} {hint}".strip()
        log.error("could not start: %s", self.start_error)
        self.start_failed.emit(self.start_error)
        self.notified.emit(Notice("error", self.tr("Deal Monitor could not start"),
                                  texts.error_text(str(exc))))

    def reload(self) -> None:
        """Read the deals and events afresh (reports arriving meanwhile are kept and replayed)."""
        if not self.running:
            return
        self.loading = True
        monitor = self.monitor
        run_in_background(lambda: (monitor.deals(), monitor.events(5000)), self._on_loaded,
                          self._on_load_failed, name="load", owner=self)

    def _on_loaded(self, result: tuple[list[DealView], list[EventRecord]]) -> None:
        if self._closing:
            return
        deals, events = result
        self.deals_model.load(deals)
        self.events_model.load(events)
        self.loading = False
        self.deals_model.upsert_many(self._buffer_deals)
        self.events_model.upsert_many(self._buffer_events)
        self._buffer_deals.clear()
        self._buffer_events.clear()
        self.loaded.emit()
        self.refresh_status()
        self._restart_if_pending()

    def _on_load_failed(self, exc: Exception) -> None:
        self.loading = False
        if self._restart_if_pending():
            return
        log.error("could not read the state database: %s", exc)
        self.notified.emit(Notice("error", self.tr("Could not read the local database"), str(exc)))

    def shutdown(self) -> None:
        """Stop everything (queued work stays in the inbox for the next start)."""
        if self._closing:
            return
        self._closing = True
        self._status_timer.stop()
        self._flush_timer.stop()
        self._notice_timer.stop()
        self._production_timer.stop()
        self.bridge.close()
        if self.demo is not None:
            self.demo.stop()
        if self.monitor.started:
            try:
                self.monitor.stop()
            except Exception:  # the app is closing: log, do not stop the exit
                log.exception("error while stopping")
        self.running = False
        for lock in self._retired_locks:
            lock.release()
        self._retired_locks = []
        if self.demo is not None:
            self.demo.cleanup()

    # -- reports from the core (queued slots on the GUI thread) ------------------------------------
    def on_event_received(self, record: EventRecord) -> None:
        self._queue_event(record)

    def on_event_updated(self, record: EventRecord) -> None:
        self._queue_event(record)

    def on_deal_synced(self, outcome: SyncOutcome) -> None:
        if outcome.deal is not None:
            self._queue_deal(outcome.deal)
        if outcome.reached_production and self.notify_production:
            self._production_notices.append(outcome)
            if not self._production_timer.isActive():
                wait = PRODUCTION_NOTICE_GAP_S - (time.monotonic() - self._last_production_notice)
                self._production_timer.start(max(NOTICE_COALESCE_MS, int(wait * 1000)))

    def on_sync_failed(self, outcome: SyncOutcome) -> None:
        self.flush()
        self.deals_model.mark_failed(outcome.deal_id, outcome.error)
        self.deal_updated.emit(outcome.deal_id)
        if self.notify_failures:
            self._failed_notices.append(outcome)
            self._notice_timer.start()

    def on_status_changed(self, status: StatusSnapshot) -> None:
        previous = self.status
        self.status = status
        if (
            status.last_error
            and status.last_error != self._last_error_seen
            and self.notify_failures
            and not previous.last_error
        ):
            self.notified.emit(
                Notice("error", self.tr("Synchronisation has a problem"),
                       texts.error_text(status.last_error))
            )
        self._last_error_seen = status.last_error
        for code in status.warnings:
            if code not in previous.warnings and code not in self._warnings_told:
                self._warnings_told.add(code)  # once a session: the problem field keeps it shown
                self.notified.emit(Notice("error", self.tr("Deal Monitor noticed something odd"),
                                          texts.warning_text(code)))
        if previous.listening and not status.listening and not self._closing:
            self.notified.emit(
                Notice("error", self.tr("Not receiving events"),
                       texts.error_text(status.listen_error) or self.tr("The listener stopped."))
            )
        self.status_updated.emit(status)

    def on_progress_changed(self, progress: Progress) -> None:
        if progress.job != "resync":
            return
        self.progress = None if progress.finished else progress
        self.progress_updated.emit(progress)
        if progress.finished:
            if progress.error:
                self.notified.emit(
                    Notice("error", self.tr("Resync stopped"), texts.error_text(progress.error))
                )
            elif progress.cancelled:
                self.notified.emit(Notice("info", self.tr("Resync cancelled"), self.tr(
                    "%n deal(s) were listed before you cancelled; run it again to continue.",
                    "", progress.done)))
            else:
                self.notified.emit(Notice("info", self.tr("Resync finished"), self.tr(
                    "%n deal(s) read from the portal and brought up to date.", "",
                    progress.done)))

    # -- batching ------------------------------------------------------------------------------
    def _queue_event(self, record: EventRecord) -> None:
        if self.loading:
            self._buffer_events.append(record)
            return
        self._pending_events[record.id] = record
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _queue_deal(self, deal: DealView) -> None:
        if self.loading:
            self._buffer_deals.append(deal)
            return
        self._pending_deals[deal.id] = deal
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def flush(self) -> None:
        """Apply the reports collected since the last flush to the models."""
        self._flush_timer.stop()
        if self._pending_events:
            events = list(self._pending_events.values())
            self._pending_events.clear()
            self.events_model.upsert_many(events)
        if self._pending_deals:
            deals = list(self._pending_deals.values())
            self._pending_deals.clear()
            self.deals_model.upsert_many(deals)
            for deal in deals:
                self.deal_updated.emit(deal.id)

    def _send_failure_notice(self) -> None:
        failed, self._failed_notices = self._failed_notices, []
        if not failed:
            return
        ids = tuple(dict.fromkeys(o.deal_id for o in failed))
        if len(ids) == 1:
            text = self.tr("Deal %1: %2").replace("%1", str(ids[0])).replace(
                "%2", texts.error_text(failed[-1].error))
        else:
            text = self.tr("%n deal(s) could not be synced. See the Events tab.", "", len(ids))
        self.notified.emit(Notice("failure", self.tr("Sync failed"), text, ids))

    def _send_production_notice(self) -> None:
        reached, self._production_notices = self._production_notices, []
        if not reached:
            return
        self._last_production_notice = time.monotonic()
        ids = tuple(dict.fromkeys(o.deal_id for o in reached))
        if len(ids) == 1 and reached[-1].deal is not None:
            text = self.tr("Deal %1 “%2” is in the production database.").replace(
                "%1", str(ids[0])).replace("%2", reached[-1].deal.title)
        else:
            text = self.tr("%n deal(s) reached the production database.", "", len(ids))
        self.notified.emit(Notice("production", self.tr("New deal in production"), text, ids))

    # -- status ---------------------------------------------------------------------------------
    def refresh_status(self) -> None:
        """Ask the core for a fresh snapshot (off the GUI thread)."""
        if not self.running or self._closing:
            return
        run_in_background(self.monitor.status, self.on_status_changed, lambda exc: None,
                          name="status", owner=self)

    def health(self) -> str:
        """``ok`` (all synced), ``working`` (queue not empty), ``paused``, or ``attention``."""
        status = self.status
        if self.start_error:
            return "attention"
        if not self.running:
            return "working"
        listener_down = self.monitor.listen and not status.listening
        if (
            listener_down
            or status.failed_count
            or status.last_error
            or status.auth_state != "ok"
            or status.events_silent
        ):
            return "attention"
        if status.paused:
            return "paused"
        if status.inbox_depth or self.progress is not None:
            return "working"
        return "ok"

    # -- actions --------------------------------------------------------------------------------
    def resync(self, deal_ids: Sequence[int]) -> int:
        ids = list(dict.fromkeys(int(i) for i in deal_ids))
        if not ids or not self.running:
            return 0
        monitor = self.monitor  # many IDs are one big insert: keep it off the GUI thread
        run_in_background(lambda: monitor.resync(ids), lambda _records: self.refresh_status(),
                          self._on_action_failed, name="resync", owner=self)
        return len(ids)

    def _on_action_failed(self, exc: Exception) -> None:
        log.error("action failed: %s", exc)
        self.notified.emit(Notice("error", self.tr("The action failed"), texts.error_text(str(exc))))

    def resync_all(self) -> bool:
        if not self.running:
            return False
        started = self.monitor.resync_all()
        if started:
            self.progress = Progress("resync", 0, None)
            self.progress_updated.emit(self.progress)
        return started

    def cancel_resync(self) -> None:
        self.monitor.cancel_job()

    def retry_failed(self) -> int:
        if not self.running:
            return 0
        count = self.monitor.retry_failed()
        self.reload()
        return count

    def pause(self) -> None:
        self.monitor.pause()
        self.refresh_status()

    def resume(self) -> None:
        self.monitor.resume()
        self.refresh_status()

    def toggle_pause(self) -> None:
        if self.status.paused:
            self.resume()
        else:
            self.pause()

    def load_pipelines(self, refresh: bool = False) -> None:
        if not self.running or not self.monitor.webhook_url:
            return
        monitor = self.monitor
        run_in_background(lambda: monitor.pipelines(refresh=refresh), self._on_pipelines,
                          self._on_pipelines_failed, name="pipelines", owner=self)

    def _on_pipelines(self, pipelines) -> None:
        self.catalog.set(pipelines)
        self.deals_model.catalog_changed()
        self.pipelines_loaded.emit()

    def _on_pipelines_failed(self, exc: Exception) -> None:
        hint = getattr(exc, "hint", "")
        self.pipelines_failed.emit(texts.error_text(f"{exc}") + (f" {texts.hint_text(hint)}" if hint else ""))

    @property
    def skip_stages(self) -> tuple[str, ...]:
        return tuple(self.monitor.stage_filter.entries)

    def set_skip_stages(self, stages: Sequence[str]) -> list[int]:
        """Apply a new stage filter at once and keep it; returns the deals it now lets through."""
        released = self.monitor.set_skip_stages(list(stages))
        self.settings = self.settings.replace("sync", skip_stages=tuple(stages))
        self.save_settings()
        self.settings_changed.emit(self.settings)
        return released

    def history(self, deal_id: int):
        if not self.running:
            return []
        return self.monitor.history(deal_id)

    def deal(self, deal_id: int) -> DealView | None:
        return self.deals_model.deal(deal_id)

    def failed_deal_ids(self) -> list[int]:
        return [d.id for d in self.deals_model.deals() if d.state == DealState.FAILED]


def _bool(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


__all__ = ["AppController", "Notice", "strip_secrets", "ui_settings", "write_settings_file"]
