"""The main job: read → transform → calls → write (dry run) or deliver.

This is the only module that ties readers, the pure transform, call encoding and the
outputs together; each of those is usable and testable alone.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from .batches import CALLS_SCHEMA, DEFAULT_BATCH_SIZE, iter_batches
from .calls import group_calls, identify_calls, track_calls
from .config import TransformConfig
from .formats import get_format
from .output import write_dry_run, write_quarantine, write_report
from .readers import Source, read_events
from .spill import TrackSpill
from .transform import Transformer, TransformResult, transform

if TYPE_CHECKING:  # delivery pulls in requests; dry runs never need it
    from .delivery import DeliveryOptions

DEFAULT_DRY_RUN_PATH = Path("accoil-dry-run.ndjson")


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
    delivery: DeliveryOptions | None = None

    @property
    def is_dry_run(self) -> bool:
        return self.dry_run or not self.api_key


@dataclass
class RunResult:
    """The report of a run, JSON-ready (also written to ``RunOptions.report`` if set)."""

    report: dict[str, Any]


def transform_inputs(
    inputs: Source | Iterable[Source],
    config: TransformConfig | None = None,
    *,
    strict: bool = False,
    keep_columns: list[str] | None = None,
) -> TransformResult:
    """Read ``inputs`` batch by batch (a file or zip member at a time) and transform them."""
    config = config or TransformConfig()
    return transform(
        read_events(inputs, config, only_needed=True),
        config,
        strict=strict,
        keep_columns=keep_columns,
    )


def run(
    inputs: Source | Iterable[Source],
    config: TransformConfig | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run the whole job: read, transform, then write a dry run or deliver.

    Memory is bounded by an input batch (a file or zip member): each batch's track calls
    are spilled to disk, and after the last batch the identify and group calls go
    first, then the track calls in event-time order.
    """
    config = config or TransformConfig()
    options = options or RunOptions()
    wire = get_format(options.format)
    started = time.perf_counter()
    t = Transformer(config, strict=options.strict)
    with TrackSpill() as spill:
        for frame in read_events(inputs, config, only_needed=True):
            spill.add(track_calls(t.feed(frame), wire, with_sort_key=True), is_sorted=True)
        identifies, groups = t.finish()
        head = pl.concat([identify_calls(identifies, wire), group_calls(groups, wire)])
        calls: Iterable[pl.DataFrame] = itertools.chain(
            [head], (chunk.select(list(CALLS_SCHEMA)) for chunk in spill.iter_sorted())
        )
        report: dict[str, Any] = t.report.to_dict()
        counts = {"identify": identifies.height, "group": groups.height, "track": spill.rows}
        report["calls"] = {kind: counts[kind] for kind in wire.kinds}
        report["format"] = wire.name
        report["dry_run"] = options.is_dry_run
        outputs: dict[str, str] = {}
        if not t.quarantine.is_empty():
            target = options.quarantine or _beside(
                options.out or DEFAULT_DRY_RUN_PATH, ".quarantine.ndjson"
            )
            outputs["quarantine"] = str(write_quarantine(t.quarantine, target))
        if options.is_dry_run:
            out = options.out or DEFAULT_DRY_RUN_PATH
            outputs["calls"] = str(
                write_dry_run(calls, out, wire, base_url=options.base_url, url=options.url)
            )
        else:
            report["delivery"] = _deliver(calls, sum(report["calls"].values()), options)

    report["outputs"] = outputs
    report["duration_s"] = round(time.perf_counter() - started, 3)
    if options.report:
        outputs["report"] = str(options.report)
        write_report(report, options.report)
    return RunResult(report)


def _deliver(calls: Iterable[pl.DataFrame], total: int, options: RunOptions) -> dict[str, Any]:
    from .delivery import DeliveryOptions, send

    wire = get_format(options.format)
    batches = iter_batches(
        calls, wire, base_url=options.base_url, url=options.url, batch_size=options.batch_size
    )
    delivery_options = options.delivery or DeliveryOptions()
    if delivery_options.total_calls is None:
        delivery_options = replace(delivery_options, total_calls=total)
    assert options.api_key is not None
    outcome = send(batches, api_key=options.api_key, auth=wire.auth, options=delivery_options)
    return outcome.to_dict()


def _beside(path: Path, suffix: str) -> Path:
    path = Path(path)
    return path.with_name(path.stem + suffix)
