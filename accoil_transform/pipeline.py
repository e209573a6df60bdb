"""The main job: read → transform → calls → write (dry run) or deliver.

This is the only module that ties readers, the pure transform, call encoding and the
outputs together; each of those is usable and testable alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from .batches import DEFAULT_BATCH_SIZE, iter_batches
from .calls import build_calls
from .config import TransformConfig
from .formats import get_format
from .output import write_dry_run, write_quarantine, write_report
from .readers import Source, read_events
from .transform import TransformResult, transform

DEFAULT_DRY_RUN_PATH = Path("accoil-dry-run.ndjson")

#: Track columns each format's bodies need (the rest is dropped per batch to save memory).
_TRACK_COLUMNS = ["_row", "dedup_key", "event_time", "userId", "event", "timestamp"]
_STREAM_COLUMNS = [*_TRACK_COLUMNS, "properties", "groupTraits"]


@dataclass
class RunOptions:
    """How a run writes or delivers its calls.

    With no ``api_key`` the run is a dry run: every call goes to ``out`` as NDJSON.
    """

    format: str = "v2"
    api_key: str | None = field(default=None, repr=False)
    dry_run: bool = False
    out: Path | None = None
    report: Path | None = None
    quarantine: Path | None = None
    strict: bool = False
    base_url: str | None = None
    url: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    delivery: Any = None  # accoil_transform.delivery.DeliveryOptions

    @property
    def is_dry_run(self) -> bool:
        return self.dry_run or not self.api_key


@dataclass
class RunResult:
    """The report of a run (``report``, JSON-ready) and the frames behind it."""

    report: dict[str, Any]
    calls: pl.DataFrame
    result: TransformResult


def transform_inputs(
    inputs: Source | Iterable[Source],
    config: TransformConfig | None = None,
    *,
    strict: bool = False,
    keep_columns: list[str] | None = None,
) -> TransformResult:
    """Read ``inputs`` batch by batch (a file or zip member at a time) and transform them."""
    config = config or TransformConfig()
    return transform(read_events(inputs, config), config, strict=strict, keep_columns=keep_columns)


def run(
    inputs: Source | Iterable[Source],
    config: TransformConfig | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run the whole job and return its report; write ``options.report`` if set."""
    options = options or RunOptions()
    wire = get_format(options.format)
    started = time.perf_counter()
    keep = _STREAM_COLUMNS if wire.name == "stream" else _TRACK_COLUMNS
    result = transform_inputs(inputs, config, strict=options.strict, keep_columns=keep)
    calls = build_calls(result.tracks, result.identifies, result.groups, wire)

    report: dict[str, Any] = result.report.to_dict()
    report["calls"] = {kind: int((calls["kind"] == kind).sum()) for kind in wire.kinds}
    report["format"] = wire.name
    report["dry_run"] = options.is_dry_run
    outputs: dict[str, str] = {}

    if not result.quarantine.is_empty():
        target = options.quarantine or _beside(options.out or DEFAULT_DRY_RUN_PATH, ".quarantine.ndjson")
        outputs["quarantine"] = str(write_quarantine(result.quarantine, target))

    if options.is_dry_run:
        out = options.out or DEFAULT_DRY_RUN_PATH
        outputs["calls"] = str(
            write_dry_run(calls, out, wire, base_url=options.base_url, url=options.url)
        )
    else:
        report["delivery"] = _deliver(calls, options)

    report["outputs"] = outputs
    report["duration_s"] = round(time.perf_counter() - started, 3)
    if options.report:
        outputs["report"] = str(options.report)
        write_report(report, options.report)
    return RunResult(report, calls, result)


def _deliver(calls: pl.DataFrame, options: RunOptions) -> dict[str, Any]:
    from .delivery import DeliveryOptions, send

    wire = get_format(options.format)
    batches = iter_batches(
        calls, wire, base_url=options.base_url, url=options.url, batch_size=options.batch_size
    )
    delivery_options = options.delivery or DeliveryOptions()
    if delivery_options.total_calls is None:
        delivery_options = replace(delivery_options, total_calls=calls.height)
    assert options.api_key is not None
    outcome = send(batches, api_key=options.api_key, auth=wire.auth, options=delivery_options)
    return outcome.to_dict()


def _beside(path: Path, suffix: str) -> Path:
    path = Path(path)
    return path.with_name(path.stem + suffix)
