"""Groups: the candidates of each event, its primary group and ``groupTraits``.

Only events whose ``groups`` and ``group_properties`` are both present and not null take
part (``{}`` counts as present). Each (group type, id) pair is a candidate; candidates
sort by ``groupId`` (Unicode code point order, so ``"10"`` < ``"9"``), then by type, and
the first is the primary group. Its traits are ``group_properties[type][id]`` (``{}`` if
missing) plus ``"group_type": type``, which overrides a key of that name.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import polars as pl

from .._buffers import compacted
from .._json import (
    RISKY_NUMBER,
    dumps_exact,
    json_encode,
    jsonpath_key,
    loads_exact,
    patch_rows,
)

GROUPS_DTYPE = pl.Map(pl.String, pl.List(pl.String))
#: ``groupTraits`` of an event without a primary group.
EMPTY_GROUP_TRAITS = "[]"
_LOOKUP_KEYS = ["group_properties", "group_type", "group_id"]

#: Columns :func:`primary_groups` adds.
PRIMARY_GROUP_SCHEMA: dict[str, pl.DataType] = {
    "group_id": pl.String(),
    "group_type": pl.String(),
    "group_traits": pl.String(),
}


def decode_groups(groups_json: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Decode ``groups`` JSON text to ``Map(String, List(String))``, and count odd ids.

    A scalar value gives a one-id list, numbers become their decimal text and JSON
    nulls stay null (callers skip them). Text that is not a JSON object decodes to null.
    An id that is an object or a list is left out; the second series counts them per row.
    """
    try:
        decoded = groups_json.str.json_decode(GROUPS_DTYPE)
        return decoded, pl.Series(groups_json.name, [0] * groups_json.len(), pl.UInt32)
    except pl.exceptions.ComputeError:
        # Not an object, or values polars can't coerce (objects inside an id list):
        # decode row by row.
        rows = [_decode_groups_row(t) for t in groups_json.to_list()]
        return (
            pl.Series(groups_json.name, [ids for ids, _ in rows], GROUPS_DTYPE),
            pl.Series(groups_json.name, [odd for _, odd in rows], pl.UInt32),
        )


def _decode_groups_row(text: str | None) -> tuple[dict[str, list[str | None]] | None, int]:
    """The ids of one ``groups`` text by type, and how many ids were objects or lists."""
    if text is None:
        return None, 0
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, 0
    if not isinstance(value, dict):
        return None, 0
    out: dict[str, list[str | None]] = {}
    odd = 0
    for gtype, ids in value.items():
        kept = []
        for gid in ids if isinstance(ids, list) else [ids]:
            if isinstance(gid, dict | list):
                odd += 1
            else:
                kept.append(_id_text(gid))
        out[str(gtype)] = kept
    return out, odd


def _id_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return str(value)


def group_candidates(frame: pl.DataFrame, key: str = "_row") -> pl.DataFrame:
    """One row per (``key``, group type, group id) candidate of the ``groups`` JSON text.

    Rows with a null ``groups`` have no candidate.
    """
    return _candidates(frame, key)[0]


def _candidates(frame: pl.DataFrame, key: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The candidates of each ``groups`` text, and per ``key`` the ids that were not scalars."""
    schema: dict[str, pl.DataType] = {
        key: frame.schema[key],
        "group_type": pl.String(),
        "group_id": pl.String(),
    }
    eligible = frame.filter(pl.col("groups").is_not_null()).select(
        pl.col(key), pl.col("groups").alias("_groups")
    )
    if eligible.is_empty():
        return pl.DataFrame(schema=schema), pl.DataFrame(
            schema={key: schema[key], "odd": pl.UInt32}
        )
    decoded, odd = decode_groups(eligible["_groups"])
    candidates = (
        eligible.select(key, decoded.map.entries().alias("entry"))
        .explode("entry")
        .unnest("entry")
        .rename({"key": "group_type", "value": "group_id"})
        .explode("group_id")
        .filter(pl.col("group_id").is_not_null() & pl.col("group_type").is_not_null())
        .select(key, "group_type", "group_id")
    )
    return candidates, eligible.select(key, odd.alias("odd"))


_TEXTS = ["groups", "group_properties"]

# JSON grammar for ONE_GROUP: strings, scalars, and arrays of scalars.
_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_SCALAR = _STRING + r"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null"
_VALUE = rf"(?:{_SCALAR}|\[(?:(?:{_SCALAR})(?:,(?:{_SCALAR}))*)?\])"
_MEMBER = rf"{_STRING}:{_VALUE}"
_KEY = r'[^"\\\x00-\x1f]*'
_KEY_ESCAPES = r'["\\\x00-\x1f]'
#: ``group_properties`` of one group type holding one id, written compactly, whose traits
#: are a flat object (values are scalars or arrays of scalars): the form of almost every
#: event. The pattern is JSON grammar, so a text it matches is valid JSON of exactly this
#: structure, with keys that need no escapes, and the traits are the text between
#: ``{"type":{"id":`` and the last ``}}``, exactly as written.
ONE_GROUP = rf'^\{{"{_KEY}":\{{"{_KEY}":\{{(?:{_MEMBER}(?:,{_MEMBER})*)?\}}\}}\}}$'


def _key_has(pattern: str, *, literal: bool = False) -> pl.Expr:
    """Whether the candidate's group type or id contains ``pattern``."""
    return pl.col("group_type").str.contains(pattern, literal=literal) | pl.col(
        "group_id"
    ).str.contains(pattern, literal=literal)


#: A candidate whose type or id polars' JSONPath can't select: one with a backslash, or
#: with two quotes or more (its parser fails on ``['O\\'Brien\\'s']``).
_NOT_JSONPATH = _key_has(r"(?s)\\|'.*'")


def resolve_group_texts(texts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every candidate, and the primary group, of each distinct text pair of ``texts``.

    ``texts`` has ``groups`` and ``group_properties`` (JSON text) and a key column
    ``_pid``. The first frame has one row per (``_pid``, candidate): ``group_type``,
    ``group_id`` and ``traits``, the JSON object at ``group_properties[type][id]`` (null
    when there is none). The second has one row per ``_pid``: the primary group's
    ``group_id``, ``group_type`` and ``group_traits`` (null without a candidate),
    ``groupTraits``, the track field built from them (``[]`` without a candidate), and
    ``odd_ids``, the ids that were objects or lists.
    """
    candidates, odd = _candidates(texts.select("groups").unique(), key="groups")
    pairs = (
        texts.lazy()
        .select(
            "_pid",
            *_TEXTS,
            _one=pl.col("group_properties").str.contains(ONE_GROUP).fill_null(False),
        )
        .join(candidates.lazy(), on="groups", how="inner")
    )
    # A text of one group: the candidate's traits are a slice of it, exactly as written
    # (a type or id that would need escapes in JSON can't be the one it names).
    plain = ~_key_has(_KEY_ESCAPES)
    prefix = pl.concat_str(
        pl.lit('{"'), pl.col("group_type"), pl.lit('":{"'), pl.col("group_id"), pl.lit('":')
    )
    text = pl.col("group_properties")
    columns = ["_pid", *_TEXTS, "group_type", "group_id"]
    sliced = pairs.filter("_one").select(
        *columns,
        _exact=pl.lit(False),  # a slice is the text as written
        _traits=pl.when(plain & text.str.starts_with(prefix)).then(
            text.str.strip_prefix(prefix).str.strip_suffix("}}")
        ),
    )
    # Any other text: a JSONPath lookup, the costly step, once per candidate (common
    # subexpression) and on all cores; the test for numbers a double may not hold runs
    # on these rows only. polars' JSONPath can't select a key with a backslash or with
    # more than one quote: :func:`_lookup_exactly` reads those (and the risky ones).
    path = pl.lit("$") + jsonpath_key(pl.col("group_type")) + jsonpath_key(pl.col("group_id"))
    traits = pl.col("group_properties").str.json_path_match(path)
    others = pairs.filter(~pl.col("_one"))
    parsed = others.filter(~_NOT_JSONPATH).select(
        *columns,
        _exact=pl.col("group_properties").str.contains(RISKY_NUMBER),
        _traits=pl.when(traits.str.starts_with("{")).then(traits),
    )
    unparsed = others.filter(_NOT_JSONPATH).select(
        *columns, _exact=True, _traits=pl.lit(None, pl.String)
    )
    looked_up = pl.concat([sliced, parsed, unparsed]).collect().pipe(_lookup_exactly)
    first = (
        looked_up.sort(["_pid", "group_id", "group_type"])
        .unique("_pid", keep="first", maintain_order=False)
        .pipe(add_group_type)
        .select("_pid", *PRIMARY_GROUP_SCHEMA)
    )
    primaries = (
        texts.select("_pid", "groups")
        .join(first, on="_pid", how="left")
        .join(odd, on="groups", how="left")
        .select(
            "_pid",
            *PRIMARY_GROUP_SCHEMA,
            groupTraits=group_traits_json(pl.col("group_id"), pl.col("group_traits")),
            odd_ids=pl.col("odd").fill_null(0),
        )
    )
    return looked_up.select("_pid", "group_type", "group_id", traits="_traits"), primaries


def pair_hash() -> pl.Expr:
    """A hash of the two texts (only a shortcut: matches are then compared as text).

    Each text is hashed on its own: hashing them as a struct would first copy both
    into a row encoding, three times the cost.
    """
    return pl.col("groups").hash(seed=1) ^ pl.col("group_properties").hash(seed=2)


class GroupResolver:
    """Resolves (``groups``, ``group_properties``) text pairs, remembering them when
    that pays.

    How a batch is resolved depends on how often its text pairs repeat:

    * *remembered*: the events of one account usually carry the same ``groups`` and
      ``group_properties`` text hour after hour, so each pair is decoded and looked up
      once per run. Events find their pair by a hash of the two texts, and the texts
      are then compared, so a hash collision costs time, never a wrong group. At most
      ``max_texts`` pairs are kept: past that, the memory starts again from the
      current batch (only speed changes).
    * *direct*: when a batch has more distinct pairs than ``repeat_ratio`` of its rows
      (a trait that changes on every event: a counter, a last-seen time), finding and
      remembering pairs would cost more than it saves, so each row is resolved on its
      own and nothing is kept.
    """

    def __init__(
        self,
        max_texts: int = 100_000,
        *,
        hash_texts: Callable[[], pl.Expr] = pair_hash,
        repeat_ratio: float = 0.5,
    ) -> None:
        self.max_texts = max_texts
        self.repeat_ratio = repeat_ratio
        self._hash = hash_texts
        self._next_pid = 0
        #: Whether the last :meth:`pair_ids` gave each row a pair id of its own.
        self.direct = False
        empty = pl.DataFrame(schema={"_pid": pl.UInt64, **dict.fromkeys(_TEXTS, pl.String)})
        self._texts = empty.with_columns(_h=pl.lit(0, pl.UInt64))
        self.candidates, self.primaries = resolve_group_texts(empty)

    def __repr__(self) -> str:
        return f"GroupResolver(known={self._texts.height}, max_texts={self.max_texts})"

    def pair_ids(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``_row`` and ``_pid`` of each row of ``frame`` that has both texts.

        ``_pid`` names the row's text pair in :attr:`candidates` and :attr:`primaries`
        (valid until the next call).
        """
        eligible = frame.filter(
            pl.col("groups").is_not_null() & pl.col("group_properties").is_not_null()
        ).select("_row", *_TEXTS, _h=self._hash())
        self.direct = bool(
            eligible.height and eligible["_h"].n_unique() > self.repeat_ratio * eligible.height
        )
        if self.direct:
            return self._resolve_each_row(eligible)
        found = self._match(eligible)
        missing = eligible.join(found.select("_row"), on="_row", how="anti")
        if missing.is_empty():
            return found
        new = missing.select(_TEXTS).unique()
        if self._texts.height + new.height > self.max_texts:
            # Start again from this batch: every row of it is new now.
            self._forget()
            found, missing = found.clear(), eligible
            new = eligible.select(_TEXTS).unique()
        new = new.with_columns(self._new_pids(new.height), _h=self._hash())
        candidates, primaries = resolve_group_texts(new)
        self._texts = pl.concat([self._texts, compacted(new.select(self._texts.columns))])
        self.candidates = pl.concat([self.candidates, compacted(candidates)])
        self.primaries = pl.concat([self.primaries, compacted(primaries)])
        return pl.concat([found, self._match(missing)])

    def _resolve_each_row(self, eligible: pl.DataFrame) -> pl.DataFrame:
        """The direct way: a pair id per row, nothing remembered."""
        self._forget()
        rows = eligible.select("_row", *_TEXTS).with_columns(self._new_pids(eligible.height))
        self.candidates, self.primaries = resolve_group_texts(rows.drop("_row"))
        return rows.select("_row", "_pid")

    def _new_pids(self, n: int) -> pl.Series:
        """``n`` pair ids never given before."""
        start, self._next_pid = self._next_pid, self._next_pid + n
        return pl.int_range(start, start + n, dtype=pl.UInt64, eager=True).alias("_pid")

    def _forget(self) -> None:
        self._texts = self._texts.clear()
        self.candidates, self.primaries = self.candidates.clear(), self.primaries.clear()

    def primary_groups(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Each event's primary group; see :func:`primary_groups`. Also ``groupTraits``."""
        return (
            self.pair_ids(frame)
            .join(self.primaries, on="_pid", how="inner")
            .filter(pl.col("group_id").is_not_null())
            .select("_row", *PRIMARY_GROUP_SCHEMA, "groupTraits")
        )

    def _match(self, events: pl.DataFrame) -> pl.DataFrame:
        """``_row`` and ``_pid`` of the events whose texts are known."""
        known = self._texts.rename({t: f"_known_{t}" for t in _TEXTS})
        return (
            events.join(known, on="_h", how="inner")
            .filter(*[pl.col(t) == pl.col(f"_known_{t}") for t in _TEXTS])
            .select("_row", "_pid")
        )


def primary_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """Each event's primary group: ``_row``, ``group_id``, ``group_type``, ``group_traits``.

    ``frame`` needs ``_row`` (unique), ``groups`` and ``group_properties`` (JSON text).
    Events with no candidate are absent from the result.

    The events of one account mostly carry the same ``groups`` and ``group_properties``
    text, so the work (decoding, sorting candidates, the JSONPath lookup) is done once
    per distinct pair of texts and joined back to the events.
    """
    return GroupResolver().primary_groups(frame).select("_row", *PRIMARY_GROUP_SCHEMA)


def _lookup_exactly(lookups: pl.DataFrame) -> pl.DataFrame:
    """Re-read, with a JSON parser, the traits JSONPath can't give exactly.

    Those are the rows marked ``_exact``: a type or id that JSONPath can't select
    (:data:`_NOT_JSONPATH`), or ``group_properties`` holding a number a double may not
    hold exactly.
    """
    mask = pl.col("_exact")

    def traits_of(text: str | None, gtype: str, gid: str) -> str | None:
        by_type = loads_exact(text) if text else None
        by_id = by_type.get(gtype) if isinstance(by_type, dict) else None
        entry = by_id.get(gid) if isinstance(by_id, dict) else None
        return dumps_exact(entry) if isinstance(entry, dict) else None

    return patch_rows(lookups, mask, "_traits", traits_of, _LOOKUP_KEYS)


def with_group_type(traits: pl.Expr, group_type: pl.Expr) -> pl.Expr:
    """Add ``"group_type"`` to a traits object given as compact JSON text (null means ``{}``).

    Objects that already have a ``group_type`` key are left for
    :func:`_override_group_type_keys`, which replaces the value exactly.
    """
    member = pl.lit('"group_type":') + json_encode(group_type)
    empty = traits.is_null() | (traits == "{}")
    return (
        pl.when(empty)
        .then(pl.lit("{") + member + pl.lit("}"))
        .otherwise(traits.str.strip_suffix("}") + pl.lit(",") + member + pl.lit("}"))
    )


def add_group_type(frame: pl.DataFrame) -> pl.DataFrame:
    """``group_traits``: the ``_traits`` object (null means ``{}``) plus
    ``"group_type": group_type``, which replaces a key of that name; null without a
    ``group_id``."""
    return frame.with_columns(
        group_traits=pl.when(pl.col("group_id").is_not_null()).then(
            with_group_type(pl.col("_traits"), pl.col("group_type"))
        )
    ).pipe(_override_group_type_keys)


def _override_group_type_keys(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose traits already carry ``group_type``: set it to the group's type.

    Rare in practice, so these few rows are rebuilt with a JSON parser.
    """
    return patch_rows(
        frame,
        pl.col("_traits").str.contains('"group_type"', literal=True),
        "group_traits",
        lambda traits, gtype: dumps_exact({**loads_exact(traits), "group_type": gtype}),
        ["_traits", "group_type"],
    )


def group_traits_json(group_id: pl.Expr, traits: pl.Expr) -> pl.Expr:
    """The ``groupTraits`` field: ``[{"groupId", "traits"}]``, or ``[]`` without a group."""
    one = (
        pl.lit('[{"groupId":')
        + json_encode(group_id)
        + pl.lit(',"traits":')
        + traits
        + pl.lit("}]")
    )
    return pl.when(group_id.is_not_null()).then(one).otherwise(pl.lit(EMPTY_GROUP_TRAITS))
