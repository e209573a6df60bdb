"""NDJSON text in pieces: inflating gzip, and cutting text into chunks of whole lines.

Text (plain or gzip) is read in pieces of at most ``read_bytes`` and handed on as spans of
those pieces, each holding whole lines; a line cut by a piece boundary is put back
together (the only copy made). ISA-L inflates about three times faster than zlib and
releases the GIL, so inflating runs beside the other stages.
"""

from __future__ import annotations

import io
import itertools
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol, TypeAlias, cast

import orjson
from isal import igzip, isal_zlib

from .._buffers import is_utf8
from ..config import DEFAULT_MAX_LINE_BYTES
from ..errors import InputError

if TYPE_CHECKING:
    from ._sources import RawInput

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"

#: Whole lines of NDJSON text: ``(buffer, start, end)``.
Span: TypeAlias = tuple[bytes, int, int]

#: ISA-L's error class (its stub declares an instance, not a class).
_ISAL_ERROR: type[Exception] = isal_zlib.IsalError  # type: ignore[assignment]


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LineChunk:
    """Whole lines of one NDJSON source, as spans of decompressed buffers.

    ``index`` counts the chunks of the source from 0; line numbers continue from one
    chunk to the next. ``utf8`` is whether every span is known to be valid UTF-8 (checked
    when the chunk was cut, see :func:`iter_line_chunks`).
    """

    source: str
    index: int
    spans: tuple[Span, ...]
    utf8: bool = False

    @property
    def nbytes(self) -> int:
        """The bytes of text in the chunk."""
        return sum(end - start for _, start, end in self.spans)


def _read_pieces(fh: _Readable, sizes: Iterator[int]) -> Iterator[bytes]:
    """The bytes of a binary file, in pieces of the next of ``sizes`` each."""
    while piece := fh.read(next(sizes)):
        yield piece


#: Compressed bytes ISA-L reads at a time. Each read takes the GIL, which the decode
#: thread holds most of the time; igzip.GzipFile's 512 KB made inflating wait for it
#: about four times as long as with 4 MB.
GUNZIP_READ_BYTES = 4 << 20


def gunzip(
    fh: IO[bytes], source: str, *, piece_bytes: int | Iterator[int] = 16 << 20
) -> Iterator[bytes]:
    """Decompress a gzip file (every member; NUL padding between them is skipped) in
    pieces of ``piece_bytes``."""
    sizes = itertools.repeat(piece_bytes) if isinstance(piece_bytes, int) else piece_bytes
    try:
        # igzip.GzipFile's reader (a raw stream; its stub says otherwise), with a larger
        # read buffer than GzipFile gives it.
        raw: Any = isal_zlib._GzipReader(cast(BinaryIO, fh), GUNZIP_READ_BYTES)
        with io.BufferedReader(raw) as gz:
            yield from _read_pieces(gz, sizes)
    except EOFError:
        raise InputError(
            source, "truncated gzip: the compressed stream ends before its end marker"
        ) from None
    except (igzip.BadGzipFile, _ISAL_ERROR) as exc:
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
            # A zip member peeks already; a plain file is wrapped so that it can.
            buffered: Any = fh if hasattr(fh, "peek") else io.BufferedReader(fh)
            if buffered.peek(2)[:2] == GZIP_MAGIC:
                yield from gunzip(buffered, raw.name, piece_bytes=sizes)
            else:
                yield from _read_pieces(buffered, sizes)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InputError(raw.name, f"zip member is corrupt ({exc})") from None
    except OSError as exc:
        raise InputError(raw.name, f"could not be read ({exc})") from None


def iter_line_chunks(
    raw: RawInput,
    chunk_bytes: int,
    *,
    read_bytes: int,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    small_first: bool = False,
    check_utf8: bool = False,
) -> Iterator[LineChunk]:
    """Stream the NDJSON text of ``raw`` (gzip or plain) as chunks of whole lines.

    A chunk is about ``chunk_bytes`` of text in pieces of at most ``read_bytes``. With
    ``small_first`` the first chunk is 1/16 of the size, so that the stages after this
    one start sooner. A line that grows past ``max_line_bytes`` (a file with no newline:
    a zip of zeros) is not held: the reader skips to the next newline and puts in its
    place a marker line (:func:`overlong_line`) that decoding quarantines.

    With ``check_utf8``, each span is checked here (Arrow's check releases the GIL, so it
    runs beside decoding) and a chunk whose every span is valid says so (``utf8``).
    """
    source = raw.name
    targets = _ramp(chunk_bytes, small_first)
    target, size, index = next(targets), 0, 0
    spans: list[Span] = []
    carry = b""
    skipped = -1  # bytes of an overlong line dropped so far (-1: not in one)
    head = b""
    utf8 = check_utf8
    reads = (min(n, read_bytes) for n in _ramp(chunk_bytes, small_first))
    for piece in _text_pieces(raw, reads):
        if skipped >= 0:  # in an overlong line: drop up to its end
            end = piece.find(b"\n")
            if end < 0:
                skipped += len(piece)
                continue
            marker = overlong_line(skipped + end, head)
            spans.append((marker, 0, len(marker)))
            size += len(marker)
            utf8 = False  # the marker holds the line's first bytes, as they are
            piece, skipped = piece[end + 1 :], -1
        cut = piece.rfind(b"\n") + 1
        if cut == 0:  # no line ends in this piece
            carry += piece
            if len(carry) > max_line_bytes:
                head, skipped, carry = carry[:_HEAD_BYTES], len(carry), b""
            continue
        start = 0
        if carry:
            start = piece.find(b"\n") + 1
            joined = carry + piece[:start]
            if len(joined) > max_line_bytes:
                joined = overlong_line(len(joined) - 1, joined[:_HEAD_BYTES])
            spans.append((joined, 0, len(joined)))
            size += len(joined)
            utf8 = utf8 and is_utf8(joined)
        if cut > start:
            spans.append((piece, start, cut))
            size += cut - start
            utf8 = utf8 and is_utf8(memoryview(piece)[start:cut])
        carry = piece[cut:]
        if size + len(carry) >= target:  # the carry: a line cut by the piece's end
            yield LineChunk(source, index, tuple(spans), utf8)
            target, size, index, spans, utf8 = next(targets), 0, index + 1, [], check_utf8
    if skipped >= 0:
        carry = overlong_line(skipped, head)
    if carry:
        spans.append((carry, 0, len(carry)))
        utf8 = utf8 and is_utf8(carry)
    if spans or index == 0:
        yield LineChunk(source, index, tuple(spans) or ((b"", 0, 0),), utf8)


#: Starts the line that stands for a line too long to hold.
OVERLONG_MARK = b"\x00accoil:overlong-line:"
_HEAD_BYTES = 1024


def overlong_line(length: int, head: bytes) -> bytes:
    """The marker line for a line of ``length`` bytes that was not held: its size and its
    first bytes (a newline ends it)."""
    return OVERLONG_MARK + str(length).encode() + b":" + head.replace(b"\n", b" ") + b"\n"


def parse_overlong(line: bytes) -> tuple[int, bytes] | None:
    """(length, first bytes) of a marker line; ``None`` for any other line."""
    if not line.startswith(OVERLONG_MARK):
        return None
    length, _, head = line[len(OVERLONG_MARK) :].partition(b":")
    return int(length), head


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
