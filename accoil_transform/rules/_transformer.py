"""The transform: selection, mapping and groups over canonical batches, with no I/O.

:class:`Transformer` takes canonical event frames one batch at a time (a zip member, a
file, a streaming chunk) and keeps only per-user and per-account state between them,
so memory is bounded by a batch, not by the input. :func:`apply_rules` runs it on one
frame or an iterable of them and returns every frame at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl

from .._buffers import compacted
from ..config import TransformConfig
from ..errors import InputError
from ._groups import EMPTY_GROUP_TRAITS, GroupResolver
from ._map import event_name, properties_object, timestamp, user_traits_object
from ._report import TransformReport
from ._select import dedup_key, drop_reason, user_id

TRACKS_SCHEMA: dict[str, pl.DataType] = {
    "_row": pl.UInt64(),
    "dedup_key": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
    "userId": pl.String(),
    "event": pl.String(),
    "timestamp": pl.String(),
    "properties": pl.String(),
    "groupId": pl.String(),
    "groupType": pl.String(),
    "groupTraits": pl.String(),
}
IDENTIFIES_SCHEMA: dict[str, pl.DataType] = {
    "userId": pl.String(),
    "traits": pl.String(),
    "timestamp": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
}
GROUPS_SCHEMA: dict[str, pl.DataType] = {
    "groupId": pl.String(),
    "userId": pl.String(),
    "traits": pl.String(),
    "timestamp": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "line": pl.Int64(),
    "reason": pl.String(),
    "raw": pl.String(),
}


# --------------------------------------------------------------------------- state


def key_hash(keys: pl.Expr) -> pl.Expr:
    """A hash of dedup keys (only a shortcut: hits are then compared as text)."""
    return keys.hash()


def _latest(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Per key, the row with the greatest event_time; on a tie, the last in input order."""
    return frame.sort(["event_time", "_row"]).unique(by, keep="last", maintain_order=False)


@dataclass
class TransformResult:
    """Every output of a transform run, as polars frames.

    Attributes:
        tracks: one row per kept event: ``userId``, ``event``, ``timestamp``,
            ``properties`` and ``groupTraits`` (JSON text), plus ``groupId``/``groupType``
            of the primary group and ``event_time``/``dedup_key``/``_row`` for ordering.
        identifies: one row per distinct userId.
        groups: one row per distinct (userId, primary groupId) pair.
        quarantine: the malformed rows: source, line, reason and the raw text.
        report: counts of rows read, kept, and dropped by reason.
    """

    tracks: pl.DataFrame
    identifies: pl.DataFrame
    groups: pl.DataFrame
    quarantine: pl.DataFrame
    report: TransformReport


@dataclass
class Transformer:
    """Incremental transform over canonical batches with bounded state.

    Call :meth:`feed` with each canonical frame in input order; it returns that
    batch's track records. :meth:`finish` returns the identify and group records.
    State between batches: the dedup keys seen, each user's latest kept event and each
    (user, group) pair's latest event.
    """

    config: TransformConfig = field(default_factory=TransformConfig)
    report: TransformReport = field(default_factory=TransformReport)
    strict: bool = False
    #: Hashes dedup keys to find earlier ones fast; a collision costs time, never a
    #: wrong answer (hits are compared as text).
    key_hash: Callable[[pl.Expr], pl.Expr] = field(default=key_hash, repr=False)
    _seen: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"h": pl.UInt64, "k": pl.String}), repr=False
    )
    #: Resolves primary groups; it remembers the (groups, group_properties) texts it saw.
    resolver: GroupResolver = field(default_factory=GroupResolver, repr=False)
    _users: pl.DataFrame | None = field(default=None, repr=False)
    _pairs: pl.DataFrame | None = field(default=None, repr=False)
    _quarantine: list[pl.DataFrame] = field(default_factory=list, repr=False)

    def feed(self, canonical: pl.DataFrame) -> pl.DataFrame:
        """Apply the rules to one batch and return its track records (TRACKS_SCHEMA).

        A boolean ``_duplicate`` column, when present, replaces the duplicate test
        (for engines that judge duplicates over the whole input themselves).
        """
        cfg = self.config
        frame = canonical.with_columns(
            userId=user_id(cfg.user_id_ref),
            dedup_key=pl.when(pl.col("_malformed").is_null()).then(dedup_key()),
        )
        key = pl.col("dedup_key")
        if "_duplicate" in frame.columns:
            # Judged upstream over the whole input (e.g. a Spark window by dedup key).
            duplicate = pl.col("_duplicate").fill_null(False)
        else:
            seen = self._seen_before(frame["dedup_key"])
            duplicate = key.is_not_null() & (seen | ~key.is_first_distinct())
        frame = frame.with_columns(_reason=drop_reason(cfg, duplicate=duplicate))
        self._remember_keys(frame)
        self._account(frame)

        kept = frame.filter(pl.col("_reason").is_null())
        grouped = kept.join(self.resolver.primary_groups(kept), on="_row", how="left")
        tracks = grouped.select(
            "_row",
            "dedup_key",
            "event_time",
            "userId",
            event_name(cfg).alias("event"),
            timestamp().alias("timestamp"),
            properties_object(cfg.property_refs).alias("properties"),
            pl.col("group_id").alias("groupId"),
            pl.col("group_type").alias("groupType"),
            pl.col("groupTraits").fill_null(EMPTY_GROUP_TRAITS),
        )
        self._update_users(kept)
        self._update_pairs(grouped)
        return tracks

    def _seen_before(self, keys: pl.Series) -> pl.Series:
        """Which keys an earlier batch had (null keys: false).

        Key hashes are compared first; only the rare hits are then compared as text,
        against the few earlier keys with the same hash, so the cost of a batch does
        not grow with the keys seen before it.
        """
        hashes = keys.to_frame().select(self.key_hash(pl.col(keys.name))).to_series()
        # Probe the earlier hashes against this batch's (a small set), not the reverse:
        # building a set of every earlier hash would cost a pass over them per batch.
        same_hash = self._seen.filter(pl.col("h").is_in(hashes.implode()))
        if same_hash.is_empty():
            return pl.Series(keys.name, [False] * keys.len(), pl.Boolean)
        hit = hashes.is_in(same_hash["h"].implode()) & keys.is_not_null()
        return hit & keys.is_in(same_hash["k"].implode())

    def _remember_keys(self, frame: pl.DataFrame) -> None:
        new = frame.filter(
            pl.col("dedup_key").is_not_null() & pl.col("_reason").ne_missing("duplicate")
        ).select(self.key_hash(pl.col("dedup_key")).alias("h"), pl.col("dedup_key").alias("k"))
        if not new.is_empty():
            self._seen = pl.concat([self._seen, compacted(new)], rechunk=False)

    def _account(self, frame: pl.DataFrame) -> None:
        counts = frame.group_by("_reason").len()
        self.report.rows_read += frame.height
        for reason, n in counts.iter_rows():
            if reason is None:
                self.report.kept += n
            else:
                self.report.dropped[reason] = self.report.dropped.get(reason, 0) + n
        bad = frame.filter(pl.col("_reason") == "malformed")
        if bad.is_empty():
            return
        if self.strict:
            first = bad.row(0, named=True)
            raise InputError(first["_source"], first["_malformed"], line=first["_line"])
        self._quarantine.append(
            compacted(
                bad.select(
                    pl.col("_source").alias("source"),
                    pl.col("_line").alias("line"),
                    pl.col("_malformed").alias("reason"),
                    pl.col("_raw").alias("raw"),
                )
            )
        )

    def _update_users(self, kept: pl.DataFrame) -> None:
        latest = _latest(
            kept.select("userId", "event_time", "_row", "user_properties", "event_properties"),
            ["userId"],
        )
        users = (
            latest if self._users is None else _latest(pl.concat([self._users, latest]), ["userId"])
        )
        self._users = compacted(users)

    def _update_pairs(self, grouped: pl.DataFrame) -> None:
        latest = _latest(
            grouped.filter(pl.col("group_id").is_not_null()).select(
                "userId", pl.col("group_id").alias("groupId"), "event_time", "_row", "group_traits"
            ),
            ["userId", "groupId"],
        )
        pairs = latest if self._pairs is None else pl.concat([self._pairs, latest])
        self._pairs = compacted(_latest(pairs, ["userId", "groupId"]))

    def finish(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The identify and group records, after the last batch."""
        stamp = timestamp().alias("timestamp")
        if self._users is None or self._users.is_empty():
            identifies = pl.DataFrame(schema=IDENTIFIES_SCHEMA)
        else:
            identifies = self._users.sort(["event_time", "_row"]).select(
                "userId", user_traits_object(self.config).alias("traits"), stamp, "event_time"
            )
        if self._pairs is None or self._pairs.is_empty():
            groups = pl.DataFrame(schema=GROUPS_SCHEMA)
        else:
            groups = self._pairs.sort(["event_time", "_row"]).select(
                "groupId", "userId", pl.col("group_traits").alias("traits"), stamp, "event_time"
            )
        self.report.calls = {"identify": identifies.height, "group": groups.height}
        return identifies, groups

    @property
    def quarantine(self) -> pl.DataFrame:
        if not self._quarantine:
            return pl.DataFrame(schema=QUARANTINE_SCHEMA)
        return pl.concat(self._quarantine)


def apply_rules(
    events: pl.DataFrame | Iterable[pl.DataFrame],
    config: TransformConfig | None = None,
    *,
    strict: bool = False,
    keep_columns: list[str] | None = None,
) -> TransformResult:
    """Apply the rules to canonical event frames and return every output frame.

    ``events`` is a canonical frame (see :func:`accoil_transform.read_events`) or an
    iterable of them in input order; an iterable is consumed one batch at a time.
    ``keep_columns`` limits the track columns kept between batches (all by default).
    """
    t = Transformer(config or TransformConfig(), strict=strict)
    batches = [events] if isinstance(events, pl.DataFrame) else events
    parts = []
    for batch in batches:
        tracks = t.feed(batch)
        parts.append(tracks.select(keep_columns) if keep_columns else tracks)
    schema = {c: TRACKS_SCHEMA[c] for c in keep_columns} if keep_columns else TRACKS_SCHEMA
    tracks = pl.concat(parts) if parts else pl.DataFrame(schema=schema)
    identifies, groups = t.finish()
    t.report.calls["track"] = tracks.height
    return TransformResult(tracks, identifies, groups, t.quarantine, t.report)
