"""The bridge from the core's threads to the GUI thread.

``Monitor`` reports through an ``EventSink`` on its listener, worker and scheduler threads.
``SignalBridge`` is a QObject living on the GUI thread; its ``sink`` turns each report into a
signal emission carrying the frozen dataclass, and receivers connect with queued connections,
so every slot runs on the GUI thread, in the order the reports were made.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal

from ..model import EventRecord, Progress, StatusSnapshot, SyncOutcome


class SignalBridge(QObject):
    """Signals named after the sink's reports; connect with :meth:`connect_to`."""

    event_received = Signal(object)  # EventRecord
    event_updated = Signal(object)  # EventRecord
    deal_synced = Signal(object)  # SyncOutcome
    sync_failed = Signal(object)  # SyncOutcome
    status_changed = Signal(object)  # StatusSnapshot
    progress_changed = Signal(object)  # Progress

    NAMES = (
        "event_received",
        "event_updated",
        "deal_synced",
        "sync_failed",
        "status_changed",
        "progress_changed",
    )

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.sink = BridgeSink(self)

    def connect_to(self, receiver: object) -> None:
        """Connect each signal to ``receiver.on_<signal>`` (queued: always on the GUI thread)."""
        for name in self.NAMES:
            slot = getattr(receiver, f"on_{name}", None)
            if slot is not None:
                getattr(self, name).connect(slot, Qt.ConnectionType.QueuedConnection)

    def close(self) -> None:
        """Stop forwarding (the Monitor may still report while it winds down)."""
        self.sink.closed.set()


class BridgeSink:
    """The ``EventSink`` the Monitor gets; called on core threads, never blocks them."""

    def __init__(self, bridge: SignalBridge) -> None:
        self._bridge = bridge
        self.closed = threading.Event()

    def _emit(self, name: str, value: object) -> None:
        if self.closed.is_set():
            return
        try:
            getattr(self._bridge, name).emit(value)
        except RuntimeError:  # the QObject is gone: the window closed while the core reported
            self.closed.set()

    def event_received(self, record: EventRecord) -> None:
        self._emit("event_received", record)

    def event_updated(self, record: EventRecord) -> None:
        self._emit("event_updated", record)

    def deal_synced(self, outcome: SyncOutcome) -> None:
        self._emit("deal_synced", outcome)

    def sync_failed(self, outcome: SyncOutcome) -> None:
        self._emit("sync_failed", outcome)

    def status_changed(self, status: StatusSnapshot) -> None:
        self._emit("status_changed", status)

    def progress_changed(self, progress: Progress) -> None:
        self._emit("progress_changed", progress)


__all__ = ["BridgeSink", "SignalBridge"]
