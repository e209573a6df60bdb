"""The original text of quarantined lines, read again from their sources.

A line found malformed is quarantined with its source and number. Reading keeps no text
of good lines, and a line can turn out malformed only after it was decoded (a missing
``event_type``, a time that can't be parsed), so the quarantine's text is read again,
at the end, from the sources that have quarantined lines: exactly as the source holds
it (a CRLF's carriage return and a first line's byte order mark aside). A line that is
not valid UTF-8 is also given as base64, so no byte is lost.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import polars as pl

from ..config import ReadOptions
from ._lines import UTF8_BOM, iter_line_chunks, parse_overlong
from ._sources import RawInput, Source, iter_raw_inputs


def with_original_lines(
    quarantine: pl.DataFrame, inputs: Source | Iterable[Source], options: ReadOptions
) -> pl.DataFrame:
    """``quarantine`` (``source``, ``line``, ``reason``, ``raw``) with ``raw`` read again
    from each NDJSON source, and ``raw_base64`` for lines that are not valid UTF-8.

    Rows of sources that can't be read again (tables, whose ``raw`` is the row as JSON)
    keep their ``raw``.
    """
    quarantine = quarantine.with_columns(raw_base64=pl.lit(None, pl.String))
    if quarantine.is_empty():
        return quarantine
    wanted: dict[str, set[int]] = {}
    for source, line in quarantine.select("source", "line").iter_rows():
        wanted.setdefault(source, set()).add(line)
    found: dict[tuple[str, int], bytes] = {}
    for raw in iter_raw_inputs(inputs, options, tables=False):
        if callable(raw.data) and raw.name in wanted:
            found.update(_lines(raw, wanted[raw.name], options))
    if not found:
        return quarantine
    texts = {key: line.decode("utf-8", errors="replace") for key, line in found.items()}
    bad_utf8 = {key: _base64_if_not_utf8(line) for key, line in found.items()}
    keys = list(zip(quarantine["source"], quarantine["line"], strict=True))
    return quarantine.with_columns(
        raw=pl.Series([texts.get(k) for k in keys], dtype=pl.String).fill_null(quarantine["raw"]),
        raw_base64=pl.Series([bad_utf8.get(k) for k in keys], dtype=pl.String),
    )


def _lines(raw: RawInput, numbers: set[int], options: ReadOptions) -> dict[tuple[str, int], bytes]:
    """The lines ``numbers`` (1-based) of an NDJSON source, as bytes."""
    out: dict[tuple[str, int], bytes] = {}
    last = max(numbers)
    number = 0
    chunks = iter_line_chunks(
        raw,
        options.piece_bytes,
        read_bytes=options.read_bytes,
        max_line_bytes=options.max_line_bytes,
    )
    for chunk in chunks:
        for buffer, start, end in chunk.spans:
            if start == end:
                continue
            lines = buffer[start:end].split(b"\n")
            if buffer[end - 1] == 0x0A:  # a newline ends the span: no line after it
                lines.pop()
            for line in lines:
                number += 1
                if number in numbers and parse_overlong(line) is None:  # too long to hold
                    text = line.removesuffix(b"\r")
                    out[raw.name, number] = text.removeprefix(UTF8_BOM) if number == 1 else text
            if number >= last:
                return out
    return out


def _base64_if_not_utf8(line: bytes) -> str | None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(line).decode("ascii")
    return None
