"""Where secrets live: the OS keyring in desktop mode, memory in tests and sessions."""

from .store import (
    KeyringStore,
    MemoryStore,
    SecretStore,
    SecretStoreUnavailable,
    keyring_status,
)

__all__ = ["KeyringStore", "MemoryStore", "SecretStore", "SecretStoreUnavailable", "keyring_status"]
