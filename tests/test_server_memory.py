"""What the server process does about its memory: free heap pages go back to the system."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest

from explorer.ui.serving import release_free_memory

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's"
)


def resident_anonymous() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


@glibc
def test_free_pages_inside_the_heap_go_back_to_the_system():
    # 64 KB arrays stay inside malloc's heap (below its mmap threshold); freeing every other one
    # leaves holes that plain free() cannot return, as they are not at the top of the heap.
    arrays = [np.ones(16 * 1024, dtype=np.float32) for _ in range(1200)]
    del arrays[::2]
    before = resident_anonymous()
    assert release_free_memory()
    assert before - resident_anonymous() > 20e6
    del arrays
