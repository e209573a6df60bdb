"""Track calls spilled to disk per input batch, read back in event-time order.

Identify and group calls are only known after the last input batch, yet they must be
sent (and written) before any track call. Keeping every track call in memory until then
would make memory grow with the input, so each batch's track calls become a sorted run:
kept in memory while all runs together fit in ``memory_bytes``, written to an Arrow IPC
file on disk past that. At the end, the runs are merged by (event time, input order)
one window of rows at a time: memory holds the window's rows, plus two integers of sort
key per call.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

#: Sort key of track calls: event time, then input order.
SORT_KEY = ["event_time", "_row"]
_BATCH_ROWS = 8_192


#: Runs stay in memory while they take up to this much in all.
DEFAULT_MEMORY_BYTES = 256 << 20


@dataclass(eq=False)
class _Run:
    keys: pl.DataFrame  # event_time (i64 µs), _row, in run order (sorted)
    frame: pl.DataFrame | None = None  # in memory, or
    path: Path | None = None  # on disk

    def slice_rows(self, lo: int, hi: int) -> pl.DataFrame:
        """Rows ``lo:hi`` of the run, reading only the record batches that hold them."""
        if self.frame is not None:
            return self.frame.slice(lo, hi - lo)
        assert self.path is not None
        first, last = lo // _BATCH_ROWS, (hi - 1) // _BATCH_ROWS
        with pa.memory_map(str(self.path), "rb") as fh:  # batches are views, not copies
            reader = ipc.open_file(fh)
            table = pa.Table.from_batches([reader.get_batch(i) for i in range(first, last + 1)])
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame.slice(lo - first * _BATCH_ROWS, hi - lo)


class TrackSpill:
    """A sorted spill of track calls (``event_time``, ``_row`` and any other columns)."""

    def __init__(
        self, directory: str | Path | None = None, *, memory_bytes: int = DEFAULT_MEMORY_BYTES
    ) -> None:
        self._directory = directory
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runs: list[_Run] = []
        self._memory_bytes = memory_bytes
        self._in_memory = 0.0  # bytes of the runs kept in memory
        self.rows = 0

    def __repr__(self) -> str:
        on_disk = sum(run.path is not None for run in self._runs)
        return f"TrackSpill(runs={len(self._runs)}, on_disk={on_disk}, rows={self.rows})"

    def add(self, calls: pl.DataFrame, *, is_sorted: bool = False) -> None:
        """Add one batch of calls as a sorted run (in memory while within the budget).

        ``is_sorted`` says the calls are in (event time, input order) already.
        """
        if calls.is_empty():
            return
        run = calls if is_sorted else calls.sort(SORT_KEY)
        keys = run.select(pl.col("event_time").dt.epoch("us"), pl.col("_row"))
        self._runs.append(_Run(keys, frame=run))
        self._in_memory += run.estimated_size()
        self.rows += run.height
        if self._in_memory > self._memory_bytes:
            for number, memory_run in enumerate(self._runs):
                if memory_run.frame is not None:
                    self._write(memory_run, number)
            self._in_memory = 0.0

    def _write(self, run: _Run, number: int) -> None:
        """Move a run from memory to an Arrow IPC file."""
        assert run.frame is not None
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="accoil-spill-", dir=self._directory)
        path = Path(self._tmp.name) / f"run-{number:06d}.arrow"
        table = run.frame.to_arrow()
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=_BATCH_ROWS)
        run.frame, run.path = None, path

    def iter_sorted(self, window_rows: int = 50_000) -> Iterator[pl.DataFrame]:
        """All spilled calls in (event time, input order), ``window_rows`` at a time."""
        if not self._runs:
            return
        if self._in_order():
            for run in self._runs:
                for lo in range(0, run.keys.height, window_rows):
                    yield run.slice_rows(lo, min(lo + window_rows, run.keys.height))
            return
        all_keys = pl.concat([r.keys for r in self._runs]).sort(["event_time", "_row"])
        bounds = all_keys.gather_every(window_rows).rows()
        for i, lower in enumerate(bounds):
            upper = bounds[i + 1] if i + 1 < len(bounds) else None
            parts = []
            for run in self._runs:
                lo = _position(run.keys, lower)
                hi = run.keys.height if upper is None else _position(run.keys, upper)
                if hi > lo:
                    parts.append(run.slice_rows(lo, hi))
            yield pl.concat(parts).sort(SORT_KEY)

    def _in_order(self) -> bool:
        """Whether each run starts at or after the end of the run before (input in time
        order, as exports are): merging is then reading the runs one after another."""
        bounds = [(run.keys.row(0), run.keys.row(-1)) for run in self._runs]
        return all(last <= first for (_, last), (first, _) in itertools.pairwise(bounds))

    def close(self) -> None:
        self._runs.clear()
        self._in_memory = 0
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> TrackSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _position(keys: pl.DataFrame, key: tuple[int, int]) -> int:
    """How many rows of a sorted run sort before ``key`` (a lexicographic searchsorted)."""
    time, row = key
    return int(
        keys.select(
            (
                (pl.col("event_time") < time)
                | ((pl.col("event_time") == time) & (pl.col("_row") < row))
            ).sum()
        ).item()
    )
