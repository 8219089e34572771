"""Named crash points for the crash-consistency tests.

``DEAL_MONITOR_CRASH_AT=<name>[:<n>]`` makes the process die abruptly (``os._exit``, no
cleanup, like ``kill -9``) the n-th time (default: first) it passes that point. Unset, a
point costs one dictionary lookup. Points: ``after_inbox_commit``, ``after_fetch``,
``after_target_commit``, ``after_offline_reserve``.

``DEAL_MONITOR_STALL_AT=<name>`` makes the thread that reaches the point hang there (a pass
stuck in a call that never returns), for the tests of a shutdown that cannot finish.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_counts: dict[str, int] = {}
_spec = os.environ.get("DEAL_MONITOR_CRASH_AT", "")
_name, _, _nth = _spec.partition(":")
_target = int(_nth) if _nth.isdigit() else 1
_stall = os.environ.get("DEAL_MONITOR_STALL_AT", "")


def reach(point: str) -> None:
    if _stall and point == _stall:
        threading.Event().wait()  # forever: only an exit ends it
    if not _spec or point != _name:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] >= _target:
            os._exit(137)
