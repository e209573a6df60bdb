"""Call ids: deterministic, so the ledger can tell a call it has seen.

``<format>:<kind>:<key>``. A track's key is its event's ``uuid`` (or ``$insert_id``
and ``device_id``; or, without either, its user, time and input position). An
identify's or group's key is its user (and group) plus a digest of its body, so that
changed traits are sent again and unchanged ones are not.
"""

from __future__ import annotations

import hashlib

import polars as pl


def track_event_key() -> pl.Expr:
    """The per-event part of a track call id."""
    fallback = (
        pl.lit("r:")
        + pl.col("userId")
        + pl.lit("|")
        + pl.col("timestamp")
        + pl.lit("|")
        + pl.col("_row").cast(pl.String)
    )
    return pl.coalesce(pl.col("dedup_key").str.replace_all("\x1f", "|", literal=True), fallback)


def body_digests(bodies: pl.Series) -> pl.Series:
    """A short digest of each body, for the ids of identify and group calls."""
    # One digest per user or account (not per event): a plain loop is cheap here.
    return pl.Series(
        [hashlib.blake2b(b.encode(), digest_size=8).hexdigest() for b in bodies], dtype=pl.String
    )
