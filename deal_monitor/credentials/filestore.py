"""Tokens where no keyring service exists: a file in the data folder only its owner can read.

A server or a minimal Linux has no Secret Service; OAuth tokens must still survive a restart
(a refresh token is the only way back in without a person). The file is written atomically
(temp file created 0600, then renamed over the old one), so a crash never leaves half a file
and the tokens are never readable by others, not even for an instant. On Windows the data
folder is in the per-user profile, which other users cannot read.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from ..logs import secrets as secret_registry
from .store import KeyringStore, SecretStore, SecretStoreUnavailable

log = logging.getLogger(__name__)

TOKEN_FILE = "tokens.json"


class FileStore:
    """Secrets in one JSON file readable by the owner only (0600 on POSIX)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"tokens stored in {self.path}"

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SecretStoreUnavailable(f"cannot read {self.path.name}: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            return {}
        values = {str(k): str(v) for k, v in data.items() if isinstance(v, str)}
        secret_registry.add(*values.values())
        return values

    def _write(self, values: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # an old temp file may have kept wider bits
            os.write(fd, json.dumps(values).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._read().get(name)

    def set(self, name: str, value: str) -> None:
        secret_registry.add(value)
        with self._lock:
            values = self._read()
            values[name] = value
            self._write(values)

    def delete(self, name: str) -> None:
        with self._lock:
            values = self._read()
            if values.pop(name, None) is not None:
                self._write(values)


def describe_store(store: SecretStore) -> str:
    """Where a store keeps secrets, in words for the log and the status line."""
    if isinstance(store, KeyringStore):
        return f"tokens stored in the system keyring ({store.backend})"
    describe = getattr(store, "describe", None)
    if callable(describe):
        return str(describe())
    return "tokens kept in memory for this session only"


def open_token_store(data_dir: Path) -> SecretStore:
    """The keyring when a secure one exists, else the owner-only file in ``data_dir``."""
    try:
        return KeyringStore()
    except SecretStoreUnavailable as exc:
        store = FileStore(Path(data_dir) / TOKEN_FILE)
        log.info("%s; %s (readable by this user only)", exc, store.describe())
        return store
