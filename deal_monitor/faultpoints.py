"""Named crash points for the crash-consistency tests.

``DEAL_MONITOR_CRASH_AT=<name>[:<n>]`` makes the process die abruptly (``os._exit``, no
cleanup, like ``kill -9``) the n-th time (default: first) it passes that point. Unset, a
point costs one dictionary lookup. Points: ``after_inbox_commit``, ``after_fetch``,
``after_target_commit``, ``after_offline_reserve``.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_counts: dict[str, int] = {}
_spec = os.environ.get("DEAL_MONITOR_CRASH_AT", "")
_name, _, _nth = _spec.partition(":")
_target = int(_nth) if _nth.isdigit() else 1


def reach(point: str) -> None:
    if not _spec or point != _name:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] >= _target:
            os._exit(137)
