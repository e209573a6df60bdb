"""prefetched: the background-thread stage every pipeline step of a run goes through."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from accoil_transform._prefetch import prefetched
from accoil_transform.jobs import write_dry_run


def _alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_items_come_in_order_and_the_thread_ends() -> None:
    assert list(prefetched(iter(range(100)), name="t-order")) == list(range(100))
    assert not _alive("t-order")


def test_an_error_surfaces_in_the_caller_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetched(items(), name="t-error"):
            got.append(item)
    assert got == [1, 2]
    assert not _alive("t-error")


def test_a_caller_that_stops_early_stops_the_producer() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(1_000):
            produced.append(i)
            yield i

    stream = prefetched(items(), depth=1, name="t-early")
    assert next(stream) == 0
    stream.close()
    assert not _alive("t-early")
    assert len(produced) <= 2  # the item taken and the one made ahead


@pytest.mark.parametrize("depth", [1, 2])
def test_no_more_than_depth_items_are_made_ahead(depth: int) -> None:
    started: list[int] = []

    def items() -> Iterator[int]:
        for i in range(30):
            started.append(i)
            yield i

    for item in prefetched(items(), depth=depth, name="t-ahead"):
        time.sleep(0.003)  # time enough for the producer to run ahead, if it could
        assert len(started) <= item + 1 + depth
    assert started == list(range(30))


def test_depth_must_allow_an_item_ahead() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1"):
        next(prefetched(iter([1]), depth=0))


def test_dry_run_lines_made_ahead_still_surface_a_failing_input(tmp_path: Path) -> None:
    calls = pl.DataFrame(
        {
            "kind": ["track"],
            "call_id": ["v2:track:u:1"],
            "body": ['{"userId":"u","event":"e","timestamp":"2025-07-01T00:00:00.000Z"}'],
        }
    )

    def chunks() -> Iterator[pl.DataFrame]:
        yield calls
        time.sleep(0.01)
        raise RuntimeError("merge failed")

    with pytest.raises(RuntimeError, match="merge failed"):
        write_dry_run(chunks(), tmp_path / "calls.ndjson")
    assert not _alive("accoil-lines")
