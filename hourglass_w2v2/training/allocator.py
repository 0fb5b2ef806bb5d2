"""glibc's allocator set to keep freed buffers for the next update (``trainer.reuse_freed_memory``).

A CPU training step frees tens of megabytes of activations at its end and asks for them again
in the next step. By default glibc serves buffers above its mmap threshold by ``mmap`` and
gives the freed top of its heap back to the kernel once it exceeds the trim threshold, so each
step faults fresh, zeroed pages back in: system time, and page zeroing that the step pays for.
Fixing the mmap threshold at its ceiling (32 MiB on 64-bit glibc) and never trimming keeps
those buffers in the heap, where the next step reuses them. The same arithmetic runs on the
same values; the process holds its high-water mark of memory instead of giving it back.

The same can be had without this module by starting the process with
``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_TOP_PAD_=268435456``
(all three: setting one turns off glibc's dynamic thresholds) or with tcmalloc / jemalloc
preloaded.
"""

from __future__ import annotations

import ctypes
import logging

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: the largest mmap threshold 64-bit glibc accepts: buffers up to it come from the heap
MMAP_THRESHOLD = 32 << 20
#: free heap top kept before trimming; never reached in practice
TRIM_THRESHOLD = 1 << 30
#: extra heap asked of the kernel each time the heap grows, so it grows a few times, not often
TOP_PAD = 256 << 20


def reuse_freed_memory() -> bool:
    """Set this process's glibc allocator to keep freed buffers (module docstring).

    Process-wide and for the rest of the process (forked data-loader workers inherit it).
    Returns False, with a warning, where the C library is not glibc or refuses a setting.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        logging.warning("trainer.reuse_freed_memory: no glibc mallopt here; allocator unchanged")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    refused = [param for param, value in settings if mallopt(param, value) != 1]
    if refused:
        logging.warning("trainer.reuse_freed_memory: glibc refused mallopt %s", refused)
        return False
    return True
