"""Give memory that Python and torch have freed back to the operating system.

glibc's allocator keeps freed heap memory for reuse instead of returning it. Extraction
allocates batches of growing size (clips go shortest first) and the probes allocate row
matrices of many sizes, so freed blocks rarely fit the next request and the heap only grows:
in the default run, during BEST-RQ's phone probes, the process held 7.28 GB of anonymous
memory, of which one `malloc_trim(0)` (called from gdb) returned 4.71 GB to the system
(2.57 GB left). Most of it grows during extraction. `melbench run` therefore trims after each
extraction batch and each probe run: a cold phones extraction of BEST-RQ plus one probe peaked
at 7.58 GB without, 3.71 GB with (`benchmark/perf/peak_memory.py`).
"""

import ctypes
import gc
import platform
from functools import cache
from typing import Callable


@cache
def glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (whose allocator `mallopt` and `malloc_trim`
    tune), or None where it is another (macOS, musl)."""
    return ctypes.CDLL(None) if platform.libc_ver()[0] == "glibc" else None


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None without glibc."""
    libc = glibc()
    if libc is None:
        return None
    trim = libc.malloc_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed_memory(collect: bool = True) -> bool:
    """Return the allocator's free heap memory to the system.

    Args:
        collect: collect garbage first (cycles hold memory too; tens of milliseconds, so
            extraction, whose batches are freed by reference counting, trims without it).

    Returns:
        Whether the C library could be asked to (glibc); elsewhere at most the collection runs.
    """
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
