"""Flow control: how many requests may be in flight, and when the next may start.

It runs on the delivery's event loop: no locks, no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable


class FlowControl:
    """Admits requests: a ``max_rate`` token bucket, an AIMD window and 429 pauses.

    The window of requests in flight starts at ``concurrency``; a 429 halves it (at
    most once per window's worth of responses) and pauses every new request for the
    ``Retry-After`` (or a backoff); each other success grows it by ``1/window`` back
    up to ``concurrency``. The bucket holds one token, so requests are spaced by
    ``1/max_rate`` at least.
    """

    def __init__(
        self,
        concurrency: int,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = concurrency
        self._window = float(concurrency)
        self._interval = 1.0 / max_rate if max_rate else 0.0
        self._clock = clock
        self._inflight = 0
        self._next_slot = 0.0
        self._resume_at = 0.0
        self._responses = 0
        self._last_cut = -math.inf
        self._waiters: asyncio.Condition | None = None
        self._waiting = 0  # coroutines in acquire()

    @property
    def window(self) -> float:
        return self._window

    @property
    def resume_at(self) -> float:
        return self._resume_at

    def _cond(self) -> asyncio.Condition:
        if self._waiters is None:  # made on the loop that uses it
            self._waiters = asyncio.Condition()
        return self._waiters

    async def acquire(self) -> None:
        """Wait for a turn to send."""
        if (
            self._inflight < int(self._window)
            and not self._interval
            and self._clock() >= self._resume_at
        ):
            self._inflight += 1  # the common case: nothing to wait for
            return
        cond = self._cond()
        self._waiting += 1
        try:
            await self._wait_turn(cond)
        finally:
            self._waiting -= 1

    async def _wait_turn(self, cond: asyncio.Condition) -> None:
        async with cond:
            while True:
                now = self._clock()
                if now < self._resume_at:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cond.wait(), self._resume_at - now)
                elif self._inflight >= int(self._window):
                    await cond.wait()
                else:
                    break
            self._inflight += 1
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def release(self, *, ok: bool = False, throttled: bool = False, pause: float = 0.0) -> None:
        """End a request: ``ok`` (2xx) grows the window, ``throttled`` (429) cuts it."""
        self._inflight -= 1
        self._responses += 1
        if throttled:
            if self._responses - self._last_cut >= self._window:
                self._window = max(1.0, self._window / 2)
                self._last_cut = self._responses
            if pause > 0:
                self._resume_at = max(self._resume_at, self._clock() + pause)
        elif ok and self._window < self.limit:
            self._window = min(float(self.limit), self._window + 1.0 / self._window)
        if self._waiting:
            asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        cond = self._cond()
        async with cond:
            cond.notify_all()
