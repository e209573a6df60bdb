"""``accoil-transform serve-local``: run the local Accoil stand-in until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from ..config import DEFAULT_MAX_BODY_BYTES

if TYPE_CHECKING:  # the stand-in (and its HTTP server) is imported only when it runs
    from ..testing import LocalAccoil

API_KEY_ENV = "ACCOIL_API_KEY"


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve-local`` subcommand; its handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser(
        "serve-local",
        help="run a local Accoil stand-in (v2, v1 and /segment) on 127.0.0.1",
        description=(
            "Serve Accoil's ingress contracts on 127.0.0.1: 202 for a valid call, 400 for "
            "a body that breaks the contract, 401 for a wrong key. Faults can be injected. "
            "GET /_stats gives counters and GET /_accepted the accepted calls as NDJSON."
        ),
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"key to accept (default: ${API_KEY_ENV}, else the stand-in's test key)",
    )
    p.add_argument("--any-key", action="store_true", help="accept any key")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay of every response")
    p.add_argument(
        "--fail-rate", type=_fraction, default=0.0, metavar="P", help="share of 503 responses"
    )
    p.add_argument(
        "--error-rate", type=_fraction, default=0.0, metavar="P", help="share of 500 responses"
    )
    p.add_argument(
        "--rate-limit-rate",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of 429 responses",
    )
    p.add_argument(
        "--retry-after", default="1", metavar="S", help="Retry-After of the 429s (default: 1)"
    )
    p.add_argument(
        "--drop-rate",
        type=_fraction,
        default=0.0,
        metavar="P",
        help="share of connections closed with no response",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"larger bodies get 413 (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    p.add_argument("--no-record", action="store_true", help="keep counters only (long benchmarks)")


def build_server(args: argparse.Namespace) -> LocalAccoil:
    from ..testing import FaultPlan, LocalAccoil

    key = args.api_key or os.environ.get(API_KEY_ENV)
    faults = FaultPlan(
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit_rate,
        retry_after=args.retry_after or None,
        server_error=args.error_rate,
        unavailable=args.fail_rate,
        drop=args.drop_rate,
        max_body_bytes=args.max_body_bytes,
        seed=args.seed,
    )
    if args.any_key:
        return LocalAccoil(None, faults=faults, port=args.port, record=not args.no_record)
    if key:
        return LocalAccoil(key, faults=faults, port=args.port, record=not args.no_record)
    return LocalAccoil(faults=faults, port=args.port, record=not args.no_record)  # its test key


def run(args: argparse.Namespace) -> int:
    """Start the server, print its base URL, and serve until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server = build_server(args).start()
    except OSError as exc:
        print(f"serve-local: cannot listen: {exc}", file=sys.stderr)
        return 1
    with server:
        print(server.base_url, flush=True)
        print("local Accoil stand-in running; Ctrl-C to stop", file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        stats = server.stats()
    print(
        f"stopped: {stats['requests']} requests, {stats['accepted']} accepted",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m accoil_transform.cli.serve_local``: the same, without the full CLI."""
    parser = argparse.ArgumentParser(prog="serve-local", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
