"""Readers: every input kind of SPEC §1 in, canonical event frames out, one batch at a time.

Files are recognised by their magic bytes, not their names: ``PK`` is a zip (an Export
API download), ``1f 8b`` gzip, ``PAR1`` Parquet, anything else NDJSON text. A zip is
read member by member and a folder file by file, and NDJSON text (plain or gzip) is
streamed in pieces of :data:`READ_BYTES` and transformed in chunks of about
:data:`CHUNK_BYTES`, so memory is bounded by a chunk, not by a member or the whole input.
"""

from __future__ import annotations

import functools
import glob
import io
import itertools
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeAlias

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip, isal_zlib

from .config import TransformConfig
from .errors import InputError
from .ndjson import UTF8_BOM, DecodedLines, Span, decode_lines
from .normalize import normalize_frame
from .prefetch import prefetched
from .schema import JSON_COLUMNS, ndjson_read_schema
from .transform import json_columns_needed

Source: TypeAlias = (
    "str | os.PathLike[str] | pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatchReader"
)

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"

#: ``<proj>/<proj>_<yyyy-mm-dd>_<H>#<n>.json.gz``: H is not zero-padded, n is not dense.
EXPORT_MEMBER = re.compile(r"(?:^|/)(\d+)_(\d{4}-\d{2}-\d{2})_(\d{1,2})#(\d+)\.json(?:\.gz)?$")
_MARKER_NAMES = {"complete", "_success", ".complete"}


#: Events are transformed in chunks of about this many bytes of NDJSON text (small
#: sources gathered, large tables sliced to about that size).
CHUNK_BYTES = 128 << 20
#: A Parquet file is read in slices of whole row groups of at least :data:`CHUNK_BYTES` ÷
#: this many rows: about the size of an exported event, whose JSON columns make most of
#: a canonical row.
TABLE_ROW_BYTES = 2048
#: A chunk is read or inflated in pieces of at most this many bytes. glibc maps every
#: block over 32 MB afresh, and each page of a fresh mapping faults on its first write
#: (that was 40 % of the inflate time with 128 MB pieces); smaller blocks come from its
#: heap and are used again.
READ_BYTES = 16 << 20
#: Pieces the inflate thread makes ahead of the decode thread (the other stages make one
#: chunk ahead). Two keep the decode thread fed; with one, the last chunk reached the
#: transform 0.04 s later.
INFLATE_AHEAD = 2


@dataclass(frozen=True, slots=True)
class RawInput:
    """One unit of input before parsing: NDJSON bytes or a table, named for errors.

    ``data`` is a table, or a function that opens the (maybe gzip) NDJSON bytes as a
    binary file; :func:`iter_line_chunks` streams it. ``first_line`` numbers a table's
    first row in its source (a slice of a large Parquet file starts further on).
    """

    name: str
    data: Callable[[], BinaryIO] | pl.DataFrame | pl.LazyFrame
    first_line: int = 1


@dataclass(frozen=True, slots=True)
class LineChunk:
    """Whole lines of one NDJSON source, as spans of decompressed buffers.

    ``index`` counts the chunks of the source from 0; line numbers continue from one
    chunk to the next.
    """

    source: str
    index: int
    spans: tuple[Span, ...]

    @property
    def nbytes(self) -> int:
        """The bytes of text in the chunk."""
        return sum(end - start for _, start, end in self.spans)


# --------------------------------------------------------------------------- expansion


def iter_raw_inputs(inputs: Source | Iterable[Source]) -> Iterator[RawInput]:
    """Expand paths, folders, globs and in-memory tables into :class:`RawInput` units."""
    for item in _as_list(inputs):
        if isinstance(item, pl.DataFrame | pl.LazyFrame):
            yield RawInput(f"<{type(item).__name__}>", item)
        elif isinstance(item, pa.Table):
            yield RawInput("<pyarrow.Table>", pl.from_arrow(item))  # type: ignore[arg-type]
        elif isinstance(item, pa.RecordBatchReader):
            for i, batch in enumerate(item):
                yield RawInput(f"<RecordBatchReader batch {i}>", pl.from_arrow(batch))  # type: ignore[arg-type]
        else:
            yield from _iter_path(str(os.fspath(item)))


def _as_list(inputs: Source | Iterable[Source]) -> list[Source]:
    if isinstance(
        inputs, str | os.PathLike | pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatchReader
    ):
        return [inputs]
    return list(inputs)


def _iter_path(spec: str) -> Iterator[RawInput]:
    path = Path(spec)
    if path.is_dir():
        files = sorted(
            (p for p in path.rglob("*") if p.is_file() and not _skippable(p)), key=_file_order
        )
        if not files:
            raise InputError(spec, "folder holds no event files")
        for f in files:
            yield from _iter_file(f)
    elif path.is_file():
        yield from _iter_file(path)
    elif glob.has_magic(spec):
        matches = (Path(m) for m in glob.glob(spec, recursive=True))
        files = sorted((m for m in matches if m.is_file() and not _skippable(m)), key=_file_order)
        if not files:
            raise InputError(spec, "no file matches this pattern")
        for f in files:
            yield from _iter_file(f)
    else:
        raise InputError(spec, "no such file or folder")


def _file_order(path: Path) -> tuple:
    """Folder order: by directory, then as Export API members (date, hour, n), then name."""
    return (str(path.parent), _member_order(path.name))


def _skippable(path: Path) -> bool:
    """Hidden files, empty files and 'complete' markers of the S3/GCS export layout."""
    name = path.name.lower()
    return name.startswith(".") or name in _MARKER_NAMES or path.stat().st_size == 0


def _iter_file(path: Path) -> Iterator[RawInput]:
    name = str(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head in (ZIP_MAGIC, EMPTY_ZIP_MAGIC):
        yield from _iter_zip(path)
    elif head.startswith(GZIP_MAGIC) and _gzip_wraps_zip(path, name):
        with path.open("rb") as fh:
            data = b"".join(_gunzip(fh, name))
        yield from _iter_zip_bytes(data, name)
    elif head == PARQUET_MAGIC:
        yield from _iter_parquet(path, name)
    else:
        yield RawInput(name, functools.partial(open, path, "rb"))


def _iter_parquet(path: Path, name: str) -> Iterator[RawInput]:
    """A Parquet file in slices of whole row groups, about :data:`CHUNK_BYTES` (at
    :data:`TABLE_ROW_BYTES` a row) each, so that a large file is not read whole and no
    row group is decoded twice; small slices are gathered again."""
    try:
        table = pl.scan_parquet(path)
        table.collect_schema()
        meta = pq.ParquetFile(path).metadata
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        raise InputError(name, f"not a readable Parquet file ({exc})") from None
    step = max(1, CHUNK_BYTES // TABLE_ROW_BYTES)
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
        first = next(_gunzip(fh, name, piece_bytes=4), b"")
    return first.startswith(ZIP_MAGIC)


def _member_order(name: str) -> tuple:
    m = EXPORT_MEMBER.search(name)
    if m:
        return (0, m.group(2), int(m.group(3)), int(m.group(4)), name)
    return (1, "", 0, 0, name)


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
    members = [i for i in zf.infolist() if not i.is_dir() and not _skippable_member(i.filename)]
    if not members:
        raise InputError(
            name,
            "zip has no event members (expected <project>/<project>_<yyyy-mm-dd>_<H>#<n>.json.gz)",
        )
    for info in sorted(members, key=lambda i: _member_order(i.filename)):
        yield RawInput(f"{name}!{info.filename}", functools.partial(zf.open, info))


def _skippable_member(filename: str) -> bool:
    base = filename.rsplit("/", 1)[-1].lower()
    return base.startswith(".") or base in _MARKER_NAMES or filename.startswith("__MACOSX/")


# --------------------------------------------------------------------------- streaming


def _read_pieces(fh: BinaryIO, sizes: Iterator[int]) -> Iterator[bytes]:
    """The bytes of a binary file, in pieces of the next of ``sizes`` each."""
    while piece := fh.read(next(sizes)):
        yield piece


def _gunzip(
    fh: BinaryIO, source: str, *, piece_bytes: int | Iterator[int] = READ_BYTES
) -> Iterator[bytes]:
    """Decompress a gzip file (every member; NUL padding between them is skipped) in
    pieces of ``piece_bytes``.

    ISA-L inflates about three times faster than zlib and releases the GIL.
    """
    sizes = itertools.repeat(piece_bytes) if isinstance(piece_bytes, int) else piece_bytes
    try:
        with igzip.GzipFile(fileobj=fh) as gz:
            yield from _read_pieces(gz, sizes)  # type: ignore[arg-type]
    except EOFError:
        raise InputError(
            source, "truncated gzip: the compressed stream ends before its end marker"
        ) from None
    except (igzip.BadGzipFile, isal_zlib.error) as exc:
        raise InputError(source, f"corrupt gzip data ({exc})") from None


def _ramp(size: int, small_first: bool) -> Iterator[int]:
    """``size`` for ever; with ``small_first``, 1/16 of it first, so that the stages
    after reading start early."""
    if small_first:
        yield max(size // 16, 1)
    yield from itertools.repeat(size)


def _text_pieces(raw: RawInput, sizes: Iterator[int]) -> Iterator[bytes]:
    """The NDJSON text of ``raw`` (decompressed when it is gzip), in pieces of ``sizes``.

    A read error (a corrupt zip member, a failing disk) names the input.
    """
    assert callable(raw.data)
    try:
        with raw.data() as fh:
            buffered = fh if hasattr(fh, "peek") else io.BufferedReader(fh)
            if buffered.peek(2)[:2] == GZIP_MAGIC:
                yield from _gunzip(buffered, raw.name, piece_bytes=sizes)
            else:
                yield from _read_pieces(buffered, sizes)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InputError(raw.name, f"zip member is corrupt ({exc})") from None
    except OSError as exc:
        raise InputError(raw.name, f"could not be read ({exc})") from None


def iter_line_chunks(
    raw: RawInput, chunk_bytes: int = CHUNK_BYTES, *, small_first: bool = False
) -> Iterator[LineChunk]:
    """Stream the NDJSON text of ``raw`` (gzip or plain) as chunks of whole lines.

    A chunk is about ``chunk_bytes`` of text in pieces of at most :data:`READ_BYTES`. A
    line cut by a piece boundary is put back together (the only copy made). With
    ``small_first`` the first chunk is 1/16 of the size, so that the stages after this
    one start sooner.
    """
    source = raw.name
    targets = _ramp(chunk_bytes, small_first)
    target, size, index = next(targets), 0, 0
    spans: list[Span] = []
    carry = b""
    reads = (min(n, READ_BYTES) for n in _ramp(chunk_bytes, small_first))
    for piece in _text_pieces(raw, reads):
        cut = piece.rfind(b"\n") + 1
        if cut == 0:  # no line ends in this piece
            carry += piece
            continue
        start = 0
        if carry:
            start = piece.find(b"\n") + 1
            joined = carry + piece[:start]
            spans.append((joined, 0, len(joined)))
            size += len(joined)
        if cut > start:
            spans.append((piece, start, cut))
            size += cut - start
        carry = piece[cut:]
        if size + len(carry) >= target:  # the carry: a line cut by the piece's end
            yield LineChunk(source, index, tuple(spans))
            target, size, index, spans = next(targets), 0, index + 1, []
    if carry:
        spans.append((carry, 0, len(carry)))
    if spans or index == 0:
        yield LineChunk(source, index, tuple(spans) or ((b"", 0, 0),))


def first_keys(data: bytes, lines: int = 20) -> list[str]:
    """The keys of the first JSON object among the first ``lines`` lines (for column spellings)."""
    start = 0
    for _ in range(lines):
        end = data.find(b"\n", start)
        line = data[start:] if end < 0 else data[start:end]
        try:
            value = orjson.loads(line.removeprefix(UTF8_BOM))
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return list(value)
        if end < 0:
            break
        start = end + 1
    return []


# --------------------------------------------------------------------------- canonical


def read_events(
    inputs: Source | Iterable[Source],
    config: TransformConfig | None = None,
    *,
    only_needed: bool = False,
) -> Iterator[pl.DataFrame]:
    """Read any inputs and yield canonical event frames, a chunk at a time.

    A chunk is about :data:`CHUNK_BYTES` of NDJSON text (small files and zip members
    gathered), or a slice of a table, or small tables gathered to about that size; each
    row keeps its source (``_source``) and line. Rows are numbered in input order across
    all inputs (the ``_row`` column).

    Reading is a pipeline of three threads: one decompresses NDJSON a piece (16 MB) at
    a time, one decodes the pieces with msgspec (the only step that holds the GIL) and
    gathers them into chunks, one makes polars columns of each chunk and normalises
    them, while the caller transforms the chunk before. Each thread makes one item
    ahead of the next stage (the inflate thread two: its pieces are small), so no more
    than about three chunks are alive at once. With ``only_needed``, nested JSON columns
    that ``config`` doesn't use are not read from NDJSON (they are null), which makes
    reading faster.
    """
    config = config or TransformConfig()
    wanted = json_columns_needed(config) if only_needed else set(JSON_COLUMNS)
    units = prefetched(_stream(iter_raw_inputs(inputs)), depth=INFLATE_AHEAD, name="accoil-inflate")
    decoded = prefetched(_decode(units, config, wanted), name="accoil-decode")
    return prefetched(_canonical(decoded, config), name="accoil-columns")


def _stream(raws: Iterator[RawInput]) -> Iterator[LineChunk | RawInput]:
    """NDJSON inputs as pieces of lines; tables as they are.

    The pieces are small, so that little text waits between threads (memory that is
    touched afresh costs a page fault a page); :func:`_decode` gathers them into chunks.
    """
    for i, raw in enumerate(raws):
        if callable(raw.data):
            yield from iter_line_chunks(raw, min(READ_BYTES, CHUNK_BYTES), small_first=i == 0)
        else:
            yield raw


def _decode(
    units: Iterator[LineChunk | RawInput], config: TransformConfig, wanted: set[str]
) -> Iterator[DecodedLines | RawInput]:
    """Decode each piece's lines (the GIL-bound step, in a thread of its own), gathered
    into chunks of about :data:`CHUNK_BYTES` of text: a chunk costs polars a fixed
    overhead, so small files and zip members (an hour of events each) are gathered
    too, as long as their keys are spelled alike. The first piece goes on alone and the
    next chunk is a quarter size, so that the later stages start early."""
    uid = config.user_id_ref
    uid_column = uid.name if uid.scope == "column" else None
    keys: list[str] = []
    next_line = 1
    targets = itertools.chain([1, CHUNK_BYTES // 4], itertools.repeat(CHUNK_BYTES))
    chunk: DecodedLines | None = None
    size = 0
    for unit in units:
        if isinstance(unit, RawInput):
            if chunk is not None:
                yield chunk
                chunk = None
            yield unit
            continue
        if unit.index == 0:  # a new file or member: its own key spellings
            first = first_keys(unit.spans[0][0])
            keys = sorted(ndjson_read_schema(uid_column, first, json_columns=wanted))
            next_line = 1
        decoded = decode_lines(unit.spans, unit.source, keys, first_line=next_line)
        next_line = decoded.next_line
        if chunk is not None and chunk.keys != decoded.keys:
            yield chunk
            chunk = None
        if chunk is None:
            chunk, size, target = decoded, 0, next(targets)
        else:
            chunk.extend(decoded)
        size += unit.nbytes
        if size >= target:
            yield chunk
            chunk = None
    if chunk is not None:
        yield chunk


def _named(sources: list[str]) -> str:
    """The source named in errors: the one, or the range of sources a chunk holds."""
    return sources[0] if len(sources) == 1 else f"{sources[0]} … {sources[-1]}"


def _canonical(
    units: Iterator[DecodedLines | RawInput], config: TransformConfig
) -> Iterator[pl.DataFrame]:
    """Canonical frames: one per decoded chunk; small tables (a warehouse extract's many
    Parquet files) gathered up to about :data:`CHUNK_BYTES`, as the transform costs a
    fixed overhead per frame."""
    next_row = 0
    tables: list[pl.DataFrame] = []
    for unit in units:
        if isinstance(unit, DecodedLines):
            if tables:
                yield pl.concat(tables)
                tables = []
            parsed = unit.to_frame()
            frame = normalize_frame(
                parsed.drop("_line", "_source", strict=False),
                config,
                source=_named(unit.sources),
                first_row=next_row,
                lines=parsed["_line"],
                sources=parsed["_source"] if "_source" in parsed.columns else None,
            )
            next_row += frame.height
            yield frame
            continue
        assert not callable(unit.data)
        frame = normalize_frame(
            unit.data, config, source=unit.name, first_row=next_row, first_line=unit.first_line
        )
        next_row += frame.height
        tables.append(frame)
        if sum(t.estimated_size() for t in tables) >= CHUNK_BYTES:
            yield pl.concat(tables)
            tables = []
    if tables:
        yield pl.concat(tables)
