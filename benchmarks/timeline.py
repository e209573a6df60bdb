#!/usr/bin/env python
"""When each chunk reaches the transform during ``accoil_transform.run``, and when it is done.

Shows whether the transform thread waits for the reader threads (a gap between a
chunk's "transformed" and the next chunk's "arrived") or the reader waits for it (no
gap), and how long the end of the run (identify and group calls, merge, write) takes.
``--chunk-mb``, ``--read-mb`` and ``--decode-kb`` set the reader's sizes
(``RunOptions(read=ReadOptions(...))``).

    python benchmarks/timeline.py export.zip --format v2
    python benchmarks/timeline.py export.zip --format v2 --chunk-mb 64
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

os.environ.setdefault("POLARS_MAX_THREADS", "2")  # before polars is imported


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("zip", type=Path, help="an export zip (e.g. the corpus of bench_transform.py)")
    p.add_argument("--format", choices=["v2", "stream"], default="v2")
    p.add_argument("--chunk-mb", type=int, help="ReadOptions.chunk_bytes in MB (default 128)")
    p.add_argument("--read-mb", type=int, help="ReadOptions.read_bytes in MB (default 16)")
    p.add_argument("--decode-kb", type=int, help="ReadOptions.decode_bytes in KB (default 256)")
    args = p.parse_args(argv)

    import accoil_transform as at

    sizes = {
        "chunk_bytes": args.chunk_mb and args.chunk_mb << 20,
        "read_bytes": args.read_mb and args.read_mb << 20,
        "decode_bytes": args.decode_kb and args.decode_kb << 10,
    }
    read = at.ReadOptions(**{k: v for k, v in sizes.items() if v is not None})

    # Where the run looks these up. A trace needs to wrap the steps inside a run, which
    # no public seam offers, so this patches names in private modules; nothing else should.
    pipeline = importlib.import_module("accoil_transform.jobs._run")
    transform = importlib.import_module("accoil_transform.rules._transformer")
    events: list[tuple[float, str]] = []

    def note(what: str) -> None:
        events.append((time.perf_counter(), what))

    read_events = pipeline.read_events

    def traced_read_events(*a: Any, **k: Any) -> Iterator[Any]:
        for frame in read_events(*a, **k):
            note(f"chunk of {frame.height:,} events arrived")
            yield frame
            note("  transformed")

    def traced(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any, **k: Any) -> Any:
            note(f"{label} started")
            try:
                return fn(*a, **k)
            finally:
                note(f"{label} done")

        return call

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(pipeline, "read_events", traced_read_events))
        stack.enter_context(
            mock.patch.object(
                transform.Transformer,
                "finish",
                traced("identify and group state", transform.Transformer.finish),
            )
        )
        stack.enter_context(
            mock.patch.object(
                pipeline, "write_dry_run", traced("merge and write", pipeline.write_dry_run)
            )
        )
        work = stack.enter_context(tempfile.TemporaryDirectory(prefix="accoil-timeline-"))
        t0 = time.perf_counter()
        options = at.RunOptions(format=args.format, out=Path(work) / "calls.ndjson", read=read)
        at.run(str(args.zip), at.TransformConfig(), options)
        end = time.perf_counter()
    last = t0
    for t, what in events:
        print(f"{t - t0:6.3f} s  (+{t - last:.3f})  {what}")
        last = t
    print(f"{end - t0:6.3f} s  end of run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
