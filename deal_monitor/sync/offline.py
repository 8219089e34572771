"""The offline-event puller (OAuth app mode): a change feed that needs no public URL.

With ``event.bind event_type=offline`` the portal queues one row per changed deal. The puller
reserves a batch (``event.offline.get clear=0``, which returns a ``process_id``), records the
``process_id`` in the state DB before anything else, puts the rows into the inbox, and only
when the worker has committed them to the target clears them (``event.offline.clear``) —
rows that failed for good are marked with ``event.offline.error`` instead. A batch reserved
before a crash is read again by its ``process_id`` at the next start.

Keeping rows until they are written (``clear=0``) needs the plan's ``rest_offline_extended``
feature; without it the portal answers ``WRONG_LICENSE``. The puller then says so once (log and
status note) and takes rows with ``clear=1``: the portal deletes them as it returns them, so
they are committed to the inbox before anything else is done with them (the inbox keeps them
across a crash from then on); only a crash between the portal's reply and that commit can
lose a batch, and the periodic reconciliation brings such changes in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import faultpoints
from ..bitrix.client import BitrixClient
from ..bitrix.events import DEAL_EVENTS, parse_id
from ..errors import BitrixError
from ..model import EventSink, EventStatus, Source
from ..store.state import NewEvent, StateStore
from .pullloop import PullLoop

log = logging.getLogger(__name__)

PROCESS_KEY = "offline.process_id"
LICENSE_ERRORS = {"WRONG_LICENSE"}
CLEAR1_NOTE = ("the portal's plan does not keep offline events until they are written "
               "(clear=0 refused); they are taken with clear=1 and stored locally first")
DONE = {EventStatus.SYNCED.value, EventStatus.SKIPPED.value, EventStatus.DELETED.value,
        EventStatus.IGNORED.value}


class OfflinePuller(PullLoop):
    thread_name = "offline-puller"
    metrics_kind = "offline"
    log = log
    def __init__(
        self,
        client: BitrixClient,
        state: StateStore,
        sink: EventSink,
        connector: str,
        interval: float = 5.0,
        on_queued: Callable[[], None] | None = None,
        limit: int = 50,
    ) -> None:
        self.client = client
        self.state = state
        self.sink = sink
        self.connector = connector
        super().__init__(interval)
        self.on_queued = on_queued or (lambda: None)
        self.limit = limit
        self.clear_on_read = False  # the plan refused clear=0: take rows with clear=1
        self.note = ""
        self.pulls = 0

    def _params(self, **extra) -> dict:
        params = dict(extra)
        if self.connector:
            params["auth_connector"] = self.connector
        return params

    def step(self) -> bool:
        """One step: settle the reserved batch if it is done, else reserve a new one.

        Returns True while there is work in flight (call again soon).
        """
        process_id = self.state.get_value(PROCESS_KEY)
        if process_id:
            return self._settle(process_id)
        if self.clear_on_read:
            return self._take_cleared()
        try:
            reply = self.client.call(
                "event.offline.get", self._params(clear=0, limit=self.limit)
            )
        except BitrixError as exc:
            if exc.code not in LICENSE_ERRORS:
                raise
            self.clear_on_read = True
            self.note = CLEAR1_NOTE
            log.warning("offline events: %s", CLEAR1_NOTE)
            return self._take_cleared()
        self.pulls += 1
        result = reply.result if isinstance(reply.result, dict) else {}
        events = result.get("events") or []
        process_id = result.get("process_id")
        if not events or not process_id:
            return False
        self.state.set_value(PROCESS_KEY, str(process_id))  # before anything else
        faultpoints.reach("after_offline_reserve")
        self._enqueue(str(process_id), events)
        return True

    def _take_cleared(self) -> bool:
        """clear=1: the portal forgets the rows as it returns them; commit them at once."""
        reply = self.client.call("event.offline.get", self._params(clear=1, limit=self.limit))
        self.pulls += 1
        result = reply.result if isinstance(reply.result, dict) else {}
        events = result.get("events") or []
        if not events:
            return False
        self._enqueue("", events)
        return len(events) >= self.limit

    def _enqueue(self, process_id: str, rows: list) -> None:
        events = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            name = str(row.get("EVENT_NAME") or "").upper()
            data = row.get("EVENT_DATA") if isinstance(row.get("EVENT_DATA"), dict) else {}
            fields = data.get("FIELDS") if isinstance(data.get("FIELDS"), dict) else {}
            deal_id = parse_id(str(fields.get("ID") or ""))
            message_id = str(row.get("MESSAGE_ID") or "")
            deal_event = name in DEAL_EVENTS and deal_id is not None
            # a MESSAGE_ID repeats for every change of a deal: the key needs the batch (clear=0)
            # or the portal's row ID (clear=1: no batch, each row is returned once)
            key = (f"offline|{process_id}|{message_id}" if process_id
                   else f"offline|row|{row.get('ID')}|{message_id}")
            events.append(
                NewEvent(
                    event=name or "UNKNOWN",
                    deal_id=deal_id if deal_event else None,
                    source=Source.OFFLINE,
                    dedup_key=key,
                    status=EventStatus.QUEUED if deal_event else EventStatus.IGNORED,
                    offline_process_id=process_id or None,
                    offline_message_id=message_id or None,
                )
            )
        stored = self.state.add_events(events)
        for record in stored:
            self.sink.event_received(record)
        if stored:
            self.on_queued()

    def _settle(self, process_id: str) -> bool:
        rows = self.state.offline_rows(process_id)
        if not rows:
            # crashed between reserving and queueing: read the reservation again
            reply = self.client.call(
                "event.offline.get", self._params(process_id=process_id, clear=0, limit=self.limit)
            )
            result = reply.result if isinstance(reply.result, dict) else {}
            events = result.get("events") or []
            if not events:
                self.state.set_value(PROCESS_KEY, None)
                return False
            self._enqueue(process_id, events)
            return True
        if any(status == EventStatus.QUEUED.value for _, status in rows):
            return True  # the worker has not finished them yet
        failed = [m for m, status in rows if status not in DONE and m]
        done = [m for m, status in rows if status in DONE and m]
        if failed:
            self.client.call(
                "event.offline.error", self._params(process_id=process_id, message_id=failed)
            )
        if done:
            self.client.call(
                "event.offline.clear", self._params(process_id=process_id, message_id=done)
            )
        self.state.set_value(PROCESS_KEY, None)
        log.info("offline batch settled: %d cleared, %d marked as errors", len(done), len(failed))
        return True
