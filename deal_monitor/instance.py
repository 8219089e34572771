"""One running instance per data folder: OS file locks, taken by every entry point that works
the inbox (the window, ``--headless``, the admin commands that run a worker).

Two instances on one SQLite inbox would both work it; the second is refused at start with a
clear message. The lock sits in the data folder and, when the state DB is a SQLite file
elsewhere, in that file's folder too (``storage.state_url`` set or not); a shared PostgreSQL
inbox is meant for several instances, each with its own data folder. The OS releases a lock
when its process dies, however it dies.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from .errors import DealMonitorError

LOCK_NAME = "instance.lock"


class AlreadyRunning(DealMonitorError):
    hint = ("Use the Deal Monitor that is running (the window, or the service), or stop it first; "
            "`status` and `resync <ID>` work next to it.")
    folder: Path | None = None  # the folder whose lock another instance holds


class InstanceLock:
    """An exclusive, non-blocking lock on one file (``folder/instance.lock`` by default)."""

    def __init__(self, folder: Path, name: str = LOCK_NAME) -> None:
        self.path = folder / name
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process (or handle) holds it."""
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            if os.name == "nt":
                import msvcrt

                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return True

    def holder(self) -> str:
        """The process ID the holder wrote ("" when it cannot be read, as on Windows)."""
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock on every OS
            self._file = None


def lock_folders(data_dir: Path, state_url: str) -> list[Path]:
    """The folders whose lock an instance must hold: the data folder and the SQLite state
    DB's folder (one entry when they are the same)."""
    folders = [data_dir.resolve()]
    url = make_url(state_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).expanduser().resolve().parent
        if folder not in folders:
            folders.append(folder)
    return folders


class DataFolderLock:
    """The locks of one instance's folders, taken together or not at all."""

    def __init__(self, data_dir: Path, state_url: str) -> None:
        self.locks = [InstanceLock(folder) for folder in lock_folders(data_dir, state_url)]

    def acquire(self) -> bool:
        for index, lock in enumerate(self.locks):
            if not lock.acquire():
                for taken in self.locks[:index]:
                    taken.release()
                self.busy = lock
                return False
        return True

    def acquire_or_raise(self) -> DataFolderLock:
        if not self.acquire():
            raise self._refusal()
        return self

    def _refusal(self) -> AlreadyRunning:
        pid = self.busy.holder()
        running = f" (process {pid})" if pid.isdigit() else ""
        refusal = AlreadyRunning(
            f"another Deal Monitor{running} is already running on the data folder "
            f"{self.busy.path.parent}"
        )
        refusal.folder = self.busy.path.parent
        return refusal

    def switch(self, data_dir: Path, state_url: str) -> tuple[DataFolderLock, list[InstanceLock]]:
        """Move to other folders while this lock is still held: the new folders' locks are
        taken first (a folder both use keeps its lock), so there is never a moment without one.

        Returns the new lock and the old locks no longer needed, for the caller to release
        once nothing uses the old folders any more. Raises AlreadyRunning (nothing changed,
        this lock still held) when another instance holds a new folder.
        """
        held = {lock.path: lock for lock in self.locks}
        moved = DataFolderLock(data_dir, state_url)
        taken: list[InstanceLock] = []
        for index, lock in enumerate(moved.locks):
            if lock.path in held:
                moved.locks[index] = held[lock.path]
            elif lock.acquire():
                taken.append(lock)
            else:
                for done in taken:
                    done.release()
                moved.busy = lock
                raise moved._refusal()
        kept = {lock.path for lock in moved.locks}
        return moved, [lock for lock in self.locks if lock.path not in kept]

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self) -> DataFolderLock:
        return self.acquire_or_raise()

    def __exit__(self, *exc: object) -> None:
        self.release()


def for_settings(settings) -> DataFolderLock:
    """The lock of the folders these settings use."""
    from .service import locations

    where = locations(settings)
    return DataFolderLock(where.data_dir, where.state_url)


__all__ = ["AlreadyRunning", "DataFolderLock", "InstanceLock", "for_settings", "lock_folders"]
