"""Turn transform records into Accoil call bodies, per wire format.

Bodies are built as polars string expressions, so no Python code runs per event. A
calls frame has one row per call: its ``kind``, ``call_id`` (:mod:`._ids`), ``user_id``
(the user it is about; null for an account-only call) and ``body`` (JSON text).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from .._json import RawJson, json_object
from ._formats import WireFormat, get_format
from ._ids import body_digests, track_event_key

#: The columns every calls frame has, in this order.
CALLS_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "call_id": pl.String(),
    "user_id": pl.String(),
    "body": pl.String(),
}

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


def _account_fields(fmt: str) -> dict[str, pl.Expr | RawJson]:
    if fmt == "v2":  # an account's traits, with no user: Accoil's account-only update
        return {"groupId": pl.col("groupId"), "traits": RawJson(pl.col("traits")), "timestamp": _TS}
    raise ValueError(f"format {fmt!r} has no account-only group calls")


def track_calls(tracks: pl.DataFrame, fmt: str | WireFormat = "v2") -> pl.DataFrame:
    """One track call per kept event, in input order (each carries its own timestamp)."""
    wire = get_format(fmt)
    return tracks.sort("_row").select(
        pl.lit("track").alias("kind"),
        (pl.lit(f"{wire.name}:track:") + track_event_key()).alias("call_id"),
        pl.col("userId").alias("user_id"),
        json_object(_track_fields(wire.name)).alias("body"),
    )


def identify_calls(identifies: pl.DataFrame, fmt: str | WireFormat = "v2") -> pl.DataFrame:
    """One identify call per distinct user (empty for formats without identify)."""
    return _keyed_calls(identifies, "identify", pl.col("userId"), _identify_fields, fmt)


#: Formats that make account-only group calls (a group record without ``userId``).
ACCOUNT_ONLY_FORMATS = frozenset({"v2"})


def group_calls(groups: pl.DataFrame, fmt: str | WireFormat = "v2") -> pl.DataFrame:
    """One group call per (user, primary group) pair; in ``v2`` also one per
    account-only group record (``userId`` null), which other formats skip (see
    :func:`skipped_account_groups`)."""
    wire = get_format(fmt)
    with_user = pl.col("userId").is_not_null()
    key = pl.col("userId") + pl.lit("|") + pl.col("groupId")
    calls = _keyed_calls(groups.filter(with_user), "group", key, _group_fields, wire)
    accounts = groups.filter(~with_user)
    if wire.name not in ACCOUNT_ONLY_FORMATS or accounts.is_empty():
        return calls
    key = pl.col("groupType") + pl.lit("|") + pl.col("groupId")
    account_calls = _keyed_calls(
        accounts, "group", key, _account_fields, wire, id_kind="group-account"
    )
    return pl.concat([calls, account_calls])


def skipped_account_groups(groups: pl.DataFrame, fmt: str | WireFormat = "v2") -> int:
    """How many account-only group records ``fmt`` makes no call for."""
    if get_format(fmt).name in ACCOUNT_ONLY_FORMATS:
        return 0
    return groups.filter(pl.col("userId").is_null()).height


def _keyed_calls(
    records: pl.DataFrame,
    kind: str,
    key: pl.Expr,
    fields: Callable[[str], dict[str, pl.Expr | RawJson]],
    fmt: str | WireFormat,
    *,
    id_kind: str | None = None,
) -> pl.DataFrame:
    """Calls whose id is ``<format>:<id_kind>:<key>:<digest of the body>``."""
    wire = get_format(fmt)
    if kind not in wire.paths:
        return pl.DataFrame(schema=CALLS_SCHEMA)
    calls = records.select(
        key.alias("_key"),
        pl.col("userId").alias("user_id"),
        json_object(fields(wire.name)).alias("body"),
    )
    return calls.select(
        pl.lit(kind).alias("kind"),
        (
            pl.lit(f"{wire.name}:{id_kind or kind}:")
            + pl.col("_key")
            + pl.lit(":")
            + pl.lit(body_digests(calls["body"]))
        ).alias("call_id"),
        "user_id",
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
