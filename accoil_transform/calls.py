"""Turn transform records into Accoil call bodies, per wire format (SPEC §5).

Bodies are built as polars string expressions, so no Python code runs per event. Each
call gets a deterministic id, the key of the delivery ledger:
``<format>:<kind>:<key>`` where a track's key is its event's ``uuid`` (or
``$insert_id`` and ``device_id``; or, without either, its user, time and input
position) and an identify's or group's key is its user (and group) plus a digest of
its body, so that changed traits are sent again and unchanged ones are not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import polars as pl

from .batches import CALLS_SCHEMA
from .formats import WireFormat, get_format
from .jsonexpr import RawJson, json_object

_TS = pl.col("timestamp")
_EPOCH_MS = pl.col("event_time").dt.epoch("ms")


def _track_fields(fmt: str) -> dict[str, pl.Expr | RawJson]:
    user, event = pl.col("userId"), pl.col("event")
    if fmt == "v2":
        return {"userId": user, "event": event, "timestamp": _TS}
    if fmt == "stream":
        return {
            "userId": user,
            "event": event,
            "timestamp": _TS,
            "properties": RawJson(pl.col("properties")),
            "groupTraits": RawJson(pl.col("groupTraits")),
        }
    if fmt == "segment":
        return {"type": pl.lit("track"), "event": event, "userId": user, "timestamp": _TS}
    if fmt == "v1":
        return {"user_id": user, "event": event, "timestamp": _EPOCH_MS}
    raise ValueError(f"format {fmt!r} has no track calls")


def _identify_fields(fmt: str) -> dict[str, pl.Expr | RawJson]:
    traits = RawJson(pl.col("traits"))
    if fmt == "v2":
        return {"userId": pl.col("userId"), "traits": traits, "timestamp": _TS}
    if fmt == "segment":
        return {
            "type": pl.lit("identify"),
            "userId": pl.col("userId"),
            "traits": traits,
            "timestamp": _TS,
        }
    if fmt == "v1":
        return {"user_id": pl.col("userId"), "traits": traits, "timestamp": _EPOCH_MS}
    raise ValueError(f"format {fmt!r} has no identify calls")


def _group_fields(fmt: str) -> dict[str, pl.Expr | RawJson]:
    traits = RawJson(pl.col("traits"))
    gid, uid = pl.col("groupId"), pl.col("userId")
    if fmt == "v2":
        return {"groupId": gid, "userId": uid, "traits": traits, "timestamp": _TS}
    if fmt == "segment":
        return {
            "type": pl.lit("group"),
            "userId": uid,
            "groupId": gid,
            "traits": traits,
            "timestamp": _TS,
        }
    if fmt == "v1":
        return {"group_id": gid, "user_id": uid, "traits": traits, "timestamp": _EPOCH_MS}
    raise ValueError(f"format {fmt!r} has no group calls")


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


def track_calls(
    tracks: pl.DataFrame, fmt: str | WireFormat = "v2", *, with_sort_key: bool = False
) -> pl.DataFrame:
    """One track call per kept event, sorted by event time (then input order).

    ``with_sort_key`` keeps ``event_time`` and ``_row``, for merging batches later.
    """
    wire = get_format(fmt)
    key = [pl.col("event_time"), pl.col("_row")] if with_sort_key else []
    return tracks.sort(["event_time", "_row"]).select(
        pl.lit("track").alias("kind"),
        (pl.lit(f"{wire.name}:track:") + track_event_key()).alias("call_id"),
        json_object(_track_fields(wire.name)).alias("body"),
        *key,
    )


def identify_calls(identifies: pl.DataFrame, fmt: str | WireFormat = "v2") -> pl.DataFrame:
    """One identify call per distinct user (empty for formats without identify)."""
    return _keyed_calls(identifies, "identify", pl.col("userId"), _identify_fields, fmt)


def group_calls(groups: pl.DataFrame, fmt: str | WireFormat = "v2") -> pl.DataFrame:
    """One group call per distinct (user, primary group) pair."""
    key = pl.col("userId") + pl.lit("|") + pl.col("groupId")
    return _keyed_calls(groups, "group", key, _group_fields, fmt)


def _keyed_calls(
    records: pl.DataFrame,
    kind: str,
    key: pl.Expr,
    fields: Callable[[str], dict[str, pl.Expr | RawJson]],
    fmt: str | WireFormat,
) -> pl.DataFrame:
    wire = get_format(fmt)
    if kind not in wire.paths:
        return pl.DataFrame(schema=CALLS_SCHEMA)
    calls = records.select(
        pl.lit(kind).alias("kind"), key.alias("_key"), json_object(fields(wire.name)).alias("body")
    )
    return _with_digest_ids(calls, f"{wire.name}:{kind}:")


def _with_digest_ids(calls: pl.DataFrame, prefix: str) -> pl.DataFrame:
    # One digest per user or account (not per event): a plain loop is cheap here.
    digests = [hashlib.blake2b(b.encode(), digest_size=8).hexdigest() for b in calls["body"]]
    return calls.select(
        "kind",
        (pl.lit(prefix) + pl.col("_key") + pl.lit(":") + pl.Series(digests, dtype=pl.String)).alias(
            "call_id"
        ),
        "body",
    )


def build_calls(
    tracks: pl.DataFrame,
    identifies: pl.DataFrame,
    groups: pl.DataFrame,
    fmt: str | WireFormat = "v2",
) -> pl.DataFrame:
    """Every call of a run in delivery order: identify, then group, then track."""
    return pl.concat(
        [identify_calls(identifies, fmt), group_calls(groups, fmt), track_calls(tracks, fmt)]
    )
