"""The main job: read → transform → calls → write (dry run) or deliver.

This is the only module that ties reading, the rules, call encoding, delivery and the
output files together; each of those is usable and testable alone.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from .._destination import Destination
from ..calls import (
    CallBatch,
    get_format,
    group_calls,
    identify_calls,
    iter_batches,
    skipped_account_groups,
    track_calls,
)
from ..config import DEFAULT_OUT, ReadOptions, RunOptions, TransformConfig
from ..errors import DeliveryError, InputError, Interrupted
from ..read import CANONICAL_SCHEMA, Source, read_events, with_original_lines
from ..rules import Transformer, TransformReport, TransformResult, apply_rules
from ._output import is_stdout, write_dry_run, write_quarantine, write_report
from ._spill import TrackSpill

if TYPE_CHECKING:  # delivery pulls in an HTTP client; dry runs never need it
    from tqdm import tqdm

    from ..delivery import DeliveryReport, Ledger


@dataclass(frozen=True)
class RunResult:
    """What a run did: where the rows went, the calls made, and what was written or sent.

    ``report`` is the transform's :class:`~accoil_transform.rules.TransformReport` (its
    ``calls`` counts the calls of the run's format); ``delivery`` is ``None`` for a dry
    run; ``outputs`` names each file written (``calls``, ``quarantine``, ``report``,
    ``dead_letter``, ``ledger``).
    """

    report: TransformReport
    format: str
    dry_run: bool
    delivery: DeliveryReport | None = None
    outputs: Mapping[str, Path] = field(default_factory=dict)
    duration_s: float = 0.0
    interrupted: str | None = None
    """The signal that stopped the run (``SIGINT``, ``SIGTERM``), if one did."""
    warnings: tuple[str, ...] = ()
    """Things the run did that a person should know (e.g. a filter that matched nothing)."""

    @property
    def failed(self) -> int:
        """Calls that finally failed in delivery (0 for a dry run)."""
        if self.delivery is None:
            return 0
        return sum(stats.failed for stats in self.delivery.endpoints.values())

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (what ``--report`` writes)."""
        out = self.report.to_dict()
        out["format"] = self.format
        out["dry_run"] = self.dry_run
        if self.delivery is not None:
            out["delivery"] = self.delivery.to_dict()
        out["outputs"] = {name: str(path) for name, path in self.outputs.items()}
        out["duration_s"] = round(self.duration_s, 3)
        if self.interrupted:
            out["interrupted"] = self.interrupted
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def _is_canonical(item: object) -> bool:
    return isinstance(item, pl.DataFrame) and item.schema == pl.Schema(CANONICAL_SCHEMA)


def transform(
    inputs: Source | Iterable[Source] | Iterable[pl.DataFrame],
    config: TransformConfig | None = None,
    *,
    strict: bool = False,
    keep_columns: list[str] | None = None,
) -> TransformResult:
    """Apply the rules to ``inputs`` and return every output frame.

    ``inputs`` is anything :func:`read_events` reads (paths, folders, globs, tables), or
    the canonical frames it yields (one frame, a list, or the iterator itself); inputs
    are read and transformed a chunk at a time. ``keep_columns`` limits the track columns
    kept between chunks (all by default).

    Raises:
        InputError: an input can't be read, or (``strict``) a row is malformed.
    """
    config = config or TransformConfig()
    if isinstance(inputs, Iterator):  # look at the first item, then put it back
        first = next(inputs, None)
        inputs = [] if first is None else itertools.chain([first], inputs)
        if first is None or _is_canonical(first):
            return apply_rules(inputs, config, strict=strict, keep_columns=keep_columns)  # type: ignore[arg-type]
    elif _is_canonical(inputs) or (
        isinstance(inputs, list | tuple) and inputs and all(map(_is_canonical, inputs))
    ):
        return apply_rules(inputs, config, strict=strict, keep_columns=keep_columns)  # type: ignore[arg-type]
    events = read_events(inputs, config, only_needed=True)
    result = apply_rules(events, config, strict=strict, keep_columns=keep_columns)
    _check_something_read(result.report, result.quarantine)
    return replace(result, quarantine=_originals(result.quarantine, inputs, ReadOptions()))


def _check_something_read(report: TransformReport, quarantine: pl.DataFrame) -> None:
    """Reading that found nothing to work on is an error, never a quiet success."""
    if report.rows_read == 0:
        raise InputError("the input", "holds no events (no lines or rows were read)")
    if report.dropped.get("malformed", 0) == report.rows_read:
        first = quarantine.row(0, named=True)
        raise InputError(
            first["source"],
            f"every row ({report.rows_read:,}) is malformed; the first: {first['reason']}",
            line=first["line"],
        )


def run(
    inputs: Source | Iterable[Source],
    config: TransformConfig | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run the whole job: read, transform, then write a dry run or deliver.

    Memory is bounded by an input chunk. The identify and group calls go first, then
    the track calls in input order. A dry run writes each chunk's track calls as it is
    transformed (beside the output until the identify and group calls are known); a
    delivery sets them aside (on disk past a budget) until then.

    Raises:
        InputError: an input can't be read.
        DeliveryError: delivery could not go on (e.g. the key was refused); its
            ``report`` holds what was done.
    """
    config = config or TransformConfig()
    options = options or RunOptions()
    wire = get_format(options.format)
    started = time.perf_counter()
    destination = Destination.resolve(options.api_key, options.base_url)  # checks the key
    ledger = _open_ledger(options, destination)  # a second run on it stops here, at once
    # A format of track calls only needs no user or account state.
    t = Transformer(config, strict=options.strict, identify_and_group=wire.kinds != ("track",))
    outputs: dict[str, Path] = {}

    def result(delivery: DeliveryReport | None = None, stopped: str | None = None) -> RunResult:
        if options.report:
            outputs["report"] = options.report
        if delivery is not None:
            dead_letter = options.delivery.dead_letter_path
            if dead_letter is not None and delivery.total.dead_lettered:
                outputs["dead_letter"] = Path(dead_letter)
            if ledger is not None:
                outputs["ledger"] = Path(ledger.path)
        done = RunResult(
            report=t.report,
            format=wire.name,
            dry_run=options.is_dry_run,
            delivery=delivery,
            outputs=outputs,
            duration_s=time.perf_counter() - started,
            interrupted=stopped,
            warnings=tuple(
                f"event type {name!r} of the include or exclude list matched no row"
                for name in t.unmatched_event_types()
            ),
        )
        if options.report:
            write_report(done.to_dict(), options.report)
        return done

    def track_chunks() -> Iterator[pl.DataFrame]:
        """Each input chunk's track calls, as it is transformed; then the end-of-input checks."""
        tracks = 0
        with _progress(options.delivery.progress) as bar:
            needed = t.json_columns_needed()
            for frame in read_events(inputs, config, only_needed=needed, options=options.read):
                calls = track_calls(t.feed(frame), wire)
                tracks += calls.height
                yield calls
                bar.update(frame.height)
        identifies, groups = t.finish()
        _check_something_read(t.report, t.quarantine)
        head.append(pl.concat([identify_calls(identifies, wire), group_calls(groups, wire)]))
        counts = dict(head[0].group_by("kind").len().iter_rows()) | {"track": tracks}
        t.report.calls = {kind: counts.get(kind, 0) for kind in wire.kinds}
        t.report.skipped["account_group_calls"] = skipped_account_groups(groups, wire)
        if not t.quarantine.is_empty():
            beside = DEFAULT_OUT if is_stdout(options.out) else options.out
            target = options.quarantine or _beside(beside, ".quarantine.ndjson")
            quarantine = _originals(t.quarantine, inputs, options.read)
            outputs["quarantine"] = write_quarantine(quarantine, target)

    head: list[pl.DataFrame] = []  # the identify and group calls, once the input is read
    try:
        if options.is_dry_run:  # track calls are written as they are made
            outputs["calls"] = write_dry_run(
                track_chunks(),
                options.out,
                wire,
                base_url=destination.base_url,
                url=options.url,
                first=None if wire.kinds == ("track",) else lambda: head[0],
            )
            return result()
        with TrackSpill() as spill:
            for chunk in track_chunks():
                spill.add(chunk)
            calls = itertools.chain(head, spill.windows())
            batches = iter_batches(
                calls,
                wire,
                base_url=destination.base_url,
                url=options.url,
                batch_size=options.batch_size,
            )
            return result(
                _deliver(batches, sum(t.report.calls.values()), options, destination, ledger)
            )
    except DeliveryError as exc:  # the report says how far the run got, and why it stopped
        signal = exc.signal if isinstance(exc, Interrupted) else None
        result(exc.report, signal)
        raise
    except KeyboardInterrupt as exc:  # a signal before any call was sent
        result(stopped=getattr(exc, "signal_name", "SIGINT"))
        raise
    finally:
        if ledger is not None:
            ledger.close()


def _progress(show: bool) -> tqdm:
    """A bar of the rows transformed, on stderr if it is a terminal."""
    from tqdm import tqdm

    return tqdm(
        desc="transform",
        unit=" rows",
        unit_scale=True,
        leave=False,
        disable=not (show and sys.stderr.isatty()),
    )


def _open_ledger(options: RunOptions, destination: Destination) -> Ledger | None:
    if options.is_dry_run or options.delivery.ledger_path is None:
        return None
    from ..delivery import Ledger

    return Ledger(options.delivery.ledger_path, destination.id)


def _deliver(
    batches: Iterable[CallBatch],
    total: int,
    options: RunOptions,
    destination: Destination,
    ledger: Ledger | None,
) -> DeliveryReport:
    from ..delivery import send

    return send(
        batches,
        auth=get_format(options.format).auth,
        options=options.delivery,
        total=total,
        destination=destination,
        ledger=ledger,
    )


def _originals(quarantine: pl.DataFrame, inputs: object, options: ReadOptions) -> pl.DataFrame:
    """The quarantine with each line's original text, read again from its source when the
    inputs can be read again (not an iterator, which reading used up)."""
    if quarantine.is_empty() or isinstance(inputs, Iterator):
        return quarantine
    return with_original_lines(quarantine, inputs, options)


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.stem + suffix)
