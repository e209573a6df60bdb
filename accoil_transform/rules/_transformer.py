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
from ._groups import EMPTY_GROUP_TRAITS, GroupResolver, add_group_type
from ._map import event_name, identify_traits, properties_object, property_value, timestamp
from ._report import TransformReport
from ._select import GROUP_IDENTIFY, IDENTIFY, dedup_key, place, user_id

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
#: ``userId`` is null for an account-only group (one a ``$groupidentify`` row names that
#: is no pair's primary group).
GROUPS_SCHEMA: dict[str, pl.DataType] = {
    "groupId": pl.String(),
    "userId": pl.String(),
    "traits": pl.String(),
    "timestamp": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
    "groupType": pl.String(),
}
#: What :meth:`Transformer.group_knowledge` gives.
GROUP_FACTS_SCHEMA: dict[str, pl.DataType] = {
    "fact": pl.String(),
    "group_type": pl.String(),
    "group_id": pl.String(),
    "event_time": pl.Datetime("us", "UTC"),
    "_row": pl.UInt64(),
    "traits": pl.String(),
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
        identifies: one row per distinct userId of the kept events and ``$identify`` rows.
        groups: one row per distinct (userId, primary groupId) pair, then one per
            account-only group (``userId`` null).
        quarantine: the malformed rows: source, line, reason and the raw text.
        report: counts of rows read, kept, and dropped by reason.
    """

    tracks: pl.DataFrame
    identifies: pl.DataFrame
    groups: pl.DataFrame
    quarantine: pl.DataFrame
    report: TransformReport


#: Slots of a user's state: the latest row (its time), the latest ``user_properties``
#: object, then one slot per additional property (``_FIRST_PROPERTY + i``).
_LATEST_ROW, _USER_PROPERTIES, _FIRST_PROPERTY = 0, 1, 2


def _merged(state: pl.DataFrame | None, batch: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """The latest row per key of ``state`` and ``batch``, copied out of the batch.

    ``state`` holds one row per key already, so only the batch is sorted: a key's batch
    row replaces its state row when it is later (a join). Sorting the state with the
    batch each time cost more than the batch itself once users roam between accounts.
    """
    latest = _latest(batch, by)
    if state is None:
        return compacted(latest)
    time = pl.col("event_time").dt.epoch("us").fill_null(_OLDEST)  # a null time is oldest
    held = state.select(*by, _time=time, _row_held="_row")
    later = (time > pl.col("_time")) | (
        (time == pl.col("_time")) & (pl.col("_row") > pl.col("_row_held"))
    )
    newer = (
        latest.join(held, on=by, how="left", nulls_equal=True)
        .filter(pl.col("_time").is_null() | later)
        .select(state.columns)
    )
    if newer.is_empty():
        return state
    kept = state.join(newer.select(by), on=by, how="anti", nulls_equal=True)
    # Compacted whole: kept rows are views into earlier states' text, which would keep
    # the text of every replaced row alive.
    return compacted(pl.concat([kept, newer]))


_OLDEST = -(2**63)


@dataclass
class Transformer:
    """Incremental transform over canonical batches with bounded state.

    Call :meth:`feed` with each canonical frame in input order; it returns that
    batch's track records. :meth:`finish` returns the identify and group records.
    State between batches: the dedup keys seen; per user, the latest row, ``user_properties``
    object and value of each additional property; per group (type and id), its latest
    traits; per (user, group) pair, its latest event; the groups named by
    ``$groupidentify`` rows and the primary groups seen.
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
    #: Whether to keep what identify and group records need: per user, per (user, group)
    #: pair and each group's latest traits. A format of track calls only does without
    #: them; :meth:`finish` then gives no identify records and group records only for
    #: the groups ``$groupidentify`` rows name and no event has (counted as skipped).
    identify_and_group: bool = True
    #: Resolves groups; it remembers the (groups, group_properties) texts it saw.
    resolver: GroupResolver = field(default_factory=GroupResolver, repr=False)
    _users: pl.DataFrame | None = field(default=None, repr=False)
    _group_traits: pl.DataFrame | None = field(default=None, repr=False)
    _pairs: pl.DataFrame | None = field(default=None, repr=False)
    _named: pl.DataFrame | None = field(default=None, repr=False)
    _primaries: pl.DataFrame | None = field(default=None, repr=False)
    _quarantine: list[pl.DataFrame] = field(default_factory=list, repr=False)
    _event_types: set[str] = field(default_factory=set, repr=False)

    def json_columns_needed(self) -> frozenset[str]:
        """The nested JSON columns this transformer reads (for ``read_events(only_needed=)``)."""
        return self.config.json_columns_needed(user_traits=self.identify_and_group)

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
        frame = frame.with_columns(_reason=place(cfg, duplicate=duplicate))
        if cfg.include_events or cfg.exclude_events:
            self._event_types.update(frame["event_type"].drop_nulls().unique().to_list())
        self._remember_keys(frame)
        self._account(frame)

        kept = pl.col("_reason").is_null()
        trait = pl.col("_reason") == "trait_rows"
        account_rows = frame.filter(kept | (trait & (pl.col("event_type") == GROUP_IDENTIFY)))
        user_rows = frame.filter(kept | (trait & (pl.col("event_type") == IDENTIFY)))
        pairs = self._update_groups(account_rows)

        events = frame.filter(kept)
        grouped = events.join(pairs, on="_row", how="left").join(
            self.resolver.primaries, on="_pid", how="left"
        )
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
        if self.identify_and_group:
            self._update_users(user_rows)
        self._update_pairs(tracks)
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
            elif reason == "trait_rows":
                self.report.trait_rows += n
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

    def _update_groups(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Learn each group's latest traits and the groups ``$groupidentify`` rows name,
        from the kept events and ``$groupidentify`` rows; return their ``_row`` and
        ``_pid`` (the resolver's name of their text pair)."""
        odd_groups = rows.select(
            (pl.col("groups").is_not_null() & ~pl.col("groups").str.starts_with("{")).sum()
        ).item()
        self.report.count_odd("groups_not_object", odd_groups)
        pairs = self.resolver.pair_ids(rows)
        rows = rows.join(pairs, on="_row", how="inner").select(
            "_row", "event_time", "_pid", named=pl.col("event_type") == GROUP_IDENTIFY
        )
        odd_ids = rows.join(self.resolver.primaries, on="_pid").select(pl.col("odd_ids").sum())
        self.report.count_odd("group_id_not_scalar", odd_ids.item() or 0)

        candidates = self.resolver.candidates
        if self.identify_and_group:
            self._learn_traits(rows, candidates)
        named = (
            _latest(rows.filter("named"), ["_pid"])
            .join(candidates, on="_pid")
            .select("group_type", "group_id", "event_time", "_row")
        )
        if not named.is_empty():
            self._named = _merged(self._named, named, ["group_type", "group_id"])
        return pairs

    def _learn_traits(self, rows: pl.DataFrame, candidates: pl.DataFrame) -> None:
        """Each group's latest traits, from ``rows``' pair ids and their candidates."""
        # A text pair always gives the same traits: its latest row stands for all.
        known = (
            (rows if self.resolver.direct else _latest(rows, ["_pid"]))
            .join(candidates.filter(pl.col("traits").is_not_null()), on="_pid")
            .select("group_type", "group_id", "event_time", "_row", "traits")
        )
        if not known.is_empty():
            self._group_traits = _merged(self._group_traits, known, ["group_type", "group_id"])

    def _update_users(self, rows: pl.DataFrame) -> None:
        """Per user, the latest row, ``user_properties`` object and property values."""
        base = ["userId", "event_time", "_row"]
        slots = [
            rows.select(*base, slot=pl.lit(_LATEST_ROW), value=pl.lit(None, pl.String)),
            rows.filter(pl.col("user_properties").str.starts_with("{")).select(
                *base, slot=pl.lit(_USER_PROPERTIES), value="user_properties"
            ),
        ]
        for i, ref in enumerate(self.config.property_refs):
            slots.append(
                rows.select(
                    *base, slot=pl.lit(_FIRST_PROPERTY + i), value=property_value(ref)
                ).filter(pl.col("value").is_not_null())
            )
        self._users = _merged(self._users, pl.concat(slots), ["userId", "slot"])

    def _update_pairs(self, tracks: pl.DataFrame) -> None:
        grouped = tracks.filter(pl.col("groupId").is_not_null())
        if grouped.is_empty():
            return
        if self.identify_and_group:
            self._pairs = _merged(
                self._pairs,
                grouped.select("userId", "groupId", "groupType", "event_time", "_row"),
                ["userId", "groupId"],
            )
        primaries = grouped.select("groupType", "groupId").unique()
        if self._primaries is not None:
            primaries = pl.concat([self._primaries, primaries]).unique()
        self._primaries = compacted(primaries)

    def unmatched_event_types(self) -> list[str]:
        """Names in the include and exclude lists that no row had, so far."""
        listed = (*self.config.include_events, *self.config.exclude_events)
        return [name for name in listed if name not in self._event_types]

    def group_knowledge(self) -> pl.DataFrame:
        """What the rows fed so far tell about groups, for engines that split the input
        (Spark): one row per fact, ``fact`` being ``traits`` (a group's latest traits),
        ``named`` (named by a ``$groupidentify`` row) or ``primary`` (some event's primary
        group), with ``group_type``, ``group_id``, ``event_time``, ``_row`` and ``traits``.
        Combine the facts of every part with :meth:`learn_groups`."""
        parts = []
        if self._group_traits is not None:
            parts.append(self._group_traits.with_columns(fact=pl.lit("traits")))
        if self._named is not None:
            parts.append(self._named.with_columns(fact=pl.lit("named")))
        if self._primaries is not None:
            parts.append(
                self._primaries.rename(
                    {"groupType": "group_type", "groupId": "group_id"}
                ).with_columns(fact=pl.lit("primary"))
            )
        columns = {**GROUP_FACTS_SCHEMA}
        if not parts:
            return pl.DataFrame(schema=columns)
        return pl.concat(parts, how="diagonal_relaxed").select(
            pl.col(name).cast(dtype) for name, dtype in columns.items()
        )

    def learn_groups(self, facts: pl.DataFrame) -> None:
        """Take in group facts (:meth:`group_knowledge`) learnt from other parts of the input."""
        for fact, attribute, key in (
            ("traits", "_group_traits", ["group_type", "group_id"]),
            ("named", "_named", ["group_type", "group_id"]),
        ):
            rows = facts.filter(pl.col("fact") == fact).drop("fact")
            if fact == "named":
                rows = rows.drop("traits")
            if not rows.is_empty():
                setattr(self, attribute, _merged(getattr(self, attribute), rows, key))
        primaries = (
            facts.filter(pl.col("fact") == "primary")
            .select(groupType="group_type", groupId="group_id")
            .unique()
        )
        if not primaries.is_empty():
            if self._primaries is not None:
                primaries = pl.concat([self._primaries, primaries]).unique()
            self._primaries = compacted(primaries)

    def finish(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The identify and group records, after the last batch."""
        identifies = self._identifies()
        groups = self._groups()
        self.report.calls = {"identify": identifies.height, "group": groups.height}
        return identifies, groups

    def _identifies(self) -> pl.DataFrame:
        if self._users is None or self._users.is_empty():
            return pl.DataFrame(schema=IDENTIFIES_SCHEMA)
        users = self._users
        latest = users.filter(pl.col("slot") == _LATEST_ROW).select("userId", "event_time", "_row")
        by_slot = users.filter(pl.col("slot") != _LATEST_ROW).pivot(
            "slot", index="userId", values="value"
        )
        names = {str(_USER_PROPERTIES): "user_properties"} | {
            str(_FIRST_PROPERTY + i): f"_p{i}" for i in range(len(self.config.property_refs))
        }
        columns = by_slot.rename({k: v for k, v in names.items() if k in by_slot.columns})
        merged = latest.join(columns, on="userId", how="left").sort(["event_time", "_row"])
        properties = [
            merged[f"_p{i}"] if f"_p{i}" in merged.columns else None
            for i in range(len(self.config.property_refs))
        ]
        up = merged["user_properties"] if "user_properties" in merged.columns else None
        return merged.select(
            "userId",
            identify_traits(merged.height, up, properties, self.config).alias("traits"),
            timestamp().alias("timestamp"),
            "event_time",
        )

    def _groups(self) -> pl.DataFrame:
        """Group records of (user, group) pairs, then account-only ones."""
        parts = []
        if self._pairs is not None:
            parts.append(self._pairs.rename({"groupId": "group_id", "groupType": "group_type"}))
        if self._named is not None:
            named = self._named
            if self._primaries is not None:
                named = named.join(
                    self._primaries,
                    left_on=["group_type", "group_id"],
                    right_on=["groupType", "groupId"],
                    how="anti",
                )
            parts.append(named.with_columns(userId=pl.lit(None, pl.String)))
        if not parts:
            return pl.DataFrame(schema=GROUPS_SCHEMA)
        records = pl.concat(
            [p.select("userId", "group_type", "group_id", "event_time", "_row") for p in parts]
        )
        if self._group_traits is not None:
            known = self._group_traits.select("group_type", "group_id", _traits="traits")
            records = records.join(known, on=["group_type", "group_id"], how="left")
        else:
            records = records.with_columns(_traits=pl.lit(None, pl.String))
        return (
            records.pipe(add_group_type)
            .sort(["event_time", "_row"])
            .select(
                pl.col("group_id").alias("groupId"),
                "userId",
                pl.col("group_traits").alias("traits"),
                timestamp().alias("timestamp"),
                "event_time",
                pl.col("group_type").alias("groupType"),
            )
        )

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
    known_groups: pl.DataFrame | None = None,
) -> TransformResult:
    """Apply the rules to canonical event frames and return every output frame.

    ``events`` is a canonical frame (see :func:`accoil_transform.read_events`) or an
    iterable of them in input order; an iterable is consumed one batch at a time.
    ``keep_columns`` limits the track columns kept between batches (all by default).
    ``known_groups`` are group facts learnt from other parts of the input
    (:meth:`Transformer.group_knowledge`).
    """
    t = Transformer(config or TransformConfig(), strict=strict)
    if known_groups is not None:
        t.learn_groups(known_groups)
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
