"""Files a run writes: the dry-run calls, the quarantine and the JSON report."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
) -> Path:
    """Write every call as an NDJSON line ``{"method","url","body"}``; nothing is sent.

    ``calls`` is a calls frame or an iterable of them, written in order as they come.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [calls] if isinstance(calls, pl.DataFrame) else calls
    texts = (
        text_buffer(_lines(chunk, fmt, base_url=base_url, url=url, end="\n"))
        for chunk in chunks
        if not chunk.is_empty()
    )
    with open(path, "wb") as fh:
        # The next chunk's lines are made while this one is written.
        for text in prefetched(texts, name="accoil-lines"):
            fh.write(text)
    return path


def write_quarantine(quarantine: pl.DataFrame, path: str | Path) -> Path:
    """Write malformed rows as NDJSON: ``{"source","line","reason","raw"}``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    quarantine.write_ndjson(path)
    return path


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
