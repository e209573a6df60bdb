"""Delivery throughput, client CPU and memory against the local Accoil stand-in.

The server runs in its own process (``accoil_transform.cli.serve_local``), so client and
server do not share a GIL. Scenarios:

1. ``--latency-ms`` (20) per response, ``--concurrency`` (32): calls/s against the
   ideal ``concurrency / latency``; the target is >= 70 % of it.
2. 0 ms latency: the engine against plain urllib3 loops on the same server.
3. Memory: ``--memory-calls`` (1M) small calls, RSS sampled as they go; it must stay
   flat (the batch iterator is read lazily and the ledger is on disk).

    python benchmarks/bench_delivery.py                 # 20,000 calls a scenario, 1M memory run
    python benchmarks/bench_delivery.py --calls 2000 --memory-calls 20000   # quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil
import requests
import urllib3

import accoil_transform as at
from accoil_transform.calls import AuthScheme, CallBatch

KEY = "bench-key"
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@contextmanager
def server(latency_ms: float) -> Iterator[str]:
    """A stand-in in a child process; yields its base URL."""
    code = "from accoil_transform.cli.serve_local import main; main()"
    args = ["--latency-ms", str(latency_ms), "--api-key", KEY, "--no-record"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def accepted(base_url: str) -> int:
    return int(requests.get(base_url + "/_stats", timeout=10).json()["accepted"])


def calls(n: int, users: int = 10_000) -> Iterator[tuple[str, bytes]]:
    """``n`` small v2 track calls: (user id, body)."""
    for i in range(n):
        ts = (EPOCH + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        user = f"u{i % users}"
        yield user, orjson.dumps({"userId": user, "event": "Bench_Event", "timestamp": ts})


def bodies(n: int) -> Iterator[bytes]:
    return (body for _, body in calls(n))


def track_batches(base_url: str, n: int, batch_size: int = 500) -> Iterator[CallBatch]:
    """The calls as ``send`` takes them, made lazily as ``run`` makes them."""
    url = base_url + "/v2/track"
    ids: list[str] = []
    chunk: list[bytes] = []
    users: list[str | None] = []
    for i, (user, body) in enumerate(calls(n)):
        ids.append(f"c{i}")
        chunk.append(body)
        users.append(user)
        if len(chunk) == batch_size:
            yield CallBatch("track", url, ids, chunk, users)
            ids, chunk, users = [], [], []
    if chunk:
        yield CallBatch("track", url, ids, chunk, users)


@dataclass
class Result:
    name: str
    calls: int
    seconds: float
    cpu: float
    ideal: float | None = None

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def row(self) -> str:
        ratio = f"{self.rate / self.ideal:6.1%}" if self.ideal else "     -"
        return (
            f"{self.name:<44} {self.calls:>9,} {self.rate:>9,.0f} {ratio:>7} "
            f"{self.cpu / self.calls * 1e6:>9,.0f} {peak_rss_mb():>8,.0f}"
        )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, n: int, fn: Callable[[], None], ideal: float | None = None) -> Result:
    cpu0, t0 = time.process_time(), time.perf_counter()
    fn()
    return Result(name, n, time.perf_counter() - t0, time.process_time() - cpu0, ideal)


def engine(base_url: str, n: int, concurrency: int, ledger: Path | None) -> Callable[[], None]:
    def run() -> None:
        opts = at.DeliveryOptions(concurrency=concurrency, ledger_path=ledger)
        report = at.send(
            track_batches(base_url, n),
            api_key=KEY,
            auth=AuthScheme.RAW_BASIC,
            options=opts,
            total=n,
        )
        assert report.total.sent == n, report.to_dict()

    return run


def urllib3_loop(base_url: str, n: int, threads: int) -> Callable[[], None]:
    """The bare minimum: pre-built bodies, one pool, no retries, no ledger."""
    url = base_url + "/v2/track"
    headers = {"Authorization": f"Basic {KEY}", "Content-Type": "application/json"}
    data = list(bodies(n))

    def run() -> None:
        http = urllib3.PoolManager(maxsize=threads, retries=False)
        lock = threading.Lock()
        it = iter(data)

        def work() -> None:
            while True:
                with lock:
                    body = next(it, None)
                if body is None:
                    return
                status = http.request("POST", url, body=body, headers=headers).status
                assert status == 202, status

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()

    return run


def throughput(args: argparse.Namespace, tmp: Path) -> list[Result]:
    results = []
    ideal = args.concurrency / (args.latency_ms / 1000)
    with server(args.latency_ms) as url:
        for ledger in (tmp / "a.sqlite", None):
            name = f"send() {args.latency_ms:g} ms, c={args.concurrency}, ledger {'on' if ledger else 'off'}"
            results.append(
                measure(name, args.calls, engine(url, args.calls, args.concurrency, ledger), ideal)
            )
        name = f"urllib3 loop {args.latency_ms:g} ms, {args.concurrency} threads"
        results.append(
            measure(name, args.calls, urllib3_loop(url, args.calls, args.concurrency), ideal)
        )
        assert accepted(url) == 3 * args.calls
    with server(0) as url:
        n = args.calls
        results.append(
            measure(
                f"send() 0 ms, c={args.concurrency}, ledger on",
                n,
                engine(url, n, args.concurrency, tmp / "b.sqlite"),
            )
        )
        results.append(
            measure(
                f"urllib3 loop 0 ms, {args.concurrency} threads",
                n,
                urllib3_loop(url, n, args.concurrency),
            )
        )
        results.append(measure("urllib3 loop 0 ms, 1 thread", n, urllib3_loop(url, n, 1)))
        assert accepted(url) == 3 * n
    return results


def memory(args: argparse.Namespace, tmp: Path) -> None:
    """Send ``--memory-calls`` calls; print RSS at each tenth of the way."""
    n = args.memory_calls
    proc = psutil.Process()
    samples: list[tuple[int, float]] = []
    done = threading.Event()

    with server(0) as url:

        def sample() -> None:
            while not done.wait(2.0):
                samples.append((accepted(url), proc.memory_info().rss / 2**20))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = measure(
            f"send() {n:,} calls, 0 ms, c={args.concurrency}",
            n,
            engine(url, n, args.concurrency, tmp / "m.sqlite"),
        )
        done.set()
        sampler.join()
    print(f"\nmemory: {result.row()}")
    print(f"{'calls accepted':>16} {'RSS MB':>8}")
    step = max(1, len(samples) // 10)
    for count, rss in samples[::step] + samples[-1:]:
        print(f"{count:>16,} {rss:>8.1f}")
    early = [rss for count, rss in samples if count >= n // 10]
    if early:
        print(
            f"RSS growth from 10% to the end: {early[-1] - early[0]:+.1f} MB "
            f"(max {max(early):.1f} MB)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per scenario")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the server's delay")
    parser.add_argument("--memory-calls", type=int, default=1_000_000, help="0 to skip")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, client pid {os.getpid()}")
    with tempfile.TemporaryDirectory() as tmp:
        results = throughput(args, Path(tmp))
        print(
            f"\n{'scenario':<44} {'calls':>9} {'calls/s':>9} {'ideal':>7} "
            f"{'CPU us/call':>9} {'peak RSS MB':>8}"
        )
        for r in results:
            print(r.row())
        if args.memory_calls:
            memory(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
