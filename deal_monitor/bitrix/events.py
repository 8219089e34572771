"""Reading an incoming Bitrix24 event POST: parse strictly, verify origin, validate.

The body is the only thing we can check: ``auth[application_token]`` (compared in constant
time) and, when pinned, ``auth[member_id]`` and the portal's domain. Everything else in the
body is a hint: the deal is always re-read from the configured portal, never from the
``client_endpoint`` the body names.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import phpform

DEAL_EVENTS = frozenset({"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"})
APP_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUNINSTALL"})
MAX_ID = 2**63 - 1

_ID = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_TS = re.compile(r"[0-9]{1,12}", re.ASCII)
_EVENT = re.compile(r"[A-Z][A-Z0-9_]{0,63}", re.ASCII)
_HANDLER = re.compile(r"[0-9]{0,19}", re.ASCII)


class Rejection(Exception):
    """The request is refused with ``status``; ``reason`` is safe to log and show."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class IncomingEvent:
    event: str
    deal_id: int | None
    handler_id: str
    ts: int | None
    member_id: str
    domain: str
    dedup_key: str
    fields: dict  # the whole parsed form (install events carry tokens in it)
    previous_token: bool = False  # signed with the token being rotated out (grace period)


def parse_id(text: str | None) -> int | None:
    """A deal ID: ASCII digits only, no sign, no leading zero, within int64; else None."""
    if text is None or not _ID.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of the whole token; an unset expected token matches nothing."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def read_event(
    body: bytes,
    expected_token: str,
    member_id: str = "",
    domain: str = "",
    install_check: Callable[[dict], bool] | None = None,
    previous_token: str = "",
) -> IncomingEvent:
    """Parse and verify an event body; raise :class:`Rejection` with the HTTP status to send.

    ``install_check`` vouches for an ``ONAPPINSTALL`` that carries a token we do not know
    yet (the install is where the app learns it); it must prove the event by a REST call with
    the event's own access token against the configured portal. ``previous_token`` is the
    token being rotated out: accepted during its grace period, and the event says so.
    """
    try:
        form = phpform.decode(body, max_fields=64, max_depth=3)
    except phpform.FormError as exc:
        raise Rejection(400, f"malformed body: {exc}") from None
    token = phpform.get_path(form, "auth", "application_token")
    current = token_matches(token, expected_token)
    previous = token_matches(token, previous_token)  # always compared: no timing difference
    installing = (
        phpform.get_path(form, "event") == "ONAPPINSTALL"
        and install_check is not None
        and not current
    )
    if installing:
        if not install_check(form):
            raise Rejection(401, "install event could not be verified")
    elif not expected_token:
        raise Rejection(401, "application token is not configured")
    elif not current and not previous:
        raise Rejection(401, "wrong application token")
    sender_member = phpform.get_path(form, "auth", "member_id") or ""
    if member_id and not hmac.compare_digest(sender_member.lower(), member_id.lower()):
        raise Rejection(403, "event from another portal (member_id)")
    sender_domain = phpform.get_path(form, "auth", "domain") or ""
    if domain and sender_domain.lower() != domain.lower():
        raise Rejection(403, "event from another portal (domain)")
    event = phpform.get_path(form, "event") or ""
    if not _EVENT.fullmatch(event):
        raise Rejection(400, "missing or malformed event name")
    ts_text = phpform.get_path(form, "ts")
    if ts_text is not None and not _TS.fullmatch(ts_text):
        raise Rejection(400, "malformed ts")
    handler_id = phpform.get_path(form, "event_handler_id") or ""
    if not _HANDLER.fullmatch(handler_id):
        raise Rejection(400, "malformed event_handler_id")
    deal_id: int | None = None
    if event in DEAL_EVENTS:
        raw_id = phpform.get_path(form, "data", "FIELDS", "ID")
        deal_id = parse_id(raw_id)
        if deal_id is None:
            raise Rejection(400, "missing or invalid data[FIELDS][ID]")
    key = "|".join([event, handler_id, str(deal_id or ""), ts_text or ""])
    return IncomingEvent(
        event=event,
        deal_id=deal_id,
        handler_id=handler_id,
        ts=int(ts_text) if ts_text else None,
        member_id=sender_member,
        domain=sender_domain,
        dedup_key=hashlib.sha256(key.encode()).hexdigest()[:32],
        fields=form,
        previous_token=previous and not current,
    )
