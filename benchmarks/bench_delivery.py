"""Delivery: HTTP clients side by side, the product end to end, and memory, on this machine.

The Accoil stand-in (``accoil-transform serve-local``) runs in its own process with a
fixed ``--latency-ms`` per response, so client and server do not share a GIL (they do
share the machine's cores). Every scenario posts small v2 track calls and checks that the
server accepted each one.

1. Clients: ``requests`` (a Session per thread), ``urllib3`` (one PoolManager, threads),
   a bare ``aiohttp`` loop (a semaphore, no retries or ledger) and the product's
   ``send()`` (retries, ledger, dead letter, rate limit, circuit breaker all on), each at
   concurrency 32/128/256 and latency 0/20 ms: calls/s, the share of the latency bound
   (concurrency / latency) and the client's CPU microseconds per call.
2. Export: the CLI as a whole process, ``accoil-transform run`` on a B2B-shaped export of
   ``--export-events`` events from 50 users, at 20 ms and ``--concurrency 128``: delivery
   calls/s from the run's report, and the process's wall time.
3. Memory: ``--memory-calls`` calls through ``send()``, RSS sampled as they go.

    python benchmarks/bench_delivery.py                        # the table in benchmarks/README.md
    python benchmarks/bench_delivery.py --calls 3000 --memory-calls 0 --export-events 5000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import psutil
import requests
import urllib3

import accoil_transform as at
from accoil_transform.calls import AuthScheme, CallBatch

KEY = "bench-key"
HEADERS = {"Authorization": f"Basic {KEY}", "Content-Type": "application/json"}
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CONCURRENCIES = (32, 128, 256)
LATENCIES_MS = (0.0, 20.0)


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


def bodies(n: int, first: int = 0, users: int = 50) -> list[bytes]:
    """``n`` small v2 track bodies from ``users`` users."""
    out = []
    for i in range(first, first + n):
        ts = (EPOCH + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        out.append(orjson.dumps({"userId": f"u{i % users}", "event": "Bench", "timestamp": ts}))
    return out


def batches(
    url: str, data: list[bytes], first: int = 0, batch_size: int = 500
) -> Iterator[CallBatch]:
    """The calls as ``send`` takes them, numbered from ``first``."""
    for start in range(0, len(data), batch_size):
        chunk = data[start : start + batch_size]
        ids = [f"c{first + start + i}" for i in range(len(chunk))]
        yield CallBatch("track", url, ids, chunk, [None] * len(chunk))


# --------------------------------------------------------------------------- clients


def via_send(url: str, data: list[bytes], concurrency: int, ledger: Path) -> None:
    ledger.unlink(missing_ok=True)
    report = at.send(
        batches(url, data),
        api_key=KEY,
        auth=AuthScheme.RAW_BASIC,
        options=at.DeliveryOptions(concurrency=concurrency, ledger_path=ledger),
        total=len(data),
    )
    assert report.total.sent == len(data), report.to_dict()


def via_aiohttp(url: str, data: list[bytes], concurrency: int, ledger: Path) -> None:
    """The floor of an asyncio client: one session, a semaphore, nothing else."""

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            it = iter(data)

            async def worker() -> None:
                for body in it:
                    async with session.post(url, data=body, headers=HEADERS) as resp:
                        await resp.read()
                        assert resp.status == 202, resp.status

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())


def _threads(data: list[bytes], concurrency: int, post: Callable[[bytes], int]) -> None:
    lock = threading.Lock()
    it = iter(data)

    def work() -> None:
        while True:
            with lock:
                body = next(it, None)
            if body is None:
                return
            status = post(body)
            assert status == 202, status

    pool = [threading.Thread(target=work) for _ in range(concurrency)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def via_urllib3(url: str, data: list[bytes], concurrency: int, ledger: Path) -> None:
    http = urllib3.PoolManager(maxsize=concurrency, retries=False)
    _threads(data, concurrency, lambda b: http.request("POST", url, body=b, headers=HEADERS).status)


def via_requests(url: str, data: list[bytes], concurrency: int, ledger: Path) -> None:
    local = threading.local()

    def post(body: bytes) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return int(local.session.post(url, data=body, headers=HEADERS, timeout=30).status_code)

    _threads(data, concurrency, post)


CLIENTS: dict[str, Callable[[str, list[bytes], int, Path], None]] = {
    "requests": via_requests,
    "urllib3": via_urllib3,
    "aiohttp loop": via_aiohttp,
    "send()": via_send,
}


@dataclass
class Result:
    client: str
    latency_ms: float
    concurrency: int
    calls: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    @property
    def bound(self) -> float | None:
        return self.concurrency / (self.latency_ms / 1000) if self.latency_ms else None

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.calls * 1e6


def measure(
    client: str, latency_ms: float, concurrency: int, url: str, n: int, tmp: Path
) -> Result:
    data = bodies(n)
    cpu0, t0 = time.process_time(), time.perf_counter()
    CLIENTS[client](url + "/v2/track", data, concurrency, tmp / "ledger.sqlite")
    return Result(
        client, latency_ms, concurrency, n, time.perf_counter() - t0, time.process_time() - cpu0
    )


def clients(args: argparse.Namespace, tmp: Path) -> list[Result]:
    """Every client at every latency and concurrency; the median of ``--repeat`` runs each."""
    results = []
    for latency in LATENCIES_MS:
        with server(latency) as url:
            sent = 0
            for concurrency in CONCURRENCIES:
                for client in args.clients:
                    runs = [
                        measure(client, latency, concurrency, url, args.calls, tmp)
                        for _ in range(args.repeat)
                    ]
                    sent += args.calls * args.repeat
                    best = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
                    best.cpu = statistics.median(r.cpu for r in runs)
                    results.append(best)
                    print(row(best), flush=True)
            assert accepted(url) == sent, "the server did not accept every call"
    return results


def row(r: Result) -> str:
    share = f"{r.rate / r.bound:6.0%}" if r.bound else "     -"
    return (
        f"| {r.client:<13} | {r.latency_ms:>5g} | {r.concurrency:>4} | {r.rate:>8,.0f} "
        f"| {share:>6} | {r.cpu_us:>7,.0f} |"
    )


HEADER = (
    "| client        | ms    | c    | calls/s  | bound  | CPU µs/call |\n"
    "|---------------|-------|------|----------|--------|---------|"
)


# --------------------------------------------------------------------------- whole CLI


def export_run(args: argparse.Namespace, tmp: Path) -> None:
    """``accoil-transform run`` on a 50-user export, as a user starts it."""
    from accoil_transform.testing.synthetic import generate_events, write_export_zip

    export = tmp / "export.zip"
    write_export_zip(export, generate_events(args.export_events, seed=3, users=50, accounts=10))
    latency, concurrency = 20.0, 128
    bound = concurrency / (latency / 1000)
    print(
        f"\nexport: {args.export_events:,} events, 50 users, {latency:g} ms, "
        f"--concurrency {concurrency}, bound {bound:,.0f} calls/s"
    )
    print("| run | calls | delivery s | calls/s | bound | process s |")
    print("|-----|-------|------------|---------|-------|-----------|")
    rates = []
    with server(latency) as url:
        for n in range(args.repeat):
            report = tmp / f"report{n}.json"
            env = {**os.environ, "ACCOIL_API_KEY": KEY}
            t0 = time.perf_counter()
            subprocess.run(
                [
                    *(str(Path(sys.executable).with_name("accoil-transform")), "run", str(export)),
                    *("--base-url", url, "--concurrency", str(concurrency)),
                    *("--ledger", str(tmp / f"ledger{n}.sqlite"), "--report", str(report), "-q"),
                ],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - t0
            delivery = json.loads(report.read_text())["delivery"]
            calls, seconds = delivery["total"]["sent"], delivery["duration_s"]
            rates.append(calls / seconds)
            print(
                f"| {n + 1} | {calls:,} | {seconds:.2f} | {calls / seconds:,.0f} "
                f"| {calls / seconds / bound:.0%} | {wall:.2f} |",
                flush=True,
            )
    rate = statistics.median(rates)
    print(f"median {rate:,.0f} calls/s = {rate / bound:.0%} of the bound")


# --------------------------------------------------------------------------- memory


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

        def lazy() -> Iterator[CallBatch]:
            """Made as they are taken, as ``run`` makes them, so only the sender holds calls."""
            for start in range(0, n, 500):
                yield from batches(url + "/v2/track", bodies(min(500, n - start), start), start)

        report = at.send(
            lazy(),
            api_key=KEY,
            auth=AuthScheme.RAW_BASIC,
            options=at.DeliveryOptions(concurrency=128, ledger_path=tmp / "m.sqlite"),
            total=n,
        )
        done.set()
        sampler.join()
    assert report.total.sent == n
    print(
        f"\nmemory: {n:,} calls in {report.duration_s:.1f} s, {n / report.duration_s:,.0f} calls/s"
    )
    print(f"{'calls accepted':>16} {'RSS MB':>8}")
    step = max(1, len(samples) // 10)
    for count, rss in samples[::step] + samples[-1:]:
        print(f"{count:>16,} {rss:>8.1f}")
    later = [rss for count, rss in samples if count >= n // 10]
    if later:
        print(
            f"RSS growth from 10% to the end: {later[-1] - later[0]:+.1f} MB (max {max(later):.1f} MB)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per client scenario")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=list(CLIENTS))
    parser.add_argument("--export-events", type=int, default=30_000, help="0 to skip")
    parser.add_argument("--memory-calls", type=int, default=1_000_000, help="0 to skip")
    args = parser.parse_args(argv)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.calls:,} calls a run, median of {args.repeat}"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        clients(args, Path(tmp))
        if args.export_events:
            export_run(args, Path(tmp))
        if args.memory_calls:
            memory(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
