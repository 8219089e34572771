"""Giving memory a big listed page freed back to the operating system.

A page of a full listing is thousands of deals decoded from JSON and dropped a moment later.
CPython hands such memory back to the C allocator, and glibc's allocator keeps much of it in
its per-thread arenas: the process's resident size then stays near its largest pages while
the app idles. ``malloc_trim`` returns those free pages. It exists in glibc only; with other C
libraries (musl, macOS, Windows) this is a no-op. Nothing depends on it: the listings keep
their memory bounded by a page on every platform, this only shortens the tail on Linux.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return free heap pages to the OS where the C library can (glibc); True if it ran.

    The call releases the GIL (a ``ctypes.CDLL`` function), so other threads go on meanwhile.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
