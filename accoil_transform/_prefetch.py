"""A generator's next items, produced in a background thread (the run's pipeline stages)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def prefetched(items: Iterator[T], depth: int = 1, *, name: str = "accoil-prefetch") -> Iterator[T]:
    """Make the next ``depth`` items in a background thread while the caller works.

    Worth it where both sides mostly run without the GIL (ISA-L, polars, file
    writes): reading chunk n+1 overlaps with transforming chunk n, and making the lines
    of the next calls with writing these. The producer starts an item only when there
    is room for it, so at most ``depth + 1`` items are alive: the caller's and those
    made ahead (a chunk is 100 MB or more, so each item of slack is memory touched).
    Errors from the producer surface in the caller, in order; when the caller stops
    early, the producer stops too.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    done = object()
    made: queue.SimpleQueue = queue.SimpleQueue()
    room = threading.Semaphore(depth)  # released as the caller takes each item
    stop = threading.Event()

    def produce() -> None:
        try:
            iterator = iter(items)
            while True:
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                item = next(iterator, done)
                made.put(item)
                if item is done:
                    return
                del item  # the caller's now
        except BaseException as exc:  # handed to the consumer
            made.put(exc)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = made.get()
            room.release()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        room.release()  # a producer waiting for room sees the stop at once
        worker.join()
