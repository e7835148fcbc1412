"""Give memory that Python and torch have freed back to the operating system.

glibc's allocator keeps freed heap memory for reuse instead of returning it. Extraction
allocates batches of growing size (clips go shortest first) and the probes allocate row
matrices of many sizes, so freed blocks rarely fit the next request and the heap only grows:
in the default run, during BEST-RQ's phone probes, the process held 7.28 GB of anonymous
memory, of which one `malloc_trim(0)` (called from gdb) returned 4.71 GB to the system
(2.57 GB left). Most of it grows during extraction. `melbench run` therefore trims after each
extraction batch and each probe run: a cold phones extraction of BEST-RQ plus one probe peaked
at 7.58 GB without, 3.71 GB with (`benchmark/perf/peak_memory.py`).

The trim does not collect garbage first: after a probe run the collector found no unreachable
objects to free (25 small ones after the first, 0 after the next three; the trim alone gave the
same anonymous memory), while each full collection cost 0.13-0.26 s in the test process, whose
714 trims spent 182 s of the suite in `gc.collect`.
"""

import ctypes
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


def release_freed_memory() -> bool:
    """Return the allocator's free heap memory to the system.

    Returns:
        Whether the C library could be asked to (glibc); elsewhere it does nothing.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
