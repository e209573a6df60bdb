"""Track calls set aside per input batch, on disk past a budget, read back in input order.

Identify and group calls are only known after the last input batch, yet they must be
sent (and written) before any track call. Keeping every track call in memory until then
would make memory grow with the input, so each batch's track calls become a run: kept
in memory while all runs together fit in ``memory_bytes``, written to an Arrow IPC file
on disk past that. At the end the runs are read back one after another, a window of
rows at a time, so memory holds one window.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

_BATCH_ROWS = 8_192

#: Runs stay in memory while they take up to this much in all.
DEFAULT_MEMORY_BYTES = 256 << 20


@dataclass(eq=False)
class _Run:
    height: int
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
    """Calls frames set aside in the order added: in memory within a budget, on disk past it."""

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

    def add(self, calls: pl.DataFrame) -> None:
        """Set aside one batch of calls (in memory while within the budget)."""
        if calls.is_empty():
            return
        self._runs.append(_Run(calls.height, frame=calls))
        self._in_memory += calls.estimated_size()
        self.rows += calls.height
        if self._in_memory > self._memory_bytes:
            for number, run in enumerate(self._runs):
                if run.frame is not None:
                    self._write(run, number)
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

    def windows(self, window_rows: int = 50_000) -> Iterator[pl.DataFrame]:
        """Every call set aside, in the order added, up to ``window_rows`` at a time."""
        for run in self._runs:
            for lo in range(0, run.height, window_rows):
                yield run.slice_rows(lo, min(lo + window_rows, run.height))

    def close(self) -> None:
        self._runs.clear()
        self._in_memory = 0
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> TrackSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
