"""What malloc and torch do with an analysis's memory: free heap handed back, huge pages asked for,
the forward pass on a thread (and so a malloc arena) of its own.

glibc keeps what torch frees inside its heaps, fragmented, so free() alone returns little of it:
between the layers of a long analysis ~150 MB (gpt2-medium at 1,024 tokens) would stay resident
beneath the next layer's attention squares, which are mapped afresh beside it. `malloc_trim`
gives it back, at the cost of faulting it in again when reused; huge pages make those faults
(and the squares') cheap.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: macOS, musl
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def release_free_heap() -> bool:
    """malloc_trim(0): the free pages inside glibc's heaps back to the system (about a
    millisecond). False where there is no glibc."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


def resident_bytes() -> int | None:
    """This process's resident memory (RSS) now, from /proc; None where there is none."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


TORCH_HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"  # torch reads it once, at its first allocation


def prefer_huge_pages() -> None:
    """Ask torch's CPU allocator to back its blocks of 2 MB or more with transparent huge pages
    (where the system allows them when asked: `enabled` always or madvise). The app's entry
    points call this before torch is imported; a variable set already is left as it is.

    An analysis maps its attention squares afresh in every layer (see OwnThread): for
    gpt2-medium at 1,024 tokens, faulting them in 4 KB at a time costs ~3 s of system time beside
    ~7.5 s of the forward pass, in 2 MB pages ~1.6 s.
    """
    os.environ.setdefault(TORCH_HUGE_PAGES, "1")


class OwnThread:
    """`run()` on a thread of its own; calling this waits for it and returns its result, or raises
    its error.

    The forward pass of an analysis runs this way for its memory: glibc gives a new thread a
    malloc arena of its own, made of heaps of at most 64 MB. Every block of an attention square
    (64 MB for gpt2-medium at 1,024 tokens, 100 MB for gpt2-xl) is then mapped afresh and unmapped
    when freed. On the main arena it could be cut from the free space the MLPs left in the heap
    (~150 MB), and stay resident there once freed: 0 to 2 squares more at the peak, by chance.
    """

    def __init__(self, run: Callable[[], Any]) -> None:
        self._run = run
        self._done: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._target, name="explorer-analyze", daemon=True)

    def _target(self) -> None:
        try:
            self._done["result"] = self._run()
        except BaseException as error:  # handed back to the caller, whatever it is
            self._done["error"] = error

    def is_current(self) -> bool:
        return threading.current_thread() is self.thread

    def __call__(self) -> Any:
        self.thread.start()
        self.thread.join()
        if "error" in self._done:
            raise self._done.pop("error")
        return self._done["result"]


__all__ = ["OwnThread", "prefer_huge_pages", "release_free_heap", "resident_bytes"]
