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
# shapes of the fields compared or pinned: checked before any comparison, so a hostile value
# is a 400/401, never a 500 (hmac.compare_digest refuses non-ASCII str) and never a pin
_TOKEN = re.compile(r"[A-Za-z0-9_.~-]{1,128}", re.ASCII)
_MEMBER = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?", re.ASCII)


def valid_member_id(value: str) -> bool:
    """A portal's ``member_id`` (32 hex digits in practice): ASCII letters, digits, - and _."""
    return bool(_MEMBER.fullmatch(value))


def normal_host(value: str) -> str | None:
    """A host[:port] in ASCII, lower case (an internationalised name in its IDNA form)."""
    host, colon, port = value.strip().rpartition(":") if ":" in value else (value.strip(), "", "")
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    text = f"{ascii_host}{colon}{port}".lower()
    return text if _HOST.fullmatch(text) else None


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
    unverified_install: bool = False  # ONAPPINSTALL with a new token: verified later, off-thread


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
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def read_event(
    body: bytes,
    expected_token: str,
    member_id: str = "",
    domain: str = "",
    install_check: Callable[[dict], bool] | None = None,
    previous_token: str = "",
) -> IncomingEvent:
    """Parse and verify an event body; raise :class:`Rejection` with the HTTP status to send.

    ``install_check`` takes an ``ONAPPINSTALL`` that carries a token we do not know yet (the
    install is where the app learns it): it checks the form's shape and queues it to be proven
    later by a REST call with the event's own access token (never on the listener thread);
    the event comes back with ``unverified_install`` set. ``previous_token`` is the
    token being rotated out: accepted during its grace period, and the event says so.
    """
    try:
        form = phpform.decode(body, max_fields=64, max_depth=3)
    except phpform.FormError as exc:
        raise Rejection(400, f"malformed body: {exc}") from None
    token = phpform.get_path(form, "auth", "application_token")
    if token is not None and not isinstance(token, str):
        raise Rejection(400, "malformed application token")
    if token and not _TOKEN.fullmatch(token):
        raise Rejection(401, "wrong application token")  # same answer as any wrong token
    sender_member = phpform.get_path(form, "auth", "member_id") or ""
    if not isinstance(sender_member, str) or (sender_member and not valid_member_id(sender_member)):
        raise Rejection(400, "malformed member_id")
    raw_domain = phpform.get_path(form, "auth", "domain") or ""
    sender_domain = normal_host(raw_domain) if isinstance(raw_domain, str) and raw_domain else ""
    if sender_domain is None:
        raise Rejection(400, "malformed domain")
    current = token_matches(token, expected_token)
    previous = token_matches(token, previous_token)  # always compared: no timing difference
    installing = (
        phpform.get_path(form, "event") == "ONAPPINSTALL"
        and install_check is not None
        and not current
    )
    if installing:
        pass  # checked last, once everything else about the form is valid (see below)
    elif not expected_token:
        raise Rejection(401, "application token is not configured")
    elif not current and not previous:
        raise Rejection(401, "wrong application token")
    if member_id and not hmac.compare_digest(sender_member.lower().encode("ascii"),
                                             member_id.lower().encode("utf-8", "replace")):
        raise Rejection(403, "event from another portal (member_id)")
    if domain and sender_domain != (normal_host(domain) or domain.lower()):
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
    # the check only looks at the form and queues it for verification (a REST call made
    # later, off this thread); it raises Rejection when it cannot take more
    if installing and not install_check(form):
        raise Rejection(401, "install event could not be verified")
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
        unverified_install=installing,
    )
