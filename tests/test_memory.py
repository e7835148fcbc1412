"""Freed memory goes back to the system (glibc), and the call is harmless everywhere else."""

import platform
from pathlib import Path

import pytest

from benchmark.memory import release_freed_memory


def _anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_release_is_harmless_without_glibc() -> None:
    assert release_freed_memory() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or not Path("/proc/self/status").exists(),
                    reason="malloc_trim and /proc are glibc and Linux facts")
def test_freed_heap_blocks_are_returned() -> None:
    # 64 KiB blocks stay below glibc's mmap threshold, so they come from the heap; the last one
    # pins the heap's top, so free() alone cannot shrink it: only a trim returns the rest
    blocks = [bytearray(64 * 1024) for _ in range(3200)]  # ~200 MB
    pin = blocks[-1]
    del blocks
    before = _anon_mb()
    assert release_freed_memory()
    after = _anon_mb()
    assert before - after > 100, f"expected > 100 MB returned, got {before - after:.0f} MB ({before:.0f} -> {after:.0f})"
    assert len(pin) == 64 * 1024
