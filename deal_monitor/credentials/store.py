"""Secret stores: a keyring store that refuses insecure backends, and a memory store.

keyring picks a backend by priority; on a headless Linux box that is ``fail.Keyring``
(raises on every call), and if ``keyrings.alt`` happens to be installed it may be a plain-text
file. Only the OS vaults are accepted here; anything else means "no secure storage", which the
UI states instead of silently writing secrets to disk. Every keyring call runs with a time
limit, since an unlock prompt can block forever on a session without a desktop.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from ..logs import secrets as secret_registry

log = logging.getLogger(__name__)

SERVICE = "DealMonitor"
SECURE_BACKENDS = {
    "keyring.backends.macOS.Keyring",
    "keyring.backends.Windows.WinVaultKeyring",
    "keyring.backends.SecretService.Keyring",
    "keyring.backends.kwallet.DBusKeyring",
}


class SecretStoreUnavailable(Exception):
    """No secure place for secrets (or it did not answer in time)."""


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...


class MemoryStore:
    """Secrets for this session only (tests, or no secure keyring)."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self._values = dict(initial or {})
        self._lock = threading.Lock()
        secret_registry.add(*self._values.values())

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._values.get(name)

    def set(self, name: str, value: str) -> None:
        secret_registry.add(value)
        with self._lock:
            self._values[name] = value

    def delete(self, name: str) -> None:
        with self._lock:
            self._values.pop(name, None)


def _backend_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def keyring_status() -> tuple[bool, str]:
    """(usable, backend name or reason) for the keyring this process would use."""
    try:
        import keyring
    except ImportError:  # pragma: no cover - a declared dependency
        return False, "keyring is not installed"
    backend = keyring.get_keyring()
    name = _backend_name(backend)
    if name in SECURE_BACKENDS:
        return True, name
    chained = getattr(backend, "backends", None)
    if chained:
        inner = [_backend_name(b) for b in chained]
        if inner and all(n in SECURE_BACKENDS for n in inner):
            return True, name
    return False, name


class KeyringStore:
    """The OS keyring, only when it is a secure backend; every call time-limited."""

    def __init__(self, timeout: float = 5.0) -> None:
        usable, name = keyring_status()
        if not usable:
            raise SecretStoreUnavailable(f"no secure keyring (backend: {name})")
        self.backend = name
        self.timeout = timeout

    def _run(self, func, *args):
        """Call the keyring on a daemon thread and wait at most ``timeout``.

        A call that never returns (an unlock prompt nobody answers) is abandoned; being a
        daemon thread it cannot keep the process from exiting.
        """
        outcome: dict = {}
        done = threading.Event()

        def call() -> None:
            try:
                outcome["value"] = func(*args)
            except Exception as exc:
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=call, name="keyring", daemon=True).start()
        if not done.wait(self.timeout):
            raise SecretStoreUnavailable("the keyring did not answer (locked?)")
        if "error" in outcome:
            raise SecretStoreUnavailable(f"keyring error: {type(outcome['error']).__name__}")
        return outcome.get("value")

    def get(self, name: str) -> str | None:
        import keyring

        value = self._run(keyring.get_password, SERVICE, name)
        secret_registry.add(value)
        return value

    def set(self, name: str, value: str) -> None:
        import keyring

        secret_registry.add(value)
        self._run(keyring.set_password, SERVICE, name, value)

    def delete(self, name: str) -> None:
        import keyring
        import keyring.errors

        try:
            self._run(keyring.delete_password, SERVICE, name)
        except SecretStoreUnavailable as exc:
            if "PasswordDeleteError" not in str(exc):
                raise
