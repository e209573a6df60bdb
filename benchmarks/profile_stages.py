#!/usr/bin/env python
"""Where the product's time goes, stage by stage, on the benchmark corpus.

Runs the same steps as ``accoil_transform.run`` (dry run), but one after another with
no read-ahead thread (the reader's own generators, so chunks are made as in a run),
timing each stage:

* decompression: ``read._lines.iter_line_chunks`` (zip member read + ISA-L gunzip, in pieces);
* JSON decoding: ``read._ndjson.decode_lines`` (msgspec) and ``DecodedLines.to_frame`` (polars
  cuts the columns);
* normalise: ``read.normalize_frame``;
* transform: ``rules.Transformer.feed`` per chunk, then ``finish``;
* call encoding: ``calls.track_calls`` per chunk, identify and group calls at the end;
* writing: ``jobs.write_dry_run``.

Wall and CPU seconds per stage (median over ``--repeat``), and the wall time of
``accoil_transform.run`` on the same zip for reference (it overlaps decompression with
the rest, so it can be shorter than the sum). polars is held to 2 threads
(``POLARS_MAX_THREADS=2``), as in ``bench_transform.py``.

A second table times reading alone, as a run reads (its threads overlapped) but with
nothing done to the frames: decompression; then with JSON decoding; then all of
``read_events``. That is the floor under a run's wall time.

``--chunk-mb``, ``--read-mb`` and ``--decode-kb`` set the reader's sizes through
``accoil_transform.ReadOptions`` (the same options a run takes as ``RunOptions(read=...)``)
for every table, to compare chunk or piece sizes.

    python benchmarks/profile_stages.py              # 300k x 2 KB, 6 members
    python benchmarks/profile_stages.py --zip export.zip --format stream
    python benchmarks/profile_stages.py --zip export.zip --format v2 --chunk-mb 64
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accoil_transform import ReadOptions

os.environ.setdefault("POLARS_MAX_THREADS", "2")  # before polars is imported

STAGES = (
    ("decompression", "read._lines.iter_line_chunks"),
    ("JSON decoding", "read._ndjson.decode_lines/DecodedLines.to_frame"),
    ("normalise", "read.normalize_frame"),
    ("transform", "rules.Transformer.feed/finish"),
    ("call encoding", "calls.track_calls/identify_calls/group_calls"),
    ("writing", "jobs.write_dry_run"),
)


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


class Clock:
    """Adds the wall and CPU time of each timed call to its stage."""

    def __init__(self) -> None:
        self.wall = dict.fromkeys((s for s, _ in STAGES), 0.0)
        self.cpu = dict.fromkeys((s for s, _ in STAGES), 0.0)

    def __call__(self, stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        c0, t0 = _cpu(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.wall[stage] += time.perf_counter() - t0
            self.cpu[stage] += _cpu() - c0


def profile_once(zip_path: Path, fmt: str, out: Path, options: ReadOptions) -> tuple[Clock, int]:
    """The pipeline of ``accoil_transform.run`` (dry run), stage by stage.

    The reader's own generators run one after another in this thread (``read_events``
    runs them in threads), so chunks are made exactly as in a run; their functions are
    timed where they are looked up. (A profiler needs each stage alone, so this reaches
    into the reader's private modules: ``_stream``, ``_decode`` and ``_canonical`` are
    the three stages ``read_events`` runs in threads. Nothing else should.)
    """
    import polars as pl

    from accoil_transform.calls import (
        get_format,
        group_calls,
        identify_calls,
        track_calls,
    )
    from accoil_transform.config import TransformConfig
    from accoil_transform.jobs import write_dry_run
    from accoil_transform.read import _events as reader
    from accoil_transform.read import _ndjson as ndjson
    from accoil_transform.rules import Transformer

    config = TransformConfig()
    wire = get_format(fmt)
    clock = Clock()
    transformer = Transformer(config)

    def timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args, **kwargs: clock(stage, fn, *args, **kwargs)

    def pieces() -> Any:
        units = reader._stream(reader.iter_raw_inputs(str(zip_path), options), options)
        while (unit := clock("decompression", next, units, None)) is not None:
            yield unit

    patched = {
        (reader, "decode_lines"): timed("JSON decoding", reader.decode_lines),
        (ndjson.DecodedLines, "to_frame"): timed("JSON decoding", ndjson.DecodedLines.to_frame),
        (reader, "normalize_frame"): timed("normalise", reader.normalize_frame),
    }
    originals = {target: getattr(*target) for target in patched}
    rows = 0
    try:
        for (owner, name), fn in patched.items():
            setattr(owner, name, fn)
        decoded = reader._decode(pieces(), config, config.json_columns_needed(), options)
        made = []  # each chunk's track calls (a run writes them as they come)
        for frame in reader._canonical(decoded, config, options):
            rows += frame.height
            tracks = clock("transform", transformer.feed, frame)
            made.append(clock("call encoding", track_calls, tracks, wire))
            del frame, tracks
        identifies, groups = clock("transform", transformer.finish)
        head = clock(
            "call encoding",
            lambda: pl.concat([identify_calls(identifies, wire), group_calls(groups, wire)]),
        )
        first = None if wire.kinds == ("track",) else (lambda: head)
        clock("writing", write_dry_run, made, out, wire, first=first)
    finally:
        for (owner, name), fn in originals.items():
            setattr(owner, name, fn)
    return clock, rows


READER_STAGES = (
    ("decompression", "1 thread"),
    ("+ JSON decoding", "2 threads"),
    ("+ columns and normalise: `read_events`", "3 threads"),
)


def read_only(zip_path: Path, upto: int, options: ReadOptions) -> tuple[float, float]:
    """Wall and CPU s of the first ``upto`` + 1 reader stages, in their threads.

    All three: the public ``read_events``. The first one or two: the reader's private
    stage generators, run in threads as ``read_events`` runs them.
    """
    import accoil_transform as at
    from accoil_transform._prefetch import prefetched
    from accoil_transform.read import _events as reader

    config = at.TransformConfig()
    c0, t0 = _cpu(), time.perf_counter()
    items: Any
    if upto == 2:
        items = at.read_events(str(zip_path), config, only_needed=True, options=options)
    else:
        pieces = reader._stream(reader.iter_raw_inputs(str(zip_path), options), options)
        items = prefetched(pieces, depth=options.inflate_ahead)
        if upto == 1:
            wanted = config.json_columns_needed()
            items = prefetched(reader._decode(items, config, wanted, options))
    for _ in items:
        pass
    return time.perf_counter() - t0, _cpu() - c0


def fresh(path: Path) -> Path:
    """``path`` deleted and every file flushed, as in ``bench_transform.py``: truncating a
    file that is still being written back waits for the disk."""
    path.unlink(missing_ok=True)
    os.sync()
    return path


def run_once(zip_path: Path, fmt: str, out: Path, options: ReadOptions) -> float:
    import accoil_transform as at

    t0 = time.perf_counter()
    at.run(str(zip_path), at.TransformConfig(), at.RunOptions(format=fmt, out=out, read=options))
    return time.perf_counter() - t0


def add_read_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-mb", type=int, help="ReadOptions.chunk_bytes in MB (default 128)")
    p.add_argument("--read-mb", type=int, help="ReadOptions.read_bytes in MB (default 16)")
    p.add_argument("--decode-kb", type=int, help="ReadOptions.decode_bytes in KB (default 256)")


def describe(options: ReadOptions) -> str:
    """``; chunk_bytes=..., ...`` for the reader sizes that are not the defaults."""
    from dataclasses import fields

    import accoil_transform as at

    default = at.ReadOptions()
    changed = [
        f"{f.name}={getattr(options, f.name):,}"
        for f in fields(options)
        if getattr(options, f.name) != getattr(default, f.name)
    ]
    return "; " + ", ".join(changed) if changed else ""


def read_options(args: argparse.Namespace) -> ReadOptions:
    """The reader's sizes from the flags; the defaults where a flag is not given."""
    import accoil_transform as at

    sizes = {
        "chunk_bytes": args.chunk_mb and args.chunk_mb << 20,
        "read_bytes": args.read_mb and args.read_mb << 20,
        "decode_bytes": args.decode_kb and args.decode_kb << 10,
    }
    return at.ReadOptions(**{k: v for k, v in sizes.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zip", type=Path, help="an existing export zip (default: generate one)")
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--event-bytes", type=int, default=2000)
    p.add_argument("--members", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=["v2", "stream", "both"], default="both")
    p.add_argument("--repeat", type=int, default=3, help="profiles per format; medians are shown")
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    add_read_flags(p)
    args = p.parse_args(argv)
    options = read_options(args)

    import polars as pl

    work = Path(tempfile.mkdtemp(prefix="accoil-profile-"))
    try:
        zip_path = args.zip
        if zip_path is None:
            from accoil_transform.testing.synthetic import generate_events, write_export_zip

            zip_path = work / "corpus.zip"
            t0 = time.perf_counter()
            events = generate_events(args.events, seed=args.seed, event_bytes=args.event_bytes)
            write_export_zip(zip_path, events, members=args.members)
            print(
                f"generated {args.events:,} events in {time.perf_counter() - t0:.1f} s", flush=True
            )
        formats = ["v2", "stream"] if args.format == "both" else [args.format]
        results: dict[str, dict[str, Any]] = {}
        for fmt in formats:
            clocks: list[Clock] = []
            runs: list[float] = []
            rows = 0
            for _ in range(args.repeat):
                out = fresh(work / f"calls-{fmt}.ndjson")
                clock, rows = profile_once(zip_path, fmt, out, options)
                clocks.append(clock)
                runs.append(run_once(zip_path, fmt, fresh(work / f"run-{fmt}.ndjson"), options))
            results[fmt] = {
                "rows": rows,
                "wall": {s: statistics.median(c.wall[s] for c in clocks) for s, _ in STAGES},
                "cpu": {s: statistics.median(c.cpu[s] for c in clocks) for s, _ in STAGES},
                "run": statistics.median(runs),
            }
            print(f"profiled {fmt} ({args.repeat}×)", flush=True)
        floor = [
            [read_only(zip_path, i, options) for _ in range(args.repeat)]
            for i in range(len(READER_STAGES))
        ]

        print(
            f"\n## Stages ({rows:,} events; polars {pl.__version__}, "
            f"POLARS_MAX_THREADS={os.environ['POLARS_MAX_THREADS']}; median of {args.repeat}; "
            f"1-min load average now {os.getloadavg()[0]:.1f}{describe(options)})\n"
        )
        header = ["stage", "function"]
        for fmt in formats:
            header += [f"{fmt} wall s", f"{fmt} %", f"{fmt} CPU s"]
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for stage, fn in STAGES:
            cells = [stage, f"`{fn}`"]
            for fmt in formats:
                r = results[fmt]
                total = sum(r["wall"].values())
                cells += [
                    f"{r['wall'][stage]:.2f}",
                    f"{100 * r['wall'][stage] / total:.0f} %",
                    f"{r['cpu'][stage]:.2f}",
                ]
            print("| " + " | ".join(cells) + " |")
        cells = ["**sum of stages**", ""]
        for fmt in formats:
            r = results[fmt]
            total = sum(r["wall"].values())
            cells += [f"**{total:.2f}**", "100 %", f"{sum(r['cpu'].values()):.2f}"]
        print("| " + " | ".join(cells) + " |")
        cells = ["`accoil_transform.run` (overlapped)", ""]
        for fmt in formats:
            r = results[fmt]
            cells += [f"{r['run']:.2f}", "", f"{r['rows'] / r['run']:,.0f} events/s"]
        print("| " + " | ".join(cells) + " |")

        print(f"\n## Reading alone (median of {args.repeat})\n")
        print("| reader stages | threads | wall s | CPU s |")
        print("|---|---|---|---|")
        for (stage, threads), runs_of_stage in zip(READER_STAGES, floor, strict=True):
            wall = statistics.median(w for w, _ in runs_of_stage)
            cpu = statistics.median(c for _, c in runs_of_stage)
            print(f"| {stage} | {threads} | {wall:.2f} | {cpu:.2f} |")
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
