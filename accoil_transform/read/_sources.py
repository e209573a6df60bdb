"""Sources: paths, folders, globs, zips and in-memory tables, expanded into raw inputs.

Files are recognised by their magic bytes, not their names: ``PK`` is a zip (an Export
API download), ``1f 8b`` gzip, ``PAR1`` Parquet, anything else NDJSON text. A zip is
expanded member by member and a folder file by file, in the export's own order
(:mod:`._layout`). Nothing here reads events: a :class:`RawInput` opens its bytes, or
holds its table, when asked.
"""

from __future__ import annotations

import functools
import glob
import io
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeAlias

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..config import ReadOptions
from ..errors import InputError
from ._layout import file_order, is_marker, member_order
from ._lines import GZIP_MAGIC, gunzip

#: What :func:`accoil_transform.read_events` takes: a path (file, folder or glob), or a
#: table in memory.
Source: TypeAlias = (
    "str | os.PathLike[str] | pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatchReader"
)

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True, slots=True)
class RawInput:
    """One unit of input before parsing: NDJSON bytes or a table, named for errors.

    ``data`` is a table, or a function that opens the (maybe gzip) NDJSON bytes as a
    binary file. ``first_line`` numbers a table's first row in its source (a slice of
    a large Parquet file starts further on).
    """

    name: str
    data: Callable[[], IO[bytes]] | pl.DataFrame | pl.LazyFrame
    first_line: int = 1


def iter_raw_inputs(
    inputs: Source | Iterable[Source], options: ReadOptions | None = None
) -> Iterator[RawInput]:
    """Expand paths, folders, globs and in-memory tables into :class:`RawInput` units."""
    options = options or ReadOptions()
    for item in _as_list(inputs):
        if isinstance(item, pl.DataFrame | pl.LazyFrame):
            yield RawInput(f"<{type(item).__name__}>", item)
        elif isinstance(item, pa.Table):
            yield RawInput("<pyarrow.Table>", pl.DataFrame(item))
        elif isinstance(item, pa.RecordBatchReader):
            for i, batch in enumerate(item):
                yield RawInput(f"<RecordBatchReader batch {i}>", pl.DataFrame(batch))
        else:
            yield from _iter_path(str(os.fspath(item)), options)


def _as_list(inputs: Source | Iterable[Source]) -> list[Source]:
    if isinstance(
        inputs, str | os.PathLike | pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatchReader
    ):
        return [inputs]
    return list(inputs)


def _iter_path(spec: str, options: ReadOptions) -> Iterator[RawInput]:
    path = Path(spec)
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*") if p.is_file() and not _skippable(p)), key=file_order
        )
        if not files:
            raise InputError(spec, "folder holds no event files")
        for f in files:
            yield from _iter_file(f, options)
    elif path.is_file():
        yield from _iter_file(path, options)
    elif glob.has_magic(spec):
        matches = (Path(m) for m in glob.glob(spec, recursive=True))
        files = sorted((m for m in matches if m.is_file() and not _skippable(m)), key=file_order)
        if not files:
            raise InputError(spec, "no file matches this pattern")
        for f in files:
            yield from _iter_file(f, options)
    else:
        raise InputError(spec, "no such file or folder")


def _skippable(path: Path) -> bool:
    """Hidden files, empty files and the marker files of the S3/GCS export layout."""
    return is_marker(path.name) or path.stat().st_size == 0


def _iter_file(path: Path, options: ReadOptions) -> Iterator[RawInput]:
    name = str(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise InputError(name, "the file is empty (0 bytes); expected Amplitude events")
    if head in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        yield from _iter_zip(path)
    elif head.startswith(GZIP_MAGIC) and _gzip_wraps_zip(path, name):
        with path.open("rb") as fh:
            data = b"".join(gunzip(fh, name))
        yield from _iter_zip_bytes(data, name)
    elif head == PARQUET_MAGIC:
        yield from _iter_parquet(path, name, options)
    else:
        yield RawInput(name, functools.partial(_open_binary, path))


def _open_binary(path: Path) -> IO[bytes]:
    return path.open("rb")


def _iter_parquet(path: Path, name: str, options: ReadOptions) -> Iterator[RawInput]:
    """A Parquet file in slices of whole row groups of about ``chunk_bytes`` (at
    ``table_row_bytes`` a row) each, so that a large file is not read whole and no row
    group is decoded twice; small slices are gathered again."""
    try:
        table = pl.scan_parquet(path)
        table.collect_schema()
        meta = pq.ParquetFile(path).metadata
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        raise InputError(name, f"not a readable Parquet file ({exc})") from None
    step = max(1, options.chunk_bytes // options.table_row_bytes)
    if meta.num_rows <= step:
        yield RawInput(name, table)
        return
    start = end = 0
    for i in range(meta.num_row_groups):
        end += meta.row_group(i).num_rows
        if end - start >= step or i == meta.num_row_groups - 1:
            yield RawInput(name, table.slice(start, end - start), first_line=start + 1)
            start = end


def _gzip_wraps_zip(path: Path, name: str) -> bool:
    """Whether a gzip file holds a zip (an Export API download saved as ``.json.gz``)."""
    with path.open("rb") as fh:
        first = next(gunzip(fh, name, piece_bytes=4), b"")
    return first.startswith(ZIP_MAGIC)


def _iter_zip(path: Path) -> Iterator[RawInput]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputError(str(path), f"not a readable zip file ({exc})") from None
    with zf:
        yield from _iter_zip_members(zf, str(path))


def _iter_zip_bytes(data: bytes, name: str) -> Iterator[RawInput]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InputError(name, f"not a readable zip file ({exc})") from None
    with zf:
        yield from _iter_zip_members(zf, name)


def _iter_zip_members(zf: zipfile.ZipFile, name: str) -> Iterator[RawInput]:
    members = [
        i
        for i in zf.infolist()
        if not i.is_dir() and not is_marker(i.filename) and not i.filename.startswith("__MACOSX/")
    ]
    if not members:
        raise InputError(
            name,
            "zip has no event members (expected <project>/<project>_<yyyy-mm-dd>_<H>#<n>.json.gz)",
        )
    for info in sorted(members, key=lambda i: member_order(i.filename)):
        yield RawInput(f"{name}!{info.filename}", functools.partial(zf.open, info))
