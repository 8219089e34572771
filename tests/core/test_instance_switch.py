"""DataFolderLock.switch: moving an instance to other folders never leaves a moment without a
lock, keeps a folder both use, and on refusal changes nothing (real OS locks, tmp folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deal_monitor.instance import AlreadyRunning, DataFolderLock, InstanceLock


def held_elsewhere(folder: Path) -> bool:
    """Whether some handle holds the folder's lock (a fresh handle cannot take it)."""
    probe = InstanceLock(folder)
    if probe.acquire():
        probe.release()
        return False
    return True


def sqlite(folder: Path) -> str:
    return f"sqlite:///{(folder / 'state.db').as_posix()}"


def test_switch_takes_the_new_folder_before_the_old_one_is_given_back(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    lock = DataFolderLock(old, sqlite(old)).acquire_or_raise()
    moved, retired = lock.switch(new, sqlite(new))
    assert held_elsewhere(new) and held_elsewhere(old)  # both, until the old core stopped
    assert [r.path for r in retired] == [old.resolve() / "instance.lock"]
    for stale in retired:
        stale.release()
    assert held_elsewhere(new) and not held_elsewhere(old)
    moved.release()
    assert not held_elsewhere(new)


def test_a_folder_both_use_keeps_its_lock(tmp_path):
    shared = tmp_path / "shared-state"
    old, new = tmp_path / "old", tmp_path / "new"
    lock = DataFolderLock(old, sqlite(shared)).acquire_or_raise()
    kept = next(x for x in lock.locks if x.path.parent == shared.resolve())
    moved, retired = lock.switch(new, sqlite(shared))
    assert any(x is kept for x in moved.locks) and kept.held
    assert [r.path.parent for r in retired] == [old.resolve()]
    for stale in retired:
        stale.release()
    assert held_elsewhere(shared) and held_elsewhere(new) and not held_elsewhere(old)
    moved.release()


def test_a_refused_switch_changes_nothing(tmp_path):
    old, new, busy = tmp_path / "old", tmp_path / "new", tmp_path / "busy"
    other = InstanceLock(busy)
    assert other.acquire()  # another instance's state DB folder
    lock = DataFolderLock(old, sqlite(old)).acquire_or_raise()
    with pytest.raises(AlreadyRunning) as refused:
        lock.switch(new, sqlite(busy))  # the data folder is free, its state folder is not
    assert refused.value.folder == busy.resolve()
    assert "already running on the data folder" in str(refused.value)
    assert not held_elsewhere(new)  # taken on the way, given back
    assert all(x.held for x in lock.locks) and held_elsewhere(old)
    lock.release()
    other.release()
