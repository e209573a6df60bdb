"""A generator's next items, produced in a background thread (the run's pipeline stages)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def prefetched(items: Iterator[T], depth: int = 1, *, name: str = "accoil-prefetch") -> Iterator[T]:
    """Produce the next ``depth`` items in a background thread while the caller works.

    Worth it where both sides mostly run without the GIL (ISA-L, polars, file
    writes): reading chunk n+1 overlaps with transforming chunk n, and making the lines
    of the next calls with writing these. At most ``depth + 1`` items are held. Errors
    from the producer surface in the caller, in order; when the caller stops early,
    the producer stops too.
    """
    done = object()
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(done)
        except BaseException as exc:  # handed to the consumer
            slots.put(exc)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.1)
