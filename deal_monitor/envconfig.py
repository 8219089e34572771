"""Settings from the environment, paths relative to the config file, DB passwords as secrets.

Every key can be set as ``DEAL_MONITOR_<SECTION>_<KEY>`` (``DEAL_MONITOR_SYNC_MAX_ATTEMPTS=3``);
the text is converted to the key's type (numbers, ``true``/``false``, lists as ``a,b`` or a JSON
array, tables as a JSON object) and then checked like a value from the file, which it beats.
``DEAL_MONITOR_CONFIG`` names the config file. Relative paths (``storage.data_dir``, SQLite
files in ``target.url`` / ``storage.state_url``) are taken from the config file's folder, not
from the working directory (``/`` under systemd).

Database passwords may stay out of the URLs: ``DEAL_MONITOR_TARGET_PASSWORD`` /
``DEAL_MONITOR_STATE_PASSWORD`` (or ``target_password`` / ``state_password`` in the desktop
app's keyring) are put into the configured URL when its engine is created
(:func:`with_password`), and registered with the log redactor.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

PREFIX = "DEAL_MONITOR_"
ENV_CONFIG = "DEAL_MONITOR_CONFIG"
PASSWORD_ENV = {"target": "DEAL_MONITOR_TARGET_PASSWORD", "state": "DEAL_MONITOR_STATE_PASSWORD"}
PASSWORD_SECRET = {"target": "target_password", "state": "state_password"}  # keyring names
STATE_BACKENDS = ("sqlite", "postgresql")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_name(section: str, key: str) -> str:
    return f"{PREFIX}{section}_{key}".upper()


def config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The config file named by ``DEAL_MONITOR_CONFIG`` (None when unset)."""
    value = (os.environ if env is None else env).get(ENV_CONFIG, "").strip()
    return Path(value).expanduser() if value else None


def prepare(data: Mapping[str, Any], env: Mapping[str, str], sections: Mapping[str, type],
            base: Path | None = None) -> dict[str, Any]:
    """Parsed TOML plus the environment's keys, paths resolved, the state URL checked."""
    from .config import ConfigError

    merged = {name: dict(value) if isinstance(value, Mapping) else value
              for name, value in data.items()}
    known_prefixes = {env_name(section, ""): section for section in sections}
    reserved = set(PASSWORD_ENV.values())
    for name, text in env.items():
        if not name.startswith(PREFIX) or name in reserved:
            continue
        for prefix, section in known_prefixes.items():
            if name.startswith(prefix):
                key = name[len(prefix):].lower()
                hints = _field_types(sections[section])
                if key not in hints:
                    raise ConfigError(f"{section}.{key} (from {name})", "unknown key")
                target = merged.setdefault(section, {})
                if isinstance(target, Mapping):
                    target[key] = _convert(f"{section}.{key} (from {name})", text, hints[key])
    _resolve_paths(merged, base)
    state_url = (merged.get("storage") or {}).get("state_url") if isinstance(
        merged.get("storage"), Mapping) else None
    if isinstance(state_url, str) and state_url.strip():
        check_state_url(state_url.strip())
    target = merged.get("target") if isinstance(merged.get("target"), Mapping) else {}
    note_urls(str(target.get("url") or ""), str(state_url or ""))
    return merged


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(key: str, text: str, kind: Any) -> Any:
    """The environment's text as the value a TOML file would hold for this type."""
    from .config import ConfigError

    text = text.strip()
    origin = typing.get_origin(kind) or kind
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(key, "must be true or false")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(key, "must be a whole number") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(key, "must be a number") from None
    if origin is tuple:
        if text.startswith("["):
            value = _json(key, text, list, "a JSON array of strings")
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
        return value
    if origin is dict:
        return _json(key, text or "{}", dict, "a JSON object of strings")
    return text


def _json(key: str, text: str, kind: type, what: str) -> Any:
    from .config import ConfigError

    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigError(key, f"must be {what}") from None
    if not isinstance(value, kind):
        raise ConfigError(key, f"must be {what}")
    return value


def _resolve_paths(merged: dict[str, Any], base: Path | None) -> None:
    """Relative data folder and SQLite files: from the config file's folder."""
    if base is None:
        return
    storage = merged.get("storage")
    if isinstance(storage, dict):
        data_dir = storage.get("data_dir")
        if isinstance(data_dir, str) and data_dir.strip():
            path = Path(data_dir.strip()).expanduser()
            storage["data_dir"] = str(path if path.is_absolute() else base / path)
    for section, key in (("target", "url"), ("storage", "state_url")):
        values = merged.get(section)
        if isinstance(values, dict) and isinstance(values.get(key), str):
            values[key] = _resolve_sqlite(values[key].strip(), base)


def _resolve_sqlite(url: str, base: Path) -> str:
    if not url.startswith("sqlite:///"):
        return url
    rest = url[len("sqlite:///"):]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("file:"):
        return url
    file = Path(path).expanduser()
    if file.is_absolute():
        return url
    return "sqlite:///" + (base / file).resolve().as_posix() + sep + query


def check_state_url(url: str) -> None:
    """The inbox needs SQLite or PostgreSQL (partial unique index, row leases)."""
    from .config import ConfigError

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigError("storage.state_url", "not a database URL (sqlite:///state.db or "
                          "postgresql+psycopg://user@host/db)") from None
    if backend not in STATE_BACKENDS:
        raise ConfigError("storage.state_url", f"{backend} cannot hold the state DB: use SQLite "
                          "(sqlite:///state.db) or PostgreSQL (postgresql+psycopg://user@host/db)")


# -- database passwords kept apart from the URLs -------------------------------------------------
_roles: dict[str, str] = {}  # configured URL (without password) -> "target" | "state"
_roles_lock = threading.Lock()
_store: Any = None  # the desktop app's SecretStore (keyring), when there is one


def note_urls(target_url: str, state_url: str) -> None:
    """Remember which configured URL is which, so :func:`with_password` knows its secret."""
    with _roles_lock:
        for role, url in (("target", target_url), ("state", state_url)):
            if url and "://" in url:
                _roles[_key(url)] = role


def use_secret_store(store: Any) -> None:
    """Let passwords come from this store (keyring) when the environment has none."""
    global _store
    _store = store


def _key(url: str | URL) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return str(url)
    return parsed.set(password=None).render_as_string(hide_password=False)


def password_for(role: str, env: Mapping[str, str] | None = None) -> str:
    """The separately kept password of the target or state DB ("" when there is none)."""
    value = (os.environ if env is None else env).get(PASSWORD_ENV[role], "")
    if not value and _store is not None:
        try:
            value = _store.get(PASSWORD_SECRET[role]) or ""
        except Exception:  # a locked or missing keyring: no password, the DB will say so
            value = ""
    return value


def with_password(url: str | URL, env: Mapping[str, str] | None = None) -> str | URL:
    """``url`` with its separately kept password, if it is a configured URL without one.

    Returns an ``sqlalchemy.URL`` then (its ``str()`` hides the password), else ``url``.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password or parsed.get_backend_name() == "sqlite":
        return url
    with _roles_lock:
        role = _roles.get(_key(parsed))
    if role is None:
        return url
    password = password_for(role, env)
    if not password:
        return url
    from .logs import secrets

    secrets.add(password)
    return parsed.set(password=password)


__all__ = ["ENV_CONFIG", "PASSWORD_ENV", "check_state_url", "config_path", "env_name",
           "note_urls", "prepare", "use_secret_store", "with_password"]
