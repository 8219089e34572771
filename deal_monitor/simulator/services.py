"""The bundle of portal parts a REST method may touch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .bindings import BindingRegistry
from .events import EventRouter
from .oauth import OAuthServer
from .offline import OfflineQueue
from .portal import Portal


@dataclass
class Services:
    """Shared by all method implementations of one simulator."""

    portal: Portal
    oauth: OAuthServer
    bindings: BindingRegistry
    offline: OfflineQueue
    router: EventRouter
    identity: Callable[[], Mapping[str, str]]
