"""Selection: which rows become events, which carry user or account data, and why the
others are dropped.

A row needs a usable user id; duplicates (by ``uuid``, else ``$insert_id`` and
``device_id``) are dropped, the first occurrence in input order kept;
``$identify``/``$groupidentify`` rows are trait rows, not events; include and exclude
lists filter event types. When several places apply, the first in :data:`PLACES` counts
(docs/rules.md §2).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .._json import json_scalar_at
from ..config import FieldRef, TransformConfig
from ._report import PLACES

#: User ids that count as missing, compared case-insensitively after trimming.
PLACEHOLDER_USER_IDS: frozenset[str] = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "0",
        "-1",
        "00000000-0000-0000-0000-000000000000",
    }
)

#: Event types that carry user data and account data, never a product event.
IDENTIFY = "$identify"
GROUP_IDENTIFY = "$groupidentify"


def dedup_key() -> pl.Expr:
    """The duplicate key: ``uuid``, else (``$insert_id``, ``device_id``), else none."""
    uuid = pl.col("uuid").str.strip_chars()
    insert_id = pl.col("insert_id").str.strip_chars()
    return (
        pl.when(uuid.is_not_null() & (uuid != ""))
        .then(pl.lit("u:") + uuid)
        .when(insert_id.is_not_null() & (insert_id != ""))
        .then(pl.lit("i:") + insert_id + pl.lit("\x1f") + pl.col("device_id").fill_null(""))
    )


def user_id(ref: FieldRef) -> pl.Expr:
    """``userId`` as trimmed text from the configured source; null when unusable."""
    if ref.scope == "column":
        raw = pl.col("user_id")
    else:
        raw = json_scalar_at(pl.col(ref.scope or "user_properties"), ref.name)
    trimmed = raw.str.strip_chars()
    placeholder = trimmed.str.to_lowercase().is_in(list(PLACEHOLDER_USER_IDS))
    return pl.when(~placeholder).then(trimmed)


def place(config: TransformConfig, *, duplicate: pl.Expr) -> pl.Expr:
    """Where a row ends, the first of :data:`PLACES` that applies; null for a kept row."""
    event_type = pl.col("event_type")
    unwanted = pl.lit(False)
    if config.include_events:
        unwanted = ~event_type.is_in(list(config.include_events))
    if config.exclude_events:
        unwanted = unwanted | event_type.is_in(list(config.exclude_events))
    conditions = (
        pl.col("_malformed").is_not_null(),
        duplicate,
        event_type == GROUP_IDENTIFY,
        pl.col("userId").is_null(),
        event_type == IDENTIFY,
        unwanted,
    )
    chain: Any = pl
    for where, condition in zip(PLACES, conditions, strict=True):
        chain = chain.when(condition).then(pl.lit(where))
    return chain
