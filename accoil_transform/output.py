"""Files a run writes: the dry-run calls, the quarantine and the JSON report."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from .buffers import text_buffer
from .formats import CALL_KINDS, DEFAULT_BASE_URL, WireFormat, get_format
from .prefetch import prefetched


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


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable summary of a run report."""
    lines = [
        f"rows read     {report['rows_read']:>10,}",
        f"kept          {report['kept']:>10,}",
    ]
    for reason, n in report["dropped"].items():
        lines.append(f"dropped {reason:<14}{n:>7,}")
    for kind in CALL_KINDS:
        if kind in report["calls"]:
            lines.append(f"{kind} calls {report['calls'][kind]:>12,}")
    delivery = report.get("delivery")
    if delivery:
        for kind, counts in delivery.get("calls", {}).items():
            summary = ", ".join(f"{k} {v:,}" for k, v in counts.items())
            lines.append(f"{kind:<9} {summary}")
        if "calls_per_s" in delivery:
            lines.append(
                f"delivered in {delivery.get('duration_s', 0):.1f} s "
                f"({delivery['calls_per_s']:,.0f} calls/s)"
            )
    for name, target in report.get("outputs", {}).items():
        lines.append(f"{name:<13} {target}")
    return "\n".join(lines)
