"""NDJSON decoding: the wanted top-level keys of each line, as the exact JSON text.

Lines are decoded by msgspec against a struct of the wanted keys, each typed
``msgspec.Raw``. Every other key is skipped without building anything, and a wanted value
comes back as its exact text in the line: nested objects are never re-serialised and
numbers keep every digit. The values of a piece of lines are joined into one buffer,
and polars cuts the buffers of a whole chunk into columns, so no Python code runs per
value.

The text is decoded a piece (about 256 KB of lines) at a time. msgspec holds the
GIL while it decodes; short calls let other threads take it between them. Each piece
is checked for UTF-8 (Arrow's check, without the GIL) unless the reader checked the
text already. A piece that fails as a whole (a
malformed line, a blank line, bytes that are not UTF-8) is decoded again line by line,
so that each bad line is kept with its number and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import polars as pl

from .._buffers import is_utf8
from .._json import SEPARATOR, Getters, cells, line_decoder
from ..config import DEFAULT_DECODE_BYTES, JSON_COLUMNS
from ..errors import InputError
from ._lines import UTF8_BOM, Span, parse_overlong
from ._schema import SUPPORTED_FORMATS, canonical_name


@dataclass
class DecodedLines:
    """NDJSON lines decoded by msgspec, before polars makes them columns (:meth:`to_frame`).

    The two steps are apart so that they can run in different threads: decoding holds
    the GIL, making columns does not. Lines of several sources (small files or zip
    members, decoded with the same keys) can be gathered into one (:meth:`extend`), so
    that polars works on fewer, larger frames.
    """

    keys: tuple[str, ...]
    next_line: int = 1  # the number of the line after the text
    flats: list[list[bytes]] = field(default_factory=list)  # per key: each good run, joined
    rows: int = 0
    lines: list[range | list[int]] = field(default_factory=list)  # of each good row, in runs
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)
    #: (source, good rows, bad rows) of each source, in order.
    parts: list[tuple[str, int, int]] = field(default_factory=list)

    def extend(self, more: DecodedLines) -> None:
        """Append the lines that follow these (decoded with the same keys), from the same
        source or the next one."""
        if more.keys != self.keys:
            raise ValueError(f"keys differ: {self.keys} and {more.keys}")
        for flat, more_flat in zip(self.flats, more.flats, strict=True):
            flat.extend(more_flat)
        self.rows += more.rows
        for numbers in more.lines:
            _add_line_numbers(self, numbers)
        self.bad.extend(more.bad)
        self.next_line = more.next_line
        for source, good, bad in more.parts:
            if self.parts and self.parts[-1][0] == source:
                _, had_good, had_bad = self.parts[-1]
                self.parts[-1] = (source, had_good + good, had_bad + bad)
            else:
                self.parts.append((source, good, bad))

    @property
    def sources(self) -> list[str]:
        """The sources of the lines, in order."""
        return [source for source, _, _ in self.parts]

    def to_frame(
        self,
        json_columns: Iterable[str] | None = None,
        *,
        string_keys: Iterable[str] = (),
        scalar_keys: Iterable[str] = (),
    ) -> pl.DataFrame:
        """The rows as a frame; see :func:`parse_ndjson` for the columns.

        A row whose value of one of ``string_keys`` is not a JSON string (nor null) is
        malformed, with the reason in ``_malformed``; a value of one of ``scalar_keys``
        that is an object or an array is null.
        """
        if json_columns is None:
            json_columns = [k for k in self.keys if canonical_name(k) in JSON_COLUMNS]
        return _to_frame(self, set(json_columns), set(string_keys), set(scalar_keys))


def parse_ndjson(
    data: bytes | Sequence[Span],
    source: str,
    schema: dict[str, pl.DataType],
    *,
    json_columns: Iterable[str] | None = None,
    first_line: int = 1,
    decode_bytes: int = DEFAULT_DECODE_BYTES,
) -> pl.DataFrame:
    """Decode NDJSON lines into the ``schema`` keys plus ``_line``, ``_malformed`` and ``_raw``.

    ``data`` is the text, or consecutive spans ``(buffer, start, end)`` of it that each
    hold whole lines; its first line is number ``first_line``. Keys named in
    ``json_columns`` (by default: the nested Amplitude columns, in any spelling) come
    out as their JSON text (``null`` and absent as null); the others as text values: a
    string unquoted and unescaped, any other value as its JSON text (``123``, ``true``).
    A line that is not a JSON object is a row with null for every key, the reason in
    ``_malformed`` and the start of the line in ``_raw``.

    Raises:
        InputError: the text starts at line 1 and no line of it is a JSON object (it is
            not NDJSON).
    """
    decoded = decode_lines(
        data, source, tuple(schema), first_line=first_line, decode_bytes=decode_bytes
    )
    return decoded.to_frame(json_columns)


def decode_lines(
    data: bytes | Sequence[Span],
    source: str,
    keys: Sequence[str],
    *,
    first_line: int = 1,
    decode_bytes: int = DEFAULT_DECODE_BYTES,
    utf8: bool = False,
) -> DecodedLines:
    """The msgspec half of :func:`parse_ndjson`: decode the lines, keep the values of ``keys``.

    Lines go to msgspec about ``decode_bytes`` at a time: it holds the GIL for a call, so
    short calls let the polars work of other threads go on (256 KB holds it for a fifth
    of a millisecond; 1 MB made a run 5 % slower, 128 KB 15 %). With ``utf8``, the text
    is known to be valid UTF-8 (:func:`~accoil_transform.read._lines.iter_line_chunks`
    checked it) and is not checked again.

    Raises:
        InputError: the text starts at line 1 and no line of it is a JSON object.
    """
    spans = [(data, 0, len(data))] if isinstance(data, bytes) else list(data)
    decoded = DecodedLines(tuple(keys))
    decoder, values = line_decoder(decoded.keys)
    decoded.flats = [[] for _ in decoded.keys]
    line = first_line
    for i, (buffer, start, end) in enumerate(spans):
        if i == 0 and first_line == 1 and buffer.startswith(UTF8_BOM, start, end):
            start += len(UTF8_BOM)
        line = _decode_span(
            buffer, start, end, line, decoder, values, decoded, decode_bytes, utf8=utf8
        )
    if decoded.rows == 0 and decoded.bad and first_line == 1:
        number, reason, _ = decoded.bad[0]
        raise InputError(
            source,
            f"not an NDJSON event file: {reason}; supported inputs: {SUPPORTED_FORMATS}",
            line=number,
        )
    decoded.next_line = line
    decoded.parts = [(source, decoded.rows, len(decoded.bad))]
    return decoded


def _decode_span(
    buffer: bytes,
    start: int,
    end: int,
    line: int,
    decoder: msgspec.json.Decoder,
    values: Getters,
    out: DecodedLines,
    piece_bytes: int,
    *,
    utf8: bool,
) -> int:
    """Decode the whole lines of ``buffer[start:end]`` into ``out``, ``piece_bytes`` at a
    time; return the next line number."""
    view = memoryview(buffer)
    while start < end:
        if end - start <= piece_bytes:
            stop = end
        else:
            stop = buffer.rfind(b"\n", start, start + piece_bytes) + 1
            if stop <= start:  # one line longer than a piece
                stop = _next_newline(buffer, start + piece_bytes, end)
        n_lines = _count_lines(buffer, start, stop)
        piece = view[start:stop]
        rows = _decode_whole(decoder, piece, n_lines, utf8=utf8)
        if rows is not None:
            _add_values(out, rows, values)
            _add_line_numbers(out, range(line, line + n_lines))
            out.rows += n_lines
        else:
            _decode_line_by_line(buffer[start:stop], line, decoder, values, out)
        line += n_lines
        start = stop
    return line


def _add_values(out: DecodedLines, rows: list[Any], values: Getters) -> None:
    """Each key's values of ``rows``, joined by newlines (a value never holds one)."""
    for flat, value in zip(out.flats, values, strict=True):
        flat.append(SEPARATOR.join(map(value, rows)))


def _add_line_numbers(out: DecodedLines, numbers: range | list[int]) -> None:
    """Note the line numbers of some good rows; a range right after a range joins it."""
    last = out.lines[-1] if out.lines else None
    if isinstance(numbers, range) and isinstance(last, range) and last.stop == numbers.start:
        out.lines[-1] = range(last.start, numbers.stop)
    else:
        out.lines.append(numbers)


def _count_lines(buffer: bytes, start: int, stop: int) -> int:
    """Lines in ``buffer[start:stop]`` (the last may lack its newline).

    A loop of ``find`` (memchr) is about three times faster than ``bytes.count``.
    """
    n, find = 0, buffer.find
    pos = find(b"\n", start, stop)
    while pos >= 0:
        n += 1
        pos = find(b"\n", pos + 1, stop)
    return n + (buffer[stop - 1] != 0x0A)


def _next_newline(buffer: bytes, pos: int, end: int) -> int:
    stop = buffer.find(b"\n", pos, end)
    return end if stop < 0 else stop + 1


def _decode_whole(
    decoder: msgspec.json.Decoder, piece: memoryview, n_lines: int, *, utf8: bool
) -> list | None:
    """All rows of a piece whose every line is one JSON object in UTF-8, else None
    (``utf8``: the piece is known to be valid UTF-8)."""
    try:
        rows = decoder.decode_lines(piece)
    except (msgspec.DecodeError, RecursionError):  # a bad line: find it line by line
        return None
    if len(rows) != n_lines or not (utf8 or is_utf8(piece)):  # blank or doubled lines; bad bytes
        return None
    return rows


def _decode_line_by_line(
    piece: bytes,
    first: int,
    decoder: msgspec.json.Decoder,
    values: Getters,
    out: DecodedLines,
) -> None:
    good: list[Any] = []
    numbers: list[int] = []
    for number, line in enumerate(piece.split(b"\n"), start=first):
        if not line.strip():
            continue
        overlong = parse_overlong(line)
        if overlong is not None:
            length, head = overlong
            reason = f"a line of {length:,} bytes, longer than max_line_bytes: skipped"
            out.bad.append((number, reason, _line_text(head)))
            continue
        try:
            line.decode("utf-8")
            row = decoder.decode(line)
        except UnicodeDecodeError as exc:
            out.bad.append(
                (number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})", _line_text(line))
            )
            continue
        except msgspec.ValidationError as exc:  # valid JSON, but not an object
            got = str(exc).rsplit("got ", 1)[-1].strip("`")
            out.bad.append((number, f"expected a JSON object, got {got}", _line_text(line)))
            continue
        except msgspec.DecodeError as exc:
            out.bad.append((number, f"not valid JSON ({exc})", _line_text(line)))
            continue
        except RecursionError:
            reason = "JSON nested too deeply to decode (over about a thousand levels)"
            out.bad.append((number, reason, _line_text(line)))
            continue
        good.append(row)
        numbers.append(number)
    if good:
        _add_values(out, good, values)
        _add_line_numbers(out, numbers)
        out.rows += len(good)


def _line_text(line: bytes) -> str:
    """A bad line for the quarantine (without a CRLF's carriage return)."""
    return line.removesuffix(b"\r").decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- columns


def _to_frame(
    decoded: DecodedLines, json_keys: set[str], string_keys: set[str], scalar_keys: set[str]
) -> pl.DataFrame:
    keys = decoded.keys
    schema = {key: pl.String() for key in keys}
    if decoded.rows:
        flats = pl.DataFrame(
            [
                pl.Series(key, flat, dtype=pl.Binary)
                for key, flat in zip(keys, decoded.flats, strict=True)
            ]
        )
        # One column per key, split in parallel; then the values (in a second step, as
        # the split would be done again for each use of it in one expression).
        split = flats.select(cells(key) for key in keys)
        frame = split.select(_value(pl.col(key), json=key in json_keys).alias(key) for key in keys)
        frame = _unescape_strings(frame, [k for k in keys if k not in json_keys])
        typed = _typed_values(
            split, [k for k in keys if k in string_keys], [k for k in keys if k in scalar_keys]
        )
        frame = frame.with_columns(typed.drop("_malformed")).with_columns(typed["_malformed"])
        frame = frame.with_columns(
            _line=pl.concat(
                pl.int_range(n.start, n.stop, dtype=pl.Int64, eager=True)
                if isinstance(n, range)
                else pl.Series(n, dtype=pl.Int64)
                for n in decoded.lines
            ),
            _raw=pl.lit(None, pl.String),
        )
    else:
        frame = pl.DataFrame(
            schema={**schema, "_line": pl.Int64, "_malformed": pl.String, "_raw": pl.String}
        )
    bad = None
    if decoded.bad:
        bad = pl.DataFrame(
            decoded.bad,
            schema={"_line": pl.Int64, "_malformed": pl.String, "_raw": pl.String},
            orient="row",
        )
    if len(decoded.parts) > 1:
        return _with_sources(frame, bad, decoded.parts)
    return frame if bad is None else pl.concat([frame, bad], how="diagonal").sort("_line")


#: Added by :meth:`DecodedLines.to_frame` with ``scalar_keys``: whether the row has one.
PRESENT_COLUMN = "_scalar_key_present"


def _typed_values(
    cells_: pl.DataFrame, string_keys: list[str], scalar_keys: list[str]
) -> pl.DataFrame:
    """The values of keys that must be strings or scalars, checked against their JSON text.

    Returns those keys' values (null where the type is wrong) and ``_malformed``: the
    reason of a row whose value of a ``string_keys`` key is not a string.
    """

    def container(cell: pl.Expr) -> pl.Expr:
        return cell.str.starts_with("[") | cell.str.starts_with("{")

    values = [
        pl.when(~container(pl.col(key))).then(_value(pl.col(key), json=False)).alias(key)
        for key in scalar_keys
    ]
    reasons = []
    for key in string_keys:
        cell = pl.col(key)
        wrong = ~cell.str.starts_with('"') & (cell.str.len_bytes() > 0) & (cell != "null")
        reason = pl.lit(f"{key}: expected a string, got ") + cell.str.slice(0, 60)
        reasons.append(pl.when(wrong).then(reason))
    reason = pl.coalesce(reasons) if reasons else pl.lit(None, pl.String)
    # Whether a row has one of the scalar keys at all (absent and null differ here only).
    present = [
        pl.any_horizontal(pl.col(key).str.len_bytes() > 0 for key in scalar_keys).alias(
            PRESENT_COLUMN
        )
        for _ in scalar_keys[:1]
    ]
    typed = cells_.with_columns(*values, reason.alias("_malformed"), *present).select(
        *scalar_keys, "_malformed", *(e.meta.output_name() for e in present)
    )
    return _unescape_strings(typed, scalar_keys) if scalar_keys else typed


def _with_sources(
    good: pl.DataFrame, bad: pl.DataFrame | None, parts: list[tuple[str, int, int]]
) -> pl.DataFrame:
    """Rows of several sources, in source then line order, with a ``_source`` column."""

    def part_of(rows: Iterable[int]) -> pl.Series:
        return pl.concat(pl.repeat(i, n, dtype=pl.UInt32, eager=True) for i, n in enumerate(rows))

    frame = good.with_columns(_part=part_of(g for _, g, _ in parts))
    if bad is not None:
        bad = bad.with_columns(_part=part_of(b for _, _, b in parts))
        frame = pl.concat([frame, bad], how="diagonal").sort("_part", "_line")
    names = [source for source, _, _ in parts]
    source = pl.col("_part").replace_strict(range(len(names)), names, return_dtype=pl.String)
    return frame.with_columns(_source=source).drop("_part")


def _value(cell: pl.Expr, *, json: bool) -> pl.Expr:
    """A cell's JSON text as a column value (null for absent and ``null``).

    A string without a backslash is unquoted here (it can't hold a quote); strings with
    escapes stay quoted for :func:`_unescape_strings`.
    """
    missing = (cell.str.len_bytes() == 0) | (cell == "null")
    if json:
        return pl.when(~missing).then(cell)
    return (
        pl.when(missing)
        .then(pl.lit(None, pl.String))
        .when(cell.str.contains("\\", literal=True))
        .then(cell)
        .otherwise(cell.str.strip_chars('"'))
    )


def _unescape_strings(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Decode the (rare) string values with escapes left quoted by :func:`_value`."""
    quoted = pl.col(columns).str.starts_with('"').fill_null(False)
    found = frame.select(quoted.any()).row(0, named=True) if columns else {}
    fixed = []
    for name in (name for name, any_quoted in found.items() if any_quoted):
        column = frame[name]
        rows = column.str.starts_with('"').fill_null(False).arg_true()
        fixed.append(column.scatter(rows, column.gather(rows).str.json_decode(pl.String)))
    return frame.with_columns(fixed) if fixed else frame
