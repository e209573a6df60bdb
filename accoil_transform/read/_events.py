"""``read_events``: any inputs in, canonical event frames out, a chunk at a time.

Reading is a pipeline of three threads: one inflates NDJSON a piece at a time, one
decodes the pieces with msgspec (the only step that holds the GIL) and gathers them into
chunks, one makes polars columns of each chunk and normalises them, while the caller
transforms the chunk before. Each thread makes one item ahead of the next stage (the
inflate thread ``inflate_ahead``: its pieces are small), so no more than about three
chunks are alive at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator

import polars as pl

from .._prefetch import prefetched
from ..config import JSON_COLUMNS, ReadOptions, TransformConfig
from ..errors import InputError
from ._lines import LineChunk, first_keys, iter_line_chunks
from ._ndjson import PRESENT_COLUMN, DecodedLines, decode_lines
from ._normalize import normalize_frame
from ._schema import canonical_name, ndjson_read_schema
from ._sources import RawInput, Source, iter_raw_inputs


def read_events(
    inputs: Source | Iterable[Source],
    config: TransformConfig | None = None,
    *,
    only_needed: bool | Collection[str] = False,
    options: ReadOptions | None = None,
) -> Iterator[pl.DataFrame]:
    """Read any inputs and yield canonical event frames, a chunk at a time.

    ``inputs`` are paths (Export API zips, ``.json.gz``/``.json``/``.jsonl`` files,
    Parquet, folders and globs of them) or tables (polars, pyarrow). A chunk is about
    ``options.chunk_bytes`` of NDJSON text (small files and zip members gathered), a
    slice of a table, or small tables gathered to about that size; each row keeps its
    source (``_source``) and line (``_line``), and rows are numbered in input order
    across all inputs (``_row``). With ``only_needed``, nested JSON columns that
    ``config`` doesn't use (or, given names, the others) are not read from NDJSON (they
    are null), which is faster.

    Raises:
        InputError: an input can't be read; the message names it, and the line.
    """
    config = config or TransformConfig()
    options = options or ReadOptions()
    if only_needed is True:
        wanted = config.json_columns_needed()
    elif only_needed:
        wanted = frozenset(only_needed)
    else:
        wanted = frozenset(JSON_COLUMNS)
    units = prefetched(
        _stream(iter_raw_inputs(inputs, options), options),
        depth=options.inflate_ahead,
        name="accoil-inflate",
    )
    decoded = prefetched(_decode(units, config, wanted, options), name="accoil-decode")
    return prefetched(_canonical(decoded, config, options), name="accoil-columns")


def _stream(raws: Iterator[RawInput], options: ReadOptions) -> Iterator[LineChunk | RawInput]:
    """NDJSON inputs as pieces of lines; tables as they are.

    The pieces are small, so that little text waits between threads (memory that is
    touched afresh costs a page fault a page); :func:`_decode` gathers them into chunks.
    """
    for i, raw in enumerate(raws):
        if callable(raw.data):
            yield from iter_line_chunks(
                raw,
                options.piece_bytes,
                read_bytes=options.read_bytes,
                max_line_bytes=options.max_line_bytes,
                small_first=i == 0,
                check_utf8=True,
            )
        else:
            yield raw


def _decode(
    units: Iterator[LineChunk | RawInput],
    config: TransformConfig,
    wanted: frozenset[str],
    options: ReadOptions,
) -> Iterator[DecodedLines | RawInput]:
    """Decode each piece's lines (the GIL-bound step, in a thread of its own), gathered
    into chunks of about ``chunk_bytes`` of text: a chunk costs polars a fixed overhead,
    so small files and zip members (an hour of events each) are gathered too, as long as
    their keys are spelled alike. The first piece goes on alone and the next chunk is a
    quarter size, so that the later stages start early."""
    keys: list[str] = []
    next_line = 1
    targets = itertools.chain([1, options.chunk_bytes // 4], itertools.repeat(options.chunk_bytes))
    chunk: DecodedLines | None = None
    size = target = 0
    for unit in units:
        if isinstance(unit, RawInput):
            if chunk is not None:
                yield chunk
                chunk = None
            yield unit
            continue
        if unit.index == 0:  # a new file or member: its own key spellings
            first = first_keys(unit.spans[0][0])
            keys = sorted(ndjson_read_schema(config.user_id_column, first, json_columns=wanted))
            next_line = 1
        decoded = decode_lines(
            unit.spans,
            unit.source,
            keys,
            first_line=next_line,
            decode_bytes=options.decode_bytes,
            utf8=unit.utf8,
        )
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
    units: Iterator[DecodedLines | RawInput], config: TransformConfig, options: ReadOptions
) -> Iterator[pl.DataFrame]:
    """Canonical frames: one per decoded chunk; small tables (a warehouse extract's many
    Parquet files) gathered up to about ``chunk_bytes``, as the transform costs a fixed
    overhead per frame."""
    next_row = 0
    tables: list[pl.DataFrame] = []
    user_id_column = canonical_name(config.user_id_column or "")
    user_id_found = not user_id_column  # in some NDJSON row (tables check their columns)
    text_source: str | None = None
    for unit in units:
        if isinstance(unit, DecodedLines):
            if tables:
                yield pl.concat(tables)
                tables = []
            parsed = unit.to_frame(
                string_keys=[k for k in unit.keys if canonical_name(k) == "event_type"],
                scalar_keys=[k for k in unit.keys if canonical_name(k) == user_id_column],
            )
            if not user_id_found:
                text_source = _named(unit.sources)
                user_id_found = PRESENT_COLUMN in parsed and bool(parsed[PRESENT_COLUMN].any())
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
        if sum(t.estimated_size() for t in tables) >= options.chunk_bytes:
            yield pl.concat(tables)
            tables = []
    if tables:
        yield pl.concat(tables)
    if text_source is not None and not user_id_found:
        raise InputError(
            text_source,
            f"no row has the column {config.user_id_column!r} that the user id comes from "
            "(--user-id); give a column the events have, or user_properties.NAME",
        )
