"""Tune glibc's allocator for a daemon with a few dozen threads.

glibc gives threads their own malloc arenas, up to eight per core, and
memory freed in one arena is not reused by another: when checks ran on 16
worker threads, at 20,000 services that cost about 6 MB of resident memory
(72.5 vs 66.5 MiB peak, measured then). The check pool is two loop threads
now, but the alert workers and offloaded steps are threads too; two arenas
keep their allocation from spreading over more, and they hold the GIL one at
a time anyway. An operator's own MALLOC_ARENA_MAX in the environment wins; on
other C libraries this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
DAEMON_ARENAS = 2


def limit_arenas(count: int = DAEMON_ARENAS) -> bool:
    """Cap the number of malloc arenas; call before starting threads. True when applied."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(M_ARENA_MAX, count))
    log.debug("malloc arenas limited to %d: %s", count, applied)
    return applied
