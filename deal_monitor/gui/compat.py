"""Work-arounds for defects of the Qt bindings that the app must survive on users' machines.

PySide6 6.12.0 wheels on Python 3.11 return ``None`` from every void method and ``True`` from
every ``Signal.emit`` without taking a reference (the stable-ABI build assumes the immortal
singletons of Python 3.12+). Each call then drops one reference the interpreter never gave
away; after a few thousand calls ``None`` reaches zero and the interpreter aborts with
"none_dealloc: deallocating None". The defect is detected at import and, only then, the
singletons get a reference count so large that no session can use it up (the same thing
Python 3.12 does for them by design). They are statically allocated and never freed, so a
high count changes nothing else.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

_PROBES = 64
_RESERVE = 1 << 60  # ~10^18 dropped references: no session can use them up
_applied = False


def singleton_references_leak() -> bool:
    """True when Qt calls drop references to None/True (measured, not guessed)."""
    if sys.version_info >= (3, 12):
        return False  # immortal objects: nothing to lose
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        pinged = Signal()

    probe = _Probe()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(_PROBES):
        probe.setObjectName("probe")
        probe.pinged.emit()
    lost_none = none_before - sys.getrefcount(None)
    lost_true = true_before - sys.getrefcount(True)
    probe.deleteLater()
    return lost_none >= _PROBES // 2 or lost_true >= _PROBES // 2


def protect_singletons() -> bool:
    """Apply the work-around if this Qt build needs it; returns whether it was applied."""
    global _applied
    if _applied:
        return True
    if not singleton_references_leak():
        return False
    import ctypes

    for singleton in (None, True, False, NotImplemented, Ellipsis):
        ctypes.c_ssize_t.from_address(id(singleton)).value += _RESERVE
    _applied = True
    log.info("Qt bindings drop references to None/True; singletons protected")
    return True


__all__ = ["protect_singletons", "singleton_references_leak"]
