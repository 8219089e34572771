"""Typed settings: every key, its default and its check declared once.

Settings come from a TOML file; the two secrets may also come from the environment
(``DEAL_MONITOR_WEBHOOK_URL``, ``DEAL_MONITOR_APPLICATION_TOKEN``), which wins over the file.
A wrong value raises :class:`ConfigError` whose message names the key, so the CLI can print
one clear line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_WEBHOOK_URL = "DEAL_MONITOR_WEBHOOK_URL"
ENV_APPLICATION_TOKEN = "DEAL_MONITOR_APPLICATION_TOKEN"

PLANS: dict[str, tuple[int, float]] = {"standard": (50, 2.0), "enterprise": (250, 5.0)}
_STAGE = re.compile(r"^(C\d+:)?[A-Za-z0-9_]+$")


class ConfigError(ValueError):
    """A setting is missing or wrong; ``key`` names it as ``section.key``."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class PortalSettings:
    webhook_url: str = ""
    application_token: str = ""
    member_id: str = ""
    plan: str = "standard"
    # OAuth local app (app mode); the secret and tokens live in the keyring, not here.
    client_id: str = ""
    portal_url: str = ""
    oauth_server: str = ""
    offline_events: bool = False  # app mode: pull event.offline.get (needs admin rights)
    auth_connector: str = "deal_monitor"

    @property
    def bucket(self) -> tuple[int, float]:
        """(burst, drain per second) of the portal's leaky bucket."""
        return PLANS[self.plan]

    @property
    def domain(self) -> str:
        """Host[:port] of the portal, from whichever address is configured."""
        return urlsplit(self.webhook_url or self.portal_url).netloc


@dataclass(frozen=True)
class ListenerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    path: str = "/bitrix24/events"
    public_url: str = ""
    allow_networks: tuple[str, ...] = ()
    trusted_proxy: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class SyncSettings:
    skip_stages: tuple[str, ...] = ("NEW",)
    debounce_seconds: float = 0.5
    max_delay_seconds: float = 5.0
    reconcile_minutes: float = 5.0
    reconcile_overlap_minutes: float = 10.0
    max_attempts: int = 8
    offline_poll_seconds: float = 5.0
    deletion_check_minutes: float = 60.0


@dataclass(frozen=True)
class TargetSettings:
    url: str = ""
    table: str = "deal"


@dataclass(frozen=True)
class StorageSettings:
    data_dir: str = ""
    state_url: str = ""


@dataclass(frozen=True)
class Settings:
    portal: PortalSettings = field(default_factory=PortalSettings)
    listener: ListenerSettings = field(default_factory=ListenerSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    target: TargetSettings = field(default_factory=TargetSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)

    def replace(self, section: str, **changes: Any) -> Settings:
        """A copy with some keys of one section changed (validated like a loaded file)."""
        current = getattr(self, section)
        updated = dataclasses.replace(current, **changes)
        settings = dataclasses.replace(self, **{section: updated})
        validate(settings)
        return settings


_SECTIONS: dict[str, type] = {
    "portal": PortalSettings,
    "listener": ListenerSettings,
    "sync": SyncSettings,
    "target": TargetSettings,
    "storage": StorageSettings,
}


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the default and convert lists to tuples."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "must be a whole number")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, "must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(key, "must be a string")
        return value.strip()
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "must be a list of strings")
        return tuple(v.strip() for v in value)
    raise ConfigError(key, "unsupported type")  # pragma: no cover - defaults are fixed


def from_mapping(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from parsed TOML; unknown sections or keys are errors (typos must show)."""
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _SECTIONS:
            raise ConfigError(name, f"unknown section (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, Mapping):
            raise ConfigError(name, "must be a table")
        cls = _SECTIONS[name]
        defaults = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        values = {}
        for key, raw in value.items():
            if key not in known:
                raise ConfigError(f"{name}.{key}", "unknown key")
            values[key] = _coerce(f"{name}.{key}", raw, getattr(defaults, key))
        sections[name] = cls(**values)
    settings = Settings(**sections)
    env = os.environ if env is None else env
    portal_env = {}
    if env.get(ENV_WEBHOOK_URL):
        portal_env["webhook_url"] = env[ENV_WEBHOOK_URL].strip()
    if env.get(ENV_APPLICATION_TOKEN):
        portal_env["application_token"] = env[ENV_APPLICATION_TOKEN].strip()
    if portal_env:
        settings = dataclasses.replace(
            settings, portal=dataclasses.replace(settings.portal, **portal_env)
        )
    validate(settings)
    return settings


def load(path: Path | str | None, env: Mapping[str, str] | None = None) -> Settings:
    """Read a TOML file (or nothing: all defaults) into validated settings."""
    if path is None:
        return from_mapping({}, env)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("--config", f"file not found: {path.name}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"not valid TOML ({exc})") from exc
    return from_mapping(data, env)


def validate(s: Settings) -> None:
    """Raise ConfigError for the first wrong key."""
    p = s.portal
    if p.plan not in PLANS:
        raise ConfigError("portal.plan", f"must be one of {', '.join(PLANS)}")
    if p.webhook_url:
        parts = urlsplit(p.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("portal.webhook_url", "must be an http(s) URL")
        if not re.search(r"/rest/\d+/[^/]+/?$", parts.path):
            raise ConfigError(
                "portal.webhook_url", "must look like https://<portal>/rest/<user id>/<secret>/"
            )
    if p.portal_url:
        parts = urlsplit(p.portal_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("portal.portal_url", "must be an http(s) URL")
    if p.client_id and not p.portal_url:
        raise ConfigError("portal.portal_url", "is needed with client_id (the portal's address)")
    if p.offline_events and not p.client_id:
        raise ConfigError("portal.offline_events", "works only for an OAuth app (set client_id)")
    if p.member_id and not re.fullmatch(r"[0-9a-fA-F]{32}", p.member_id):
        raise ConfigError("portal.member_id", "must be 32 hexadecimal characters")
    ls = s.listener
    if not 0 <= ls.port <= 65535:
        raise ConfigError("listener.port", "must be between 0 and 65535")
    if not ls.path.startswith("/") or ls.path == "/healthz":
        raise ConfigError("listener.path", "must start with / and not be /healthz")
    if ls.public_url:
        parts = urlsplit(ls.public_url)
        if parts.scheme not in ("http", "https") or "." not in (parts.hostname or ""):
            raise ConfigError("listener.public_url", "must be a public http(s) URL")
    for index, net in enumerate(ls.allow_networks):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise ConfigError(f"listener.allow_networks[{index}]", "not an IP network") from exc
    if ls.trusted_proxy:
        try:
            ipaddress.ip_address(ls.trusted_proxy)
        except ValueError as exc:
            raise ConfigError("listener.trusted_proxy", "must be an IP address") from exc
    sy = s.sync
    for index, stage in enumerate(sy.skip_stages):
        if not _STAGE.match(stage):
            raise ConfigError(f"sync.skip_stages[{index}]", f"not a stage id: {stage!r}")
    if not 0 <= sy.debounce_seconds <= 60:
        raise ConfigError("sync.debounce_seconds", "must be between 0 and 60")
    if sy.max_delay_seconds < sy.debounce_seconds:
        raise ConfigError("sync.max_delay_seconds", "must not be below debounce_seconds")
    if sy.reconcile_minutes < 0:
        raise ConfigError("sync.reconcile_minutes", "must not be negative (0 turns it off)")
    if sy.max_attempts < 1:
        raise ConfigError("sync.max_attempts", "must be at least 1")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", s.target.table):
        raise ConfigError("target.table", "must be a plain SQL identifier")
    for key, url in (("target.url", s.target.url), ("storage.state_url", s.storage.state_url)):
        if url and "://" not in url:
            raise ConfigError(key, "must be an SQLAlchemy URL such as sqlite:///path.db")


def to_toml(s: Settings) -> str:
    """Serialise settings back to TOML (secrets included only if they are set in the object)."""
    lines: list[str] = []
    for name in _SECTIONS:
        section = getattr(s, name)
        lines.append(f"[{name}]")
        for f in dataclasses.fields(section):
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
