"""The cyclic garbage collector run rarely while a batch job streams (an export, a digest round).

Such a job allocates millions of short-lived objects without cycles (rows, cells, score points,
lines of text), which reference counting frees at once. At Python's default threshold the
collector still runs every 700 allocations and, as a batch outlives several runs, walks the
batch and every long-lived object of the process again and again: a quarter of a digest's
time (docs/benchmarks.md, "Digest"). Cycles are still collected, only later.

The threshold is process-wide, so jobs that overlap in one process (a digest round beside an
export, on threads or tasks) share it: the first to start raises it, the last to finish puts
back what it was.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

ALLOCATIONS_BETWEEN_COLLECTIONS: Final = 25_000
"""Allocations between runs of the youngest generation's collection while a job streams
(Python's default is 700). A digest round is as fast at 25,000 as at 100,000 and holds about
15 MB less at the end of a night (docs/benchmarks.md, "Digest"); exports run alike at both."""

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, ...] = ()


@contextmanager
def rare_collections() -> Iterator[None]:
    """Raises the collector's first threshold for the duration (usable as a decorator)."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            _saved = gc.get_threshold()
            first, *older = _saved
            gc.set_threshold(max(first, ALLOCATIONS_BETWEEN_COLLECTIONS), *older)
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.set_threshold(*_saved)
