"""Flow control: the AIMD window and 429 pauses, ``max_rate`` spacing, and backpressure
on the batches (read lazily, never far ahead of the server)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from accoil_transform.calls import AuthScheme, CallBatch
from accoil_transform.delivery import DeliveryOptions, FlowControl, send
from accoil_transform.testing import LocalAccoil
from tests.delivery.helpers import KEY, batches, deliver, workload


def test_retry_after_pauses_every_worker(accoil_server: LocalAccoil) -> None:
    accoil_server.faults.latency_ms = 20
    accoil_server.faults.script(429, retry_after="1")
    deliver(accoil_server, workload(users=20, tracks=0), concurrency=4)
    reqs = accoil_server.requests
    t429 = reqs[0].mono
    # Up to 3 requests were in flight with the 429, and their workers may each have
    # started one more before the 429 was seen; every other request waited 1 s.
    late = [r for r in reqs[1:] if r.mono - t429 >= 1.0]
    assert len(late) >= len(reqs) - 1 - 2 * 3
    assert len(late) >= 12


def test_max_rate_spaces_requests(accoil_server: LocalAccoil) -> None:
    calls = workload(users=30, tracks=0)
    deliver(accoil_server, calls, concurrency=8, max_rate=100)
    times = sorted(r.mono for r in accoil_server.requests)
    assert times[-1] - times[0] >= 0.9 * (len(times) - 1) / 100


def test_backpressure_reads_batches_lazily(accoil_server: LocalAccoil) -> None:
    calls = workload(users=50, tracks=3000)
    concurrency, batch_size = 4, 25
    gaps: list[int] = []

    def watched() -> Iterator[CallBatch]:
        handed = 0
        for batch in batches(calls, accoil_server.base_url, batch_size=batch_size):
            gaps.append(handed - accoil_server.stats()["accepted"])
            handed += len(batch)
            yield batch

    report = send(
        watched(),
        api_key=KEY,
        auth=AuthScheme.RAW_BASIC,
        options=DeliveryOptions(concurrency=concurrency),
    )
    assert report.total.sent == len(calls)
    # never more calls ahead of the server than the slots, the batch being started and
    # the one read ahead
    assert max(gaps) <= concurrency + 2 * batch_size
    assert len(gaps) == 2 + 3000 // batch_size  # every batch was read, one at a time


def test_flow_control_cuts_on_429_and_recovers() -> None:
    async def scenario() -> None:
        now = [0.0]
        flow = FlowControl(8, clock=lambda: now[0])
        for _ in range(8):
            await flow.acquire()
        flow.release(throttled=True, pause=2.0)
        assert (flow.window, flow.resume_at) == (4.0, 2.0)
        flow.release(throttled=True)  # same round trip: no second cut
        assert flow.window == 4.0
        for _ in range(6):
            flow.release()  # neither success nor 429: no change
        assert flow.window == 4.0
        now[0] = 2.0  # the pause is over
        for _ in range(4):
            await asyncio.wait_for(flow.acquire(), 1)
        for _ in range(40):  # additive increase: +1/window per success
            flow.release(ok=True)
            await asyncio.wait_for(flow.acquire(), 1)
        assert flow.window == 8.0

    asyncio.run(scenario())
