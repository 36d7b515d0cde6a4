"""The collector's threshold while batch jobs stream, and after them."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from bot.rare_collections import ALLOCATIONS_BETWEEN_COLLECTIONS, rare_collections


@pytest.fixture(autouse=True)
def default_threshold() -> Iterator[tuple[int, ...]]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*saved)


def test_raised_for_the_job_and_put_back_after() -> None:
    with rare_collections():
        assert gc.get_threshold() == (ALLOCATIONS_BETWEEN_COLLECTIONS, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_put_back_when_the_job_fails() -> None:
    with pytest.raises(RuntimeError), rare_collections():
        raise RuntimeError("the job failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_jobs_keep_it_raised_until_the_last_ends() -> None:
    """A digest round and an export in one process, started and ended in either order."""
    first, second = rare_collections(), rare_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == ALLOCATIONS_BETWEEN_COLLECTIONS
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_jobs_on_threads_put_back_the_threshold_they_found() -> None:
    started = threading.Barrier(4)
    seen: list[int] = []

    def job() -> None:
        with rare_collections():
            started.wait()
            seen.append(gc.get_threshold()[0])

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [ALLOCATIONS_BETWEEN_COLLECTIONS] * 4
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_is_not_lowered() -> None:
    gc.set_threshold(ALLOCATIONS_BETWEEN_COLLECTIONS * 2, 10, 10)
    with rare_collections():
        assert gc.get_threshold()[0] == ALLOCATIONS_BETWEEN_COLLECTIONS * 2
