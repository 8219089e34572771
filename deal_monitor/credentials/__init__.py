"""Where secrets live: the OS keyring in desktop mode, an owner-only file for tokens where no
keyring service exists, memory in tests and sessions."""

from .filestore import FileStore, describe_store, open_token_store
from .store import (
    KeyringStore,
    MemoryStore,
    SecretStore,
    SecretStoreUnavailable,
    keyring_status,
)

__all__ = ["FileStore", "KeyringStore", "MemoryStore", "SecretStore", "SecretStoreUnavailable",
           "describe_store", "keyring_status", "open_token_store"]
