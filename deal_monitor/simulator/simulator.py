"""``PortalSimulator``: one fake Bitrix24 portal on 127.0.0.1, wired together.

Owns the portal state, the OAuth server, handler registrations, the offline queue, the
delivery thread and the waitress server thread; ``start()``/``stop()`` bring them up and
down (also as a context manager).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Mapping
from typing import Any

from . import limits
from .activity import Activity
from .bindings import DEAL_EVENTS, BindingRegistry
from .delivery import Delivery, DeliveryWorker
from .events import EventRouter
from .faults import Faults
from .formats import portal_zone
from .hits import Actor, Hit
from .limits import LeakyBucket, OperatingLimiter
from .oauth import App, OAuthServer
from .offline import OfflineQueue
from .portal import Portal
from .profile import Draws, Profile, profile_named
from .rest import RestService
from .server import ThreadedServer
from .services import Services
from .stats import Stats
from .wsgi import PortalApp

_ALNUM = string.ascii_lowercase + string.digits


def _random_secret(length: int = 16) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class PortalSimulator:
    """A faithful stand-in for a Bitrix24 cloud portal (REST, events, limits, OAuth).

    ``profile="realistic"`` adds server time per call, delayed, reordered and duplicated
    event delivery and PHP-rendered dates (:mod:`.profile`); ``seed`` fixes its random
    draws; ``time_zone`` (an IANA name or ``±hh:mm``) replaces ``utc_offset`` and defaults to
    the profile's zone.
    """

    def __init__(
        self,
        plan: str | tuple[float, float] = "standard",
        rate_limit: bool = True,
        operating_limit: float = 480.0,
        method_costs: Mapping[str, float] | None = None,
        utc_offset: str | None = None,
        member_id: str | None = None,
        application_token: str | None = None,
        webhook_user: int = 1,
        webhook_secret: str | None = None,
        domain: str | None = None,
        latency: float = 0.0,
        operating_window: float = 600.0,
        profile: str | Profile = "default",
        seed: int | None = None,
        time_zone: str | None = None,
    ) -> None:
        self.profile = profile_named(profile).with_seed(seed)
        self.draws = Draws(self.profile)
        self.tz = portal_zone(time_zone or utc_offset or self.profile.time_zone,
                              php_dates=self.profile.php_dates)
        self.member_id = member_id or secrets.token_hex(16)
        self.application_token = application_token or secrets.token_hex(16)
        self.webhook_user = webhook_user
        self.webhook_secret = webhook_secret or _random_secret()
        self.latency = latency
        self.delivery_enabled = True
        self._domain = domain
        self._server: ThreadedServer | None = None
        self._activity: Activity | None = None

        burst, rate = limits.plan_limits(plan)
        self.bucket: LeakyBucket | None = LeakyBucket(burst, rate) if rate_limit else None
        self.operating = OperatingLimiter(operating_limit, operating_window)
        self.stats = Stats()
        self.faults = Faults()
        self.oauth = OAuthServer(self._identity)
        self.bindings = BindingRegistry()
        self.offline = OfflineQueue(self.tz)
        self._worker = DeliveryWorker(draws=self.draws)
        self.portal = Portal(self.tz, self.faults, self._on_hit)
        self.router = EventRouter(
            bindings=self.bindings, offline=self.offline, oauth=self.oauth, worker=self._worker,
            identity=self._identity, now=self.portal.now, enabled=lambda: self.delivery_enabled,
        )
        services = Services(self.portal, self.oauth, self.bindings, self.offline, self.router,
                            self._identity)
        self.rest = RestService(services, self.operating, self.stats, method_costs, self.tz,
                                skew=lambda: self.portal.clock_offset, draws=self.draws)
        self.app = PortalApp(
            portal=self.portal, service=self.rest, oauth=self.oauth, stats=self.stats,
            faults=self.faults, bucket=lambda: self.bucket,
            webhook=lambda: (self.webhook_user, self.webhook_secret),
            latency=lambda: self.latency + self.draws.network(),
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> PortalSimulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._server = ThreadedServer(self.app, host, port)
        self._worker.start()
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop the demo activity, the HTTP server and the delivery thread."""
        self.stop_activity()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._worker.stop()

    def __enter__(self) -> PortalSimulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return self._server.port

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def domain(self) -> str:
        if self._domain:
            return self._domain
        return self.url.removeprefix("http://")

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/rest/{self.webhook_user}/{self.webhook_secret}/"

    @property
    def oauth_url(self) -> str:
        """Token endpoint (``/oauth/token/``), standing in for ``oauth.bitrix.info``."""
        return f"{self.url}/oauth/token/"

    def _identity(self) -> dict[str, str]:
        rest = f"{self.url}/rest/" if self._server is not None else "http://127.0.0.1/rest/"
        client = rest if not self._domain else f"https://{self._domain}/rest/"
        return {
            "domain": self.domain if self._server is not None else (self._domain or "127.0.0.1"),
            "member_id": self.member_id,
            "client_endpoint": client,
            "server_endpoint": rest,
            "oauth_domain": rest.removeprefix("http://").removesuffix("/rest/"),
        }

    # -- events ----------------------------------------------------------------------------------
    def _on_hit(self, hit: Hit) -> None:
        self.router.dispatch(hit)

    def add_outgoing_webhook(self, handler_url: str, events: Iterable[str] = DEAL_EVENTS,
                             application_token: str | None = None) -> int:
        """Register an outgoing webhook as an admin does in the UI; returns its handler id."""
        token = application_token or self.application_token
        first: int | None = None
        for event in events:
            row = self.bindings.add(event.upper(), handler_url, "", application_token=token)
            first = row.id if first is None else first
        if first is None:
            raise ValueError("no events given")
        return first

    def remove_outgoing_webhook(self, handler_url: str) -> int:
        return sum(self.bindings.remove("", event, handler_url) for event in DEAL_EVENTS)

    @property
    def deliveries(self) -> list[Delivery]:
        return self._worker.records()

    def clear_deliveries(self) -> None:
        self._worker.clear_records()

    def wait_deliveries(self, timeout: float = 5.0) -> bool:
        """True once nothing is queued or in flight (within ``timeout`` seconds)."""
        return self._worker.wait_idle(timeout)

    @property
    def delivery_delay(self) -> float:
        return self._worker.delay

    @delivery_delay.setter
    def delivery_delay(self, seconds: float) -> None:
        self._worker.delay = seconds

    # -- stats ----------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        self.stats.reset()

    def reset_limits(self) -> None:
        if self.bucket is not None:
            self.bucket.reset()
        self.operating.reset()

    # -- OAuth / apps -----------------------------------------------------------------------------
    def register_app(self, client_id: str, client_secret: str, *, scope: str = "crm,user_brief",
                     installed: bool = True, application_token: str | None = None) -> App:
        """Add a local app; it uses the simulator's ``application_token`` unless given one."""
        app = self.oauth.register_app(client_id, client_secret, scope=scope,
                                      application_token=application_token or self.application_token)
        app.installed = installed
        return app

    def issue_auth_code(self, client_id: str | None = None, user_id: int = 1) -> str:
        """A one-time authorization code (valid 30 s), as after the OAuth redirect."""
        return self.oauth.issue_code(client_id, user_id)

    def issue_tokens(self, client_id: str | None = None, user_id: int = 1) -> dict[str, Any]:
        """A fresh token pair, in the token endpoint's response shape."""
        app = self.oauth.app(client_id)
        return self.oauth.token_response(self.oauth.issue_tokens(app.client_id, user_id))

    def expire_access_tokens(self) -> None:
        """All current access tokens answer ``expired_token`` from now on."""
        self.oauth.expire_access_tokens()

    def revoke_app(self, client_id: str | None = None) -> None:
        """REST answers ``invalid_token``; refresh answers ``invalid_grant``."""
        self.oauth.revoke(client_id)

    def install_app(self, handler_url: str, client_id: str | None = None,
                    user_id: int = 1) -> dict[str, Any]:
        """POST ONAPPINSTALL (with fresh tokens) to the app's install handler; returns them."""
        app = self.oauth.app(client_id)
        app.installed = True
        app.revoked = False
        app.install_url = handler_url
        token = self.oauth.issue_tokens(app.client_id, user_id)
        ident = self._identity()
        auth = {
            "access_token": token.access_token, "expires": int(token.expires_at),
            "expires_in": 3600, "scope": token.scope, "domain": ident["domain"],
            "server_endpoint": ident["server_endpoint"], "status": app.status,
            "client_endpoint": ident["client_endpoint"], "member_id": ident["member_id"],
            "user_id": user_id, "refresh_token": token.refresh_token,
            "application_token": app.application_token,
        }
        data = {"VERSION": str(app.version), "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"}
        self.router.post(handler_url, "ONAPPINSTALL", data, auth, None)
        return self.oauth.token_response(token)

    def uninstall_app(self, client_id: str | None = None, handler_url: str | None = None) -> None:
        """POST ONAPPUNINSTALL, then drop the app's handlers, queue and tokens."""
        app = self.oauth.app(client_id)
        ident = self._identity()
        auth = {"domain": ident["domain"], "client_endpoint": ident["client_endpoint"],
                "server_endpoint": ident["server_endpoint"], "member_id": ident["member_id"],
                "application_token": app.application_token}
        data = {"LANGUAGE_ID": "ru", "CLEAN": "0"}
        bound = [b for b in self.bindings.of_owner(app.client_id) if b.event == "ONAPPUNINSTALL"]
        targets = [(b.handler, b.id) for b in bound]
        if handler_url:
            targets.append((handler_url, None))
        elif not targets and app.install_url:
            targets.append((app.install_url, None))
        for url, handler_id in targets:
            self.router.post(url, "ONAPPUNINSTALL", data, auth, handler_id)
        self.bindings.remove_owner(app.client_id)
        self.offline.drop_app(app.client_id)
        app.installed = False
        app.revoked = True

    # -- demo -----------------------------------------------------------------------------------
    def start_activity(self, interval: float = 3.0, seed: int | None = None) -> None:
        """Create and move deals every few seconds (demo mode)."""
        self.stop_activity()
        self._activity = Activity(self.portal, interval, seed)
        self._activity.start()

    def stop_activity(self) -> None:
        if self._activity is not None:
            self._activity.stop()
            self._activity = None

    def act_as_robot(self) -> Any:
        """Context manager: Python API changes inside it are made by automation (no user)."""
        return self.portal.hits.open(Actor.robot())
