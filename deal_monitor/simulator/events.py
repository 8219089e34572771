"""From a finished hit to event traffic: online POSTs, offline queue rows, ONOFFLINEEVENT.

Envelopes are built as the rest module builds them (``Sender::call`` / ``getAuth``):
``event``, ``event_handler_id``, ``data``, ``ts``, ``auth``; app handlers get the acting
user's fresh token data (none when a robot acted), outgoing webhooks only the portal's
identity and their own ``application_token``. Offline rows are skipped when the change was
made by the same app with the same ``auth_connector``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from . import formcodec
from .bindings import Binding, BindingRegistry
from .delivery import DeliveryWorker, Job
from .hits import Actor, Hit
from .oauth import ACCESS_TTL, OAuthServer
from .offline import OfflineQueue

Identity = Callable[[], Mapping[str, str]]


def encode_envelope(event: str, handler_id: int | None, data: Mapping[str, Any], ts: int,
                    auth: Mapping[str, Any]) -> bytes:
    """The form body of one event POST (PHP ``http_build_query`` of the envelope)."""
    payload: dict[str, Any] = {"event": event}
    if handler_id is not None:
        payload["event_handler_id"] = handler_id
    payload["data"] = data
    payload["ts"] = ts
    payload["auth"] = auth
    return formcodec.encode(payload).encode("ascii")


class EventRouter:
    """Turns hits into deliveries and offline rows."""

    def __init__(self, *, bindings: BindingRegistry, offline: OfflineQueue, oauth: OAuthServer,
                 worker: DeliveryWorker, identity: Identity, now: Callable[[], datetime],
                 enabled: Callable[[], bool]) -> None:
        self.bindings = bindings
        self.offline = offline
        self.oauth = oauth
        self.worker = worker
        self.identity = identity
        self.now = now
        self.enabled = enabled
        self._offline_notified: dict[int, float] = {}
        self._notify_lock = threading.Lock()

    # -- auth blocks ----------------------------------------------------------------------
    def webhook_auth(self, binding: Binding) -> dict[str, Any]:
        ident = self.identity()
        return {
            "domain": ident["domain"],
            "client_endpoint": ident["client_endpoint"],
            "server_endpoint": ident["server_endpoint"],
            "member_id": ident["member_id"],
            "application_token": binding.application_token,
        }

    def app_auth(self, client_id: str, user_id: int, *, refresh: bool = False) -> dict[str, Any]:
        ident = self.identity()
        app = self.oauth.app(client_id)
        if user_id <= 0:
            return {"domain": ident["domain"], "member_id": ident["member_id"],
                    "application_token": app.application_token}
        token = self.oauth.event_token(client_id, user_id)
        auth: dict[str, Any] = {
            "access_token": token.access_token,
            "expires": int(token.expires_at),
            "expires_in": ACCESS_TTL,
            "scope": token.scope,
            "domain": ident["domain"],
            "server_endpoint": ident["server_endpoint"],
            "status": app.status,
            "client_endpoint": ident["client_endpoint"],
            "member_id": ident["member_id"],
            "user_id": user_id,
        }
        if refresh:
            auth["refresh_token"] = token.refresh_token
        auth["application_token"] = app.application_token
        return auth

    # -- dispatch -----------------------------------------------------------------------
    def dispatch(self, hit: Hit) -> None:
        notified_apps: set[str] = set()
        for event, data in hit.events:
            for binding in self.bindings.for_event(event):
                if not binding.is_webhook:
                    app = self.oauth.apps.get(binding.owner)
                    if app is None or app.revoked or not app.installed:
                        continue
                if binding.offline:
                    if self._queue_offline(binding, hit.actor, event, data):
                        notified_apps.add(binding.owner)
                else:
                    self.send(binding, event, data, hit.actor)
        for client_id in notified_apps:
            self._notify_offline(client_id, hit.actor)

    def send(self, binding: Binding, event: str, data: Mapping[str, Any], actor: Actor,
             *, refresh: bool = False) -> None:
        if binding.is_webhook:
            auth = self.webhook_auth(binding)
        else:
            user = binding.user_id if binding.user_id > 0 else actor.user_id
            auth = self.app_auth(binding.owner, user, refresh=refresh)
        self.post(binding.handler, event, data, auth, binding.id)

    def post(self, url: str, event: str, data: Mapping[str, Any], auth: Mapping[str, Any],
             handler_id: int | None) -> None:
        ts = int(self.now().timestamp())
        body = encode_envelope(event, handler_id, data, ts, auth)
        fields = data.get("FIELDS") if isinstance(data, Mapping) else None
        deal_id = int(fields["ID"]) if isinstance(fields, Mapping) and "ID" in fields else None
        job = Job(event, deal_id, url, body, handler_id)
        if self.enabled():
            self.worker.submit(job)
        else:
            self.worker.record_dropped(job, "portal cannot reach the handler (delivery disabled)")

    def _queue_offline(self, binding: Binding, actor: Actor, event: str,
                       data: Mapping[str, Any]) -> bool:
        if actor.client_id == binding.owner and actor.connector == binding.connector:
            return False  # "Event skipped because initializer is current application"
        self.offline.call_event(binding.owner, binding.connector, event, dict(data),
                                {"user_id": actor.user_id}, self.now())
        return True

    def _notify_offline(self, client_id: str, actor: Actor) -> None:
        for binding in self.bindings.of_owner(client_id):
            if binding.event != "ONOFFLINEEVENT" or binding.offline:
                continue
            timeout = int(binding.options.get("minTimeout", 1))
            with self._notify_lock:
                last = self._offline_notified.get(binding.id)
                now = time.monotonic()
                if timeout > 0 and last is not None and now - last < timeout:
                    continue
                self._offline_notified[binding.id] = now
            self.send(binding, "ONOFFLINEEVENT", {}, actor, refresh=True)
