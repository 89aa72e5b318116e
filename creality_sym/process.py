"""Process-wide settings the ``creality`` command applies for its numerical work.

Both are documented for programs of their own (``docs/generated-api.md``,
"Threads" and "Memory"), where the environment variables do the same when
set before Python starts:

- ``OPENBLAS_THREAD_TIMEOUT`` (read by OpenBLAS when it loads, so it is set
  before numpy is imported): idle OpenBLAS threads stop spinning within
  ``2**20`` cycles instead of ``2**28``, so they do not take a core from the
  runtime's worker threads.
- glibc's allocator keeps freed memory for reuse (:func:`keep_freed_memory`):
  by default an array of more than 128 KB is a fresh ``mmap`` on every call,
  and each of its 4 KB pages costs a page fault when first written; a
  Hessian at ``10^5 x 100`` makes a few thousand of them (several ms, the
  z-space pieces and the Gram's columns), a call of the solver as many.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: idle OpenBLAS threads spin ``2**value`` cycles; ``2**20`` (well under a millisecond)
#: keeps a thread warm between back-to-back calls
OPENBLAS_THREAD_TIMEOUT = "20"
#: glibc ``mallopt`` parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: allocations up to this size come from the heap, not a fresh mapping
MMAP_THRESHOLD_BYTES = 32 << 20
#: free memory at the top of the heap kept for reuse instead of returned to the system
TRIM_THRESHOLD_BYTES = 128 << 20
#: the environment variables by which a caller sets these itself (then they are kept)
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

#: whether :func:`keep_freed_memory` changed this process's allocator
_kept = False


def set_openblas_thread_timeout() -> None:
    """``OPENBLAS_THREAD_TIMEOUT`` for OpenBLAS to read when it loads, unless already set."""
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_THREAD_TIMEOUT)


def keep_freed_memory() -> bool:
    """Have glibc's ``malloc`` serve arrays up to 32 MB from the heap and keep up to
    128 MB of freed heap for reuse; True when applied.

    Nothing is done off Linux, without glibc, or when the caller set one of
    :data:`MALLOC_VARIABLES`. The cost is memory held: up to 128 MB freed but
    not returned to the system.
    """
    if not sys.platform.startswith("linux") or any(v in os.environ for v in MALLOC_VARIABLES):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    global _kept
    _kept = bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    return _kept


def allocator_setting() -> str:
    """How this process's allocator treats freed arrays, for benchmark headers."""
    if _kept:
        return "freed memory kept (heap up to 32 MB per array, 128 MB retained)"
    named = [v for v in MALLOC_VARIABLES if v in os.environ]
    if named:
        return "set by the environment (" + ", ".join(named) + ")"
    return "allocator defaults"
