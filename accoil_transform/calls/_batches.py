"""Chunk a calls frame into batches: the unit of progress and checkpointing.

A calls frame (:data:`CALLS_SCHEMA`) is already in delivery order: identify, then group,
then track. Accoil has no batch endpoint, so a batch is simply N calls to one endpoint
that the delivery engine sends concurrently.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from ..config import DEFAULT_BASE_URL, DEFAULT_BATCH_SIZE
from ..errors import ConfigError
from ._formats import CALL_KINDS, CallKind, WireFormat, get_format


@dataclass(frozen=True, slots=True)
class CallBatch:
    """Up to N calls of one kind, bound for one URL; ``user_ids`` says whom each is about."""

    kind: CallKind
    url: str
    call_ids: list[str]
    bodies: list[bytes]
    user_ids: list[str | None]

    def __len__(self) -> int:
        return len(self.call_ids)

    def __repr__(self) -> str:  # bodies can be large; never dump them
        return f"CallBatch(kind={self.kind!r}, url={self.url!r}, calls={len(self)})"


def iter_batches(
    calls: pl.DataFrame | Iterable[pl.DataFrame],
    fmt: str | WireFormat = "v2",
    *,
    base_url: str | None = None,
    url: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[CallBatch]:
    """Yield :class:`CallBatch` objects of at most ``batch_size`` calls.

    ``calls`` is a calls frame or an iterable of them (e.g. one per input member).
    Batches never mix kinds. ``url`` overrides the format's URL for every call (the
    ``stream`` format posts to a URL the user configures); otherwise the URL is the
    format's path under ``base_url``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    wire = get_format(fmt)
    frames = [calls] if isinstance(calls, pl.DataFrame) else calls
    for frame in frames:
        for kind in CALL_KINDS:
            part = frame.filter(pl.col("kind") == kind)
            if part.is_empty():
                continue
            target = url or wire.url(kind, base_url or DEFAULT_BASE_URL)
            for chunk in part.iter_slices(batch_size):
                yield CallBatch(
                    kind=kind,
                    url=target,
                    call_ids=chunk["call_id"].to_list(),
                    bodies=[b.encode() for b in chunk["body"].to_list()],
                    user_ids=chunk["user_id"].to_list(),
                )
