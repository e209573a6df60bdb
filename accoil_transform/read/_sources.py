"""Sources: paths, folders, globs, zips and in-memory tables, expanded into raw inputs.

Files are recognised by their content, not their names: ``PK`` is a zip (an Export
API download), ``1f 8b`` gzip (of NDJSON, CSV or a zip), ``PAR1`` Parquet; text whose
first line is a delimited header naming ``event_type`` is CSV, any other text NDJSON.
Formats that are recognised but not read (Avro, ORC, Arrow IPC, bzip2, zstd, …) are an
:class:`InputError` naming them. A zip is expanded member by member and a folder file by
file, in the export's own order (:mod:`._layout`). Nothing here reads NDJSON: a
:class:`RawInput` opens its bytes, or holds its table, when asked.

In memory: polars and pyarrow tables, pandas DataFrames (converted by pyarrow, without
importing pandas here) and any object with the Arrow PyCapsule stream interface
(``__arrow_c_stream__``: pandas >= 2.2, DuckDB relations, pyarrow datasets, polars).
"""

from __future__ import annotations

import functools
import glob
import io
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, TypeAlias

import polars as pl
import pyarrow as pa

from ..config import ReadOptions
from ..errors import InputError
from ._database import DatabaseSource
from ._layout import file_order, is_marker, member_order
from ._lines import GZIP_MAGIC, UTF8_BOM, gunzip
from ._schema import SUPPORTED_FORMATS, canonical_name


class ArrowStreamExportable(Protocol):
    """An object with the Arrow PyCapsule stream interface (pandas >= 2.2, DuckDB
    relations, pyarrow datasets, polars frames, ...)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


#: What :func:`accoil_transform.read_events` takes: a path (file, folder or glob), or a
#: table in memory: polars, pyarrow, a pandas DataFrame, or any object with the Arrow
#: PyCapsule stream interface.
Source: TypeAlias = (
    "str | os.PathLike[str] | pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatchReader"
    " | ArrowStreamExportable | DatabaseSource"
)

#: Leading bytes of formats that are recognised but not read.
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"ARROW1", "Arrow IPC (Feather) file"),
    (b"\xff\xff\xff\xff", "Arrow IPC stream"),
    (b"Obj\x01", "Avro"),
    (b"ORC", "ORC"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\xd0\xcf\x11\xe0", "Excel (.xls)"),
    (b"%PDF", "PDF"),
)
_CSV_SEPARATORS = (",", "\t", "|", ";")
#: Bytes of a file's start looked at to tell CSV from NDJSON.
_SNIFF_BYTES = 1 << 16

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
    inputs: Source | Iterable[Source],
    options: ReadOptions | None = None,
    *,
    tables: bool = True,
) -> Iterator[RawInput]:
    """Expand paths, folders, globs and in-memory tables into :class:`RawInput` units.

    With ``tables=False`` in-memory tables are passed over without being read or
    converted (a stream can be read only once).

    Raises:
        TypeError: an input is none of the kinds above; the message names its type.
        InputError: a path can't be read.
    """
    options = options or ReadOptions()
    batch_line = 1  # record batches one after another (a stream's, iterated) go on numbering
    for item in _as_list(inputs):
        if isinstance(item, pa.RecordBatch):
            if tables:
                yield RawInput("<pyarrow.RecordBatch>", pl.DataFrame(item), first_line=batch_line)
            batch_line += item.num_rows
            continue
        batch_line = 1
        if isinstance(item, str | os.PathLike):
            yield from _iter_path(str(os.fspath(item)), options)
        elif tables:
            yield from _iter_table(item, options)


def _iter_table(item: object, options: ReadOptions) -> Iterator[RawInput]:
    if isinstance(item, DatabaseSource):  # read through ADBC, a stream of record batches
        yield from _iter_batches(item.read(options), item.name)
    elif isinstance(item, pl.DataFrame | pl.LazyFrame):
        yield RawInput(f"<{type(item).__name__}>", item)
    elif isinstance(item, pa.Table):
        yield RawInput("<pyarrow.Table>", pl.DataFrame(item))
    elif _is_pandas_frame(item):
        yield RawInput("<pandas.DataFrame>", pl.DataFrame(_pandas_to_arrow(item)))
    elif isinstance(item, pa.RecordBatchReader):
        yield from _iter_batches(item, "<pyarrow.RecordBatchReader>")
    else:  # the Arrow PyCapsule stream interface (checked by _as_list)
        name = f"<{_type_name(item)}>"
        try:
            reader = pa.RecordBatchReader.from_stream(item)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise InputError(name, f"can't read its Arrow stream ({exc})") from None
        yield from _iter_batches(reader, name)


def _iter_batches(reader: pa.RecordBatchReader, name: str) -> Iterator[RawInput]:
    """A stream's record batches, rows numbered across batches from 1."""
    first_line = 1
    for batch in reader:
        if batch.num_rows or first_line == 1:
            yield RawInput(name, pl.DataFrame(batch), first_line=first_line)
        first_line += batch.num_rows


def _type_name(item: object) -> str:
    kind = type(item)
    module = kind.__module__.split(".")[0]
    return kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"


def _is_pandas_frame(item: object) -> bool:
    """Whether ``item`` is a pandas DataFrame, without importing pandas."""
    return any(
        c.__name__ == "DataFrame" and c.__module__.split(".")[0] == "pandas"
        for c in type(item).__mro__
    )


def _pandas_to_arrow(frame: object) -> pa.Table:
    """A pandas DataFrame as an Arrow table (its index left out)."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InputError("<pandas.DataFrame>", f"can't convert it to Arrow ({exc})") from None


def _is_table(item: object) -> bool:
    return (
        isinstance(
            item, pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatchReader | DatabaseSource
        )
        or _is_pandas_frame(item)
        or hasattr(type(item), "__arrow_c_stream__")
    )


_ACCEPTED = (
    "a path (str or os.PathLike: a file, folder or glob), a polars DataFrame or LazyFrame, "
    "a pyarrow Table or RecordBatchReader, a pandas DataFrame, an object with the Arrow "
    "PyCapsule stream interface (__arrow_c_stream__), a DatabaseSource, or a list of these"
)


def _as_list(inputs: Source | Iterable[Source]) -> list[Source]:
    if isinstance(inputs, str | os.PathLike) or _is_table(inputs):
        return [inputs]
    if isinstance(inputs, bytes | bytearray | Mapping) or not isinstance(inputs, Iterable):
        raise TypeError(f"can't read events from a {_type_name(inputs)}; expected {_ACCEPTED}")
    items = list(inputs)
    for item in items:
        if not (isinstance(item, str | os.PathLike) or _is_table(item)):
            raise TypeError(
                f"can't read events from a {_type_name(item)} (an item of the inputs); "
                f"expected {_ACCEPTED}"
            )
    return items


#: The input path that means standard input.
STDIN = "-"
_stdin_copy: list[Path] = []


def _stdin_file() -> Path:
    """Standard input, copied once to a temporary file (removed at exit), so that it is
    recognised and read like any file, and read again for the quarantine's lines."""
    if not _stdin_copy:
        import atexit
        import shutil
        import sys
        import tempfile

        with tempfile.NamedTemporaryFile(prefix="accoil-stdin-", delete=False) as tmp:
            path = Path(tmp.name)
            atexit.register(path.unlink, missing_ok=True)  # also if the copy is cut short
            shutil.copyfileobj(sys.stdin.buffer, tmp, 1 << 20)
        _stdin_copy.append(path)
    return _stdin_copy[0]


def _iter_path(spec: str, options: ReadOptions) -> Iterator[RawInput]:
    if spec == STDIN:
        yield from _iter_file(_stdin_file(), options, name="<stdin>")
        return
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


def _iter_file(path: Path, options: ReadOptions, name: str | None = None) -> Iterator[RawInput]:
    name = name or str(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise InputError(name, "the file is empty (0 bytes); expected Amplitude events")
    if head[:4] in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        yield from _iter_zip(path, name)
        return
    if head[:4] == PARQUET_MAGIC:
        yield from _iter_parquet(path, name, options)
        return
    _check_supported(head, name)
    text = _gunzipped_head(path, name) if head.startswith(GZIP_MAGIC) else head
    if head.startswith(GZIP_MAGIC):
        if text.startswith(ZIP_MAGIC):  # an Export API download saved as .json.gz
            with path.open("rb") as fh:
                data = b"".join(gunzip(fh, name))
            yield from _iter_zip_bytes(data, name)
            return
        _check_supported(text, f"{name} (inside gzip)")
    else:
        with path.open("rb") as fh:
            text = fh.read(_SNIFF_BYTES)
    separator = csv_separator(text)
    if separator is not None:
        yield from _iter_csv(path, name, separator, options)
    else:
        yield RawInput(name, functools.partial(_open_binary, path))


def _check_supported(head: bytes, name: str) -> None:
    """An :class:`InputError` for a format that is recognised but not read."""
    found = next((what for magic, what in _UNSUPPORTED_MAGIC if head.startswith(magic)), None)
    if found is None and head[8:12] == b"DUCK":
        found = "DuckDB database"
    if found is not None:
        raise InputError(
            name, f"{found} is not a supported input format; supported: {SUPPORTED_FORMATS}"
        )


def csv_separator(head: bytes) -> str | None:
    """The separator of delimited text whose first line is a header naming
    ``event_type`` (in any case, quoted or not), or None (NDJSON, or other text)."""
    text = head.removeprefix(UTF8_BOM).lstrip()
    if not text or text[:1] in (b"{", b"["):
        return None
    first = text.split(b"\n", 1)[0].removesuffix(b"\r").decode("utf-8", errors="replace")
    for separator in _CSV_SEPARATORS:
        if separator in first:
            names = {canonical_name(n.strip().strip('"').strip()) for n in first.split(separator)}
            if "event_type" in names:
                return separator
    return None


def _iter_csv(path: Path, name: str, separator: str, options: ReadOptions) -> Iterator[RawInput]:
    """A CSV file (plain or gzip), every column as text, in slices of about
    ``chunk_bytes`` (at ``table_row_bytes`` a row). Each row is numbered by its record
    in the file, the header being 1 (the line, when no field holds a line break)."""
    try:
        table = pl.read_csv(
            path,
            separator=separator,
            infer_schema=False,
            encoding="utf8",
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(name, f"not a readable CSV file ({exc})") from None
    step = max(1, options.chunk_bytes // options.table_row_bytes)
    for start in range(0, max(table.height, 1), step):
        yield RawInput(name, table.slice(start, step), first_line=start + 2)


def _gunzipped_head(path: Path, name: str) -> bytes:
    """The first (up to :data:`_SNIFF_BYTES`) bytes inside a gzip file."""
    out = b""
    with path.open("rb") as fh:
        try:
            for piece in gunzip(fh, name, piece_bytes=_SNIFF_BYTES):
                out += piece
                if len(out) >= _SNIFF_BYTES:
                    break
        except InputError:  # corrupt or truncated: reading says so, with what it can read
            pass
    return out


def _open_binary(path: Path) -> IO[bytes]:
    return path.open("rb")


def _iter_parquet(path: Path, name: str, options: ReadOptions) -> Iterator[RawInput]:
    """A Parquet file in slices of whole row groups of about ``chunk_bytes`` (at
    ``table_row_bytes`` a row) each, so that a large file is not read whole and no row
    group is decoded twice; small slices are gathered again."""
    try:
        table = pl.scan_parquet(path)
        table.collect_schema()
        import pyarrow.parquet as pq  # only for Parquet inputs (it pulls in pyarrow.fs)

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


def _iter_zip(path: Path, name: str) -> Iterator[RawInput]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise InputError(name, f"not a readable zip file ({exc})") from None
    with zf:
        yield from _iter_zip_members(zf, name)


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
