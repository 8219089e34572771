"""Typed settings: every key, its default and its check declared once.

Settings come from a TOML file; the two secrets may also come from the environment
(``DEAL_MONITOR_WEBHOOK_URL``, ``DEAL_MONITOR_APPLICATION_TOKEN``), which wins over the file.
A wrong value raises :class:`ConfigError` whose message names the key, so the CLI can print
one clear line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
import tomlkit.exceptions

from . import envconfig

log = logging.getLogger(__name__)

ENV_WEBHOOK_URL = "DEAL_MONITOR_WEBHOOK_URL"
ENV_APPLICATION_TOKEN = "DEAL_MONITOR_APPLICATION_TOKEN"
ENV_PREVIOUS_TOKEN = "DEAL_MONITOR_PREVIOUS_APPLICATION_TOKEN"
ENV_CLIENT_SECRET = "DEAL_MONITOR_CLIENT_SECRET"

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
    # a token being rotated out, still accepted (set it with the new one, remove it later);
    # a token replaced in the desktop settings is kept for token_grace_minutes by itself
    previous_application_token: str = ""
    token_grace_minutes: float = 60.0
    member_id: str = ""
    plan: str = "standard"
    # OAuth local app (app mode). The client secret comes from the keyring (desktop), the
    # environment (DEAL_MONITOR_CLIENT_SECRET) or client_secret here (servers); the tokens
    # live in the keyring, or where none exists in an owner-only file in the data folder.
    client_id: str = ""
    client_secret: str = ""
    portal_url: str = ""
    oauth_server: str = ""
    signin_port: int = 0  # loopback port of the browser sign-in's redirect (0: any free port)
    offline_events: bool = False  # app mode: pull event.offline.get (needs admin rights)
    auth_connector: str = "deal_monitor"
    # an on-premise portal on a private network may call listener.public_url over plain
    # http:// when it is a private (RFC 1918 / loopback) address; public http:// is refused
    allow_private_http: bool = False

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
    offline_poll_seconds: float = 2.0
    deletion_check_minutes: float = 60.0
    # incremental change poll by DATE_MODIFY (pull mode); -1: automatic (10 s in pull mode,
    # off otherwise), 0: off
    poll_seconds: float = -1.0


@dataclass(frozen=True)
class TargetSettings:
    url: str = ""
    table: str = "deal"


@dataclass(frozen=True)
class MappingSettings:
    """How deals land in the target table (see deal_monitor/mapping)."""

    preset: str = "default"  # default | seed | custom
    key_column: str = ""  # custom: the column that holds the deal ID ("" = link table)
    columns: dict = field(default_factory=dict)  # custom: column -> source
    products: bool = False  # also write crm.deal.productrows into product_table
    product_table: str = "deal_product"
    product_columns: dict = field(default_factory=dict)  # "" = the default product columns
    product_deal_column: str = "deal_id"  # the product table's column for the deal ID
    product_row_column: str = "row_id"  # ... and for the product row's ID (its key)


@dataclass(frozen=True)
class StorageSettings:
    data_dir: str = ""
    state_url: str = ""
    keep_days: int = 30  # finished inbox rows, deal timelines and rejections older than this go


@dataclass(frozen=True)
class Settings:
    portal: PortalSettings = field(default_factory=PortalSettings)
    listener: ListenerSettings = field(default_factory=ListenerSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    target: TargetSettings = field(default_factory=TargetSettings)
    mapping: MappingSettings = field(default_factory=MappingSettings)
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
    "mapping": MappingSettings,
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
    if isinstance(default, dict):
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(key, "must be a table of strings")
        return {k.strip(): v.strip() for k, v in value.items()}
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "must be a list of strings")
        return tuple(v.strip() for v in value)
    raise ConfigError(key, "unsupported type")  # pragma: no cover - defaults are fixed


def from_mapping(data: Mapping[str, Any], env: Mapping[str, str] | None = None,
                 base: Path | None = None) -> Settings:
    """Build settings from parsed TOML; unknown sections or keys are errors (typos must show)."""
    data = upgrade_file_data(data)  # renamed keys first: the environment names today's keys
    data = envconfig.prepare(data, os.environ if env is None else env, _SECTIONS, base)
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
    if env.get(ENV_PREVIOUS_TOKEN):
        portal_env["previous_application_token"] = env[ENV_PREVIOUS_TOKEN].strip()
    if env.get(ENV_CLIENT_SECRET):
        portal_env["client_secret"] = env[ENV_CLIENT_SECRET].strip()
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
    return from_mapping(data, env, base=path.resolve().parent)


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
    if p.oauth_server:  # the client secret and refresh tokens go there
        check_secure_url("portal.oauth_server", p.oauth_server, p.allow_private_http)
    if p.offline_events and not p.client_id:
        raise ConfigError("portal.offline_events", "works only for an OAuth app (set client_id)")
    if p.member_id and not re.fullmatch(r"[0-9a-fA-F]{32}", p.member_id):
        raise ConfigError("portal.member_id", "must be 32 hexadecimal characters")
    ls = s.listener
    if s.portal.token_grace_minutes < 0:
        raise ConfigError("portal.token_grace_minutes", "must not be negative (0 turns it off)")
    if not 0 <= ls.port <= 65535:
        raise ConfigError("listener.port", "must be between 0 and 65535")
    if not ls.path.startswith("/") or ls.path == "/healthz":
        raise ConfigError("listener.path", "must start with / and not be /healthz")
    if ls.public_url:
        check_secure_url("listener.public_url", ls.public_url, s.portal.allow_private_http)
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
    if sy.poll_seconds < 0 and sy.poll_seconds != -1:
        raise ConfigError("sync.poll_seconds", "must not be negative (0 turns it off)")
    if 0 < sy.poll_seconds < 1:
        raise ConfigError("sync.poll_seconds", "must be at least 1 (or 0: off)")
    if sy.offline_poll_seconds <= 0:
        raise ConfigError("sync.offline_poll_seconds", "must be above 0")
    if not 0 <= s.portal.signin_port <= 65535:
        raise ConfigError("portal.signin_port", "must be between 0 and 65535")
    if sy.max_attempts < 1:
        raise ConfigError("sync.max_attempts", "must be at least 1")
    if s.storage.keep_days < 1:
        raise ConfigError("storage.keep_days", "must be at least 1")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", s.target.table):
        raise ConfigError("target.table", "must be a plain SQL identifier")
    _validate_mapping(s)
    for key, url in (("target.url", s.target.url), ("storage.state_url", s.storage.state_url)):
        if url and "://" not in url:
            raise ConfigError(key, "must be an SQLAlchemy URL such as sqlite:///path.db")


def check_secure_url(key: str, url: str, allow_private_http: bool) -> None:
    """An address secrets travel to: public https://, or plain http:// to a private address
    when ``portal.allow_private_http`` allows it (README); else ConfigError for ``key``."""
    parts = urlsplit(url)
    private_http = (parts.scheme == "http" and allow_private_http
                    and is_private_host(parts.hostname or ""))
    if not private_http and (parts.scheme != "https" or "." not in (parts.hostname or "")):
        raise ConfigError(
            key, "must be a public https:// URL (the token travels in the body: never in clear)")


def is_private_host(host: str) -> bool:
    """An RFC 1918 / loopback / link-local IP address (names are not trusted to be private)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() == "localhost"
    return address.is_private or address.is_loopback or address.is_link_local


def _validate_mapping(s: Settings) -> None:
    from .mapping import MappingError

    m = s.mapping
    identifier = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
    for key, name in (("mapping.key_column", m.key_column), ("mapping.product_table", m.product_table),
                      ("mapping.product_deal_column", m.product_deal_column),
                      ("mapping.product_row_column", m.product_row_column)):
        if name and not identifier.fullmatch(name):
            raise ConfigError(key, "must be a plain SQL identifier")
    for section in ("columns", "product_columns"):
        for column in getattr(m, section):
            if not identifier.fullmatch(column):
                raise ConfigError(f"mapping.{section}.{column}", "must be a plain SQL identifier")
    try:
        mapping_of(s)
    except MappingError as exc:
        text = str(exc)
        if text.startswith("column "):
            column = text.split(":", 1)[0].removeprefix("column ")
            raise ConfigError(f"mapping.columns.{column}", text.split(":", 1)[1].strip()) from None
        key, _, problem = text.partition(": ")
        raise ConfigError(key, problem) from None


def mapping_of(s: Settings):
    """The TableMapping these settings describe."""
    from .mapping import build_mapping

    m = s.mapping
    return build_mapping(m.preset, s.target.table, m.columns, m.key_column, m.products,
                         m.product_table, m.product_columns,
                         (m.product_deal_column, m.product_row_column))


# -- the file's own evolution ----------------------------------------------------------------
# ``version`` of the settings file: 1 = the files written before it had one. Raise it when a
# key is renamed and list the rename under the version that introduced it.
FILE_VERSION = 2
RENAMED_KEYS: dict[int, dict[str, str]] = {
    # version that renamed them: {"old_section.old_key": "new_section.new_key"}
    2: {},
}


def _renames_since(version: int) -> dict[str, str]:
    renames: dict[str, str] = {}
    for introduced in sorted(RENAMED_KEYS):
        if introduced > version:
            renames.update(RENAMED_KEYS[introduced])
    return renames


def upgrade_file_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Parsed TOML of any file version -> the current key names, ``version`` taken out.

    A renamed key is moved to its new name with a warning (the desktop writes the new name at
    its next save); a file from a newer release is refused in one line.
    """
    data = {name: dict(value) if isinstance(value, Mapping) else value
            for name, value in data.items()}
    version = data.pop("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError("version", "must be a whole number (the settings file's format)")
    if version > FILE_VERSION:
        raise ConfigError("version", f"this file is for a newer Deal Monitor (format {version}, "
                          f"this one reads up to {FILE_VERSION})")
    for old, new in _renames_since(version).items():
        old_section, old_key = old.split(".", 1)
        section = data.get(old_section)
        if not isinstance(section, dict) or old_key not in section:
            continue
        new_section, new_key = new.split(".", 1)
        value = section.pop(old_key)
        if not section:
            del data[old_section]
        target = data.setdefault(new_section, {})
        if isinstance(target, dict) and new_key not in target:
            target[new_key] = value
        log.warning("settings: %s is now called %s (the value was kept; the file is updated "
                    "at the next save from the window)", old, new)
    return data


def _plain(value: Any) -> Any:
    """A settings value as TOML takes it (tuples -> lists, dicts copied)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def to_toml(s: Settings) -> str:
    """Every key of the settings as a TOML file (secrets included if set in the object)."""
    doc = tomlkit.document()
    doc["version"] = FILE_VERSION
    for name in _SECTIONS:
        table = tomlkit.table()
        section = getattr(s, name)
        for f in dataclasses.fields(section):
            table[f.name] = _plain(getattr(section, f.name))
        doc[name] = table
    return tomlkit.dumps(doc)


def merge_into_file(text: str, s: Settings) -> str:
    """The settings file ``text`` updated to hold ``s``: only keys that differ from their
    defaults are kept, the user's comments, order and other formatting stay, renamed keys get
    their new names, and ``version`` is set."""
    try:
        doc = tomlkit.parse(text) if text.strip() else tomlkit.document()
    except tomlkit.exceptions.ParseError:
        doc = tomlkit.document()  # unreadable: the window already offered defaults instead
    version = doc.get("version", 1)
    for old in _renames_since(version if isinstance(version, int) else 1):
        old_section, old_key = old.split(".", 1)
        if old_section in doc and old_key in doc[old_section]:
            del doc[old_section][old_key]
    if "version" in doc:
        doc["version"] = FILE_VERSION
    else:
        body = list(doc.body)
        doc = tomlkit.document()
        doc["version"] = FILE_VERSION
        for key, item in body:
            if key is None:
                doc.add(item)
            else:
                doc.append(key, item)
    for name, cls in _SECTIONS.items():
        section, defaults = getattr(s, name), cls()
        table = doc.get(name)
        for f in dataclasses.fields(section):
            value, default = _plain(getattr(section, f.name)), _plain(getattr(defaults, f.name))
            present = table is not None and f.name in table
            if value == default:
                if present:
                    del table[f.name]
                continue
            if table is None:
                table = tomlkit.table()
                doc[name] = table
                table = doc[name]
            if not present or _plain(table[f.name].unwrap()) != value:
                table[f.name] = value
        if table is not None and not table.value:
            del doc[name]
    return tomlkit.dumps(doc)


def save(path: Path, s: Settings) -> None:
    """Write ``s`` into the settings file at ``path`` atomically (see ``merge_into_file``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    updated = merge_into_file(text, s)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(updated)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
