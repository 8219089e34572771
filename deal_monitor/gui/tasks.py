"""Run a blocking call (portal request, DB read, connection test) off the GUI thread.

The result or the exception comes back as a signal, delivered on the GUI thread; a task whose
owner widget is gone by then is dropped quietly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

log = logging.getLogger(__name__)

_running: set[Task] = set()
_lock = threading.Lock()


class Task(QObject):
    """One background call; ``completed(result)`` or ``failed(exception)`` on the GUI thread."""

    completed = Signal(object)
    failed = Signal(object)

    def __init__(self, fn: Callable[[], Any], name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self.name = name
        self.done = threading.Event()
        self.cancelled = False

    def start(self) -> Task:
        with _lock:
            _running.add(self)
        threading.Thread(target=self._run, name=f"gui-{self.name}", daemon=True).start()
        return self

    def cancel(self) -> None:
        """Forget the result (the call itself cannot be interrupted)."""
        self.cancelled = True

    def _run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:  # reported to the owner, who shows it
            log.debug("task %s failed: %s", self.name, exc)
            self._deliver(self.failed, exc)
        else:
            self._deliver(self.completed, result)
        finally:
            self.done.set()

    def _deliver(self, signal, value: object) -> None:
        if self.cancelled:
            _release(self)
            return
        try:
            signal.emit(value)  # the queued release runs after the owner's callbacks
        except RuntimeError:  # the owner was deleted meanwhile
            _release(self)


def _release(task: Task) -> None:
    with _lock:
        _running.discard(task)


def run_in_background(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    *,
    name: str = "task",
    owner: QObject | None = None,
) -> Task:
    """Start ``fn`` on a worker thread; the callbacks run on the GUI thread."""
    task = Task(fn, name, owner)
    if on_done is not None:
        task.completed.connect(on_done, Qt.ConnectionType.QueuedConnection)
    if on_error is not None:
        task.failed.connect(on_error, Qt.ConnectionType.QueuedConnection)
    task.completed.connect(lambda _result: _release(task), Qt.ConnectionType.QueuedConnection)
    task.failed.connect(lambda _exc: _release(task), Qt.ConnectionType.QueuedConnection)
    return task.start()


def running_tasks() -> int:
    with _lock:
        return len(_running)


__all__ = ["Task", "run_in_background", "running_tasks"]
