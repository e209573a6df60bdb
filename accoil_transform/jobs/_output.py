"""Files a run writes: the dry-run calls, the quarantine and the JSON report.

The calls and the report can go to standard output instead of a file: the path ``-``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import polars as pl

from .._buffers import text_buffer
from .._prefetch import prefetched
from ..calls import WireFormat, get_format
from ..config import DEFAULT_BASE_URL


def dry_run_lines(
    calls: pl.DataFrame,
    fmt: str | WireFormat = "v2",
    *,
    base_url: str | None = None,
    url: str | None = None,
) -> pl.Series:
    """One NDJSON line ``{"method","url","body"}`` per call (no newline), ``body`` as a JSON object."""
    return _lines(calls, fmt, base_url=base_url, url=url, end="")


def _lines(
    calls: pl.DataFrame,
    fmt: str | WireFormat,
    *,
    base_url: str | None,
    url: str | None,
    end: str,
) -> pl.Series:
    wire = get_format(fmt)
    prefix = {
        kind: '{"method":"POST","url":'
        + json.dumps(url or wire.url(kind, base_url or DEFAULT_BASE_URL))
        + ',"body":'
        for kind in wire.kinds
    }
    head = pl.col("kind").replace_strict(prefix, default=None, return_dtype=pl.String)
    return calls.select((head + pl.col("body") + pl.lit("}" + end)).alias("line")).to_series()


def write_dry_run(
    calls: pl.DataFrame | Iterable[pl.DataFrame],
    path: str | Path,
    fmt: str | WireFormat = "v2",
    *,
    base_url: str | None = None,
    url: str | None = None,
    first: Callable[[], pl.DataFrame] | None = None,
) -> Path:
    """Write every call as an NDJSON line ``{"method","url","body"}``; nothing is sent.

    ``calls`` is a calls frame or an iterable of them, written in order as they come.
    ``first`` gives calls that go before them but are only known once they are all
    made (a run's identify and group calls): ``calls`` then go to an unnamed file
    beside ``path`` as they come, and are copied after ``first()``'s, by the kernel.
    """
    path = Path(path)
    chunks = [calls] if isinstance(calls, pl.DataFrame) else calls
    lines = partial(_write_lines, fmt=fmt, base_url=base_url, url=url)
    with opened(path) as fh:
        if first is None:
            lines(fh, chunks)
            return path
        # Beside a file (the same file system, for the copy); elsewhere for stdout or a device.
        with tempfile.TemporaryFile(dir=None if _in_place(path) else path.parent) as rest:
            lines(rest, chunks)
            lines(fh, [first()])
            rest.seek(0)
            _copy(rest, fh)
    return path


def _write_lines(
    fh: IO[bytes],
    chunks: Iterable[pl.DataFrame],
    *,
    fmt: str | WireFormat,
    base_url: str | None,
    url: str | None,
) -> None:
    texts = (
        text_buffer(_lines(chunk, fmt, base_url=base_url, url=url, end="\n"))
        for chunk in chunks
        if not chunk.is_empty()
    )
    # The next chunk's lines are made while this one is written.
    for text in prefetched(texts, name="accoil-lines"):
        _write_all(fh, text)
        fh.flush()  # a chunk at a time, as it comes (to a pipe, too)


def _copy(source: IO[bytes], target: IO[bytes]) -> None:
    """The rest of ``source`` appended to ``target``: in the kernel where it can
    (``copy_file_range``), else through a buffer (a pipe, another file system)."""
    target.flush()
    try:
        while os.copy_file_range(source.fileno(), target.fileno(), 1 << 30):
            pass
    except (AttributeError, OSError):  # not Linux, or not between two files here
        while block := source.read(16 << 20):
            _write_all(target, block)


def _write_all(fh: IO[bytes], data: bytes | memoryview) -> None:
    """Write every byte of ``data``, or raise.

    A buffered file's ``write`` can take fewer bytes than it was given and raise
    nothing: the reader of a pipe went away in the middle of it (``| head``), or the
    disk filled up. The rest would be lost without a word; writing it raises the error.
    """
    view = memoryview(data).cast("B")
    while view:
        written = fh.write(view)
        if not written:
            raise OSError(f"{getattr(fh, 'name', 'the output')}: nothing could be written")
        view = view[written:]


def write_quarantine(quarantine: pl.DataFrame, path: str | Path) -> Path:
    """Write malformed rows as NDJSON: ``{"source","line","reason","raw"}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    quarantine.write_ndjson(path)
    return path


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the JSON report (``-``: standard output)."""
    path = Path(path)
    with opened(path) as fh:
        _write_all(fh, (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def is_stdout(path: str | Path | None) -> bool:
    """Whether ``path`` names standard output (``-``)."""
    return path is not None and str(path) == STDOUT


STDOUT = "-"


@contextmanager
def opened(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for writing bytes (its folder made), or standard output for ``-``.

    A regular file appears whole or not at all: the bytes go to a hidden file beside it,
    which replaces ``path`` only when the block ends without an error. Anything else that
    already exists (``/dev/null``, a named pipe, a symbolic link) is written in place.
    """
    if is_stdout(path):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if _in_place(path):
        with open(path, "wb") as fh:
            yield fh
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    # O_EXCL: the name is ours alone; mode 0o666 less the umask, as open() would give.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _in_place(path: Path) -> bool:
    """Whether ``path`` is written where it is, not through a file beside it: standard
    output, or something that exists and is not a regular file (a device, a named pipe,
    a symbolic link)."""
    return is_stdout(path) or path.is_symlink() or (path.exists() and not path.is_file())
