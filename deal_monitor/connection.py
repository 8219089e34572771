"""The three ways to connect a portal, read from the settings.

* ``pull``: an inbound webhook alone; changes come from the incremental change poll
  (``sync.poll_seconds``) and reconciliation. No application token, nothing listens for events.
* ``push``: an inbound webhook plus an outgoing webhook's application token; the portal posts
  events to ``listener.public_url`` (a tunnel, a proxy, or a LAN address for an on-premise portal).
* ``app``: an OAuth local application signed in through the browser; with
  ``portal.offline_events`` it pulls the portal's offline-event queue (``app_offline``).
"""

from __future__ import annotations

from .config import Settings

PULL = "pull"
PUSH = "push"
APP = "app"
APP_OFFLINE = "app_offline"
NONE = "none"

PULL_DEFAULT_SECONDS = 10.0


def mode(settings: Settings, webhook_url: str = "", application_token: str = "") -> str:
    """Which way this configuration connects. ``webhook_url``/``application_token`` are the
    secrets as the running app sees them (they may come from the keyring, not the file)."""
    portal = settings.portal
    webhook = webhook_url or portal.webhook_url
    token = application_token or portal.application_token
    if webhook:
        return PUSH if token else PULL
    if portal.client_id and portal.portal_url:
        return APP_OFFLINE if portal.offline_events else APP
    return NONE


def poll_seconds(settings: Settings, current_mode: str) -> float:
    """The change poll's interval (0: off). Automatic (-1) means on in pull mode only."""
    configured = settings.sync.poll_seconds
    if configured >= 0:
        return configured
    return PULL_DEFAULT_SECONDS if current_mode == PULL else 0.0
