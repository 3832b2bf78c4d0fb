"""What the server process does about its memory: free heap pages go back to the system, an
analysis's forward pass runs on a thread of its own, torch is asked for huge pages."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest

from explorer.model.heap import (
    TORCH_HUGE_PAGES,
    OwnThread,
    prefer_huge_pages,
    release_free_heap,
    resident_bytes,
)
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
@pytest.mark.parametrize("release", [release_free_memory, release_free_heap])
def test_free_pages_inside_the_heap_go_back_to_the_system(release):
    # The server's release and the model layer's. 64 KB arrays stay inside malloc's heap (below
    # its mmap threshold); freeing every other one leaves holes that plain free() cannot return,
    # as they are not at the top of the heap.
    arrays = [np.ones(16 * 1024, dtype=np.float32) for _ in range(1200)]
    del arrays[::2]
    before = resident_anonymous()
    assert release()
    assert before - resident_anonymous() > 20e6
    del arrays


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_resident_bytes_follow_what_is_touched():
    before = resident_bytes()
    block = np.ones(64 * 2**20, dtype=np.uint8)
    assert before is not None and resident_bytes() - before > 60 * 2**20
    del block


def test_huge_pages_are_asked_for_unless_the_variable_is_set(monkeypatch):
    monkeypatch.delenv(TORCH_HUGE_PAGES, raising=False)
    prefer_huge_pages()
    import os

    assert os.environ[TORCH_HUGE_PAGES] == "1"
    monkeypatch.setenv(TORCH_HUGE_PAGES, "0")
    prefer_huge_pages()
    assert os.environ[TORCH_HUGE_PAGES] == "0"


def test_own_thread_hands_back_the_result_or_the_error():
    import threading

    seen = []
    run = OwnThread(lambda: seen.append(threading.current_thread()) or 42)
    assert not run.is_current() and run() == 42
    assert seen == [run.thread] and seen[0] is not threading.current_thread()

    def fail():
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        OwnThread(fail)()
