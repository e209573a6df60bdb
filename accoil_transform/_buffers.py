"""Text as Arrow buffers: a String column's bytes without a copy per value, UTF-8 checks."""

from __future__ import annotations

import polars as pl
import pyarrow as pa


def text_buffer(texts: pl.Series) -> memoryview:
    """The values of a String column back to back, as one buffer (nulls add nothing).

    It is the data buffer of the column's Arrow form: one copy of the column, not one
    per value.
    """
    array = texts.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string
    offsets = memoryview(array.buffers()[1]).cast("q")
    data = array.buffers()[2]
    if data is None:  # every value null or empty
        return memoryview(b"")
    return memoryview(data)[offsets[array.offset] : offsets[array.offset + len(array)]]


def is_utf8(data: bytes | memoryview) -> bool:
    """Whether ``data`` is valid UTF-8 (Arrow's vectorised check, about 10 GB/s).

    The bytes are viewed as one Arrow string and validated in full, which checks their
    UTF-8; a cast would do the same but import ``pyarrow.compute`` (~40-70 ms).
    """
    nbytes = memoryview(data).nbytes
    offsets = (0).to_bytes(8, "little") + nbytes.to_bytes(8, "little")
    array = pa.Array.from_buffers(
        pa.large_string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def compacted(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its text in buffers of its own.

    A polars string column is views into shared buffers, so a few rows kept from a
    batch (a user's latest traits) keep the whole batch's text alive. State kept
    across batches is compacted, so that memory follows the state, not the input.
    """
    return pl.DataFrame(pl.from_arrow(frame.to_arrow(compat_level=pl.CompatLevel.oldest())))
