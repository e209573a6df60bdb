"""Bring any event table to the canonical frame (:mod:`._schema`).

Handles what warehouse extracts do differently from the Export API: column names in any
case, ``$insert_id`` spelled ``_insert_id`` or ``insert_id``, nested columns as JSON
text or as nested types, and times as strings or datetimes.
"""

from __future__ import annotations

import polars as pl

from .._json import to_json_text
from ..config import JSON_COLUMNS, TransformConfig
from ..errors import InputError
from ._schema import CANONICAL_SCHEMA, UTC_DATETIME, canonical_name

#: The Export API's own shape ("2026-11-24 09:59:58.880000"): polars parses a fixed-width
#: format like this one on a fast path, about eight times faster than a general format.
_EXPORT_FORMAT = "%Y-%m-%d %H:%M:%S.%6f"
_NAIVE_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"
_ZONED_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"

_TEXT_TYPES = (pl.String, pl.Categorical, pl.Enum)


def parse_event_time(expr: pl.Expr) -> pl.Expr:
    """Parse Amplitude/warehouse time strings to UTC datetimes (null where unparseable).

    Accepts a space or ``T`` separator, 0 to 9 fractional digits, and an optional ``Z``
    or ``±HH:MM`` offset. A time with no zone is UTC.
    """
    # Times in the export's own shape take the fast path; only the others (nulls there)
    # go through the general formats. No parse cache: event times are nearly all distinct.
    exact = expr.str.strptime(pl.Datetime("us"), _EXPORT_FORMAT, strict=False, cache=False)
    text = pl.when(exact.is_null()).then(expr).str.strip_chars().str.replace(" ", "T", literal=True)
    naive = text.str.strptime(pl.Datetime("us"), _NAIVE_FORMAT, strict=False, cache=False)
    zoned = text.str.strptime(UTC_DATETIME, _ZONED_FORMAT, strict=False, cache=False)
    return pl.coalesce(pl.coalesce(exact, naive).dt.replace_time_zone("UTC"), zoned)


def _time_to_utc(col: str, dtype: pl.DataType, source: str) -> pl.Expr:
    if isinstance(dtype, _TEXT_TYPES):
        return parse_event_time(pl.col(col).cast(pl.String))
    if isinstance(dtype, pl.Datetime):
        as_us = pl.col(col).dt.cast_time_unit("us")
        if dtype.time_zone is None:
            return as_us.dt.replace_time_zone("UTC")
        return as_us.dt.convert_time_zone("UTC")
    if isinstance(dtype, pl.Date):
        return pl.col(col).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    raise InputError(
        source,
        f"column {col!r} has type {dtype}; expected a time string "
        "(e.g. '2026-11-24 09:59:58.880000') or a datetime",
    )


def _text(col: str, dtype: pl.DataType, source: str, *, what: str) -> pl.Expr:
    if isinstance(dtype, _TEXT_TYPES):
        return pl.col(col).cast(pl.String)
    if dtype.is_float():
        # An integer id column with nulls often arrives as floats: 12345.0 is "12345".
        whole = pl.col(col) == pl.col(col).floor()
        return (
            pl.when(whole & pl.col(col).is_finite())
            .then(pl.col(col).cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(pl.col(col).cast(pl.String))
        )
    if dtype.is_numeric() or isinstance(dtype, pl.Boolean):
        return pl.col(col).cast(pl.String)
    if isinstance(dtype, pl.Null):
        return pl.col(col).cast(pl.String)
    raise InputError(source, f"column {col!r} has type {dtype}; expected {what}")


def _string(col: str, dtype: pl.DataType, source: str) -> pl.Expr:
    if isinstance(dtype, (*_TEXT_TYPES, pl.Null)):
        return pl.col(col).cast(pl.String)
    raise InputError(source, f"column {col!r} has type {dtype}; expected a string")


def _canonical_columns(schema: pl.Schema) -> list[pl.Expr]:
    """One expression per canonical column; several spellings of one column are coalesced.

    ``$insert_id`` is preferred over ``_insert_id`` and ``insert_id``, and an exact
    lower-case name over other spellings.
    """
    spellings: dict[str, list[str]] = {}
    for col in schema.names():
        spellings.setdefault(canonical_name(col), []).append(col)
    exprs = []
    for name, cols in spellings.items():
        if len(cols) == 1:
            exprs.append(pl.col(cols[0]).alias(name))
            continue
        cols.sort(key=lambda c: (c.lower() != "$insert_id", c != name))
        same_type = len({schema[c] for c in cols}) == 1
        parts = [pl.col(c) if same_type else pl.col(c).cast(pl.String) for c in cols]
        exprs.append(pl.coalesce(parts).alias(name))
    return exprs


def normalize_frame(
    frame: pl.DataFrame | pl.LazyFrame,
    config: TransformConfig,
    *,
    source: str,
    first_row: int = 0,
    lines: pl.Series | None = None,
    sources: pl.Series | None = None,
    first_line: int = 1,
) -> pl.DataFrame:
    """Return ``frame`` as a canonical event frame.

    ``first_row`` numbers rows globally across inputs (the ``_row`` column, used for
    "first occurrence in input order"). ``lines`` gives each row's 1-based line in
    ``source``; by default rows are numbered from ``first_line``. ``sources`` names each row's
    source when the rows come from several (``source`` then names them in errors).

    Raises:
        InputError: a required column is missing or has a type that can't be events.
    """
    lf = frame.lazy()
    try:
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InputError(source, f"not a readable table ({exc})") from None
    lf = lf.select(_canonical_columns(schema))
    schema = lf.collect_schema()

    uid = config.user_id_ref
    required = ["event_type", "event_time"]
    if uid.scope == "column":
        required.append(uid.name.lower())
    else:
        required.append(uid.scope or "user_properties")
    missing = [c for c in required if c not in schema]
    if missing:
        raise InputError(
            source,
            f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(schema.names()) or 'no columns'}",
        )

    def text_or_null(name: str, what: str) -> pl.Expr:
        if name not in schema:
            return pl.lit(None, dtype=pl.String)
        return _text(name, schema[name], source, what=what)

    def json_or_null(name: str) -> pl.Expr:
        if name not in schema:
            return pl.lit(None, dtype=pl.String)
        try:
            return to_json_text(pl.col(name), schema[name])
        except TypeError:
            raise InputError(
                source,
                f"column {name!r} has type {schema[name]}; expected a JSON object "
                "(as JSON text, a struct or a map)",
            ) from None

    uid_col = uid.name.lower() if uid.scope == "column" else "user_id"
    n_rows = pl.int_range(pl.len(), dtype=pl.UInt64)
    line = pl.lit(lines) if lines is not None else (n_rows.cast(pl.Int64) + first_line)
    event_time_raw = (
        pl.col("event_time").cast(pl.String)
        if isinstance(schema["event_time"], _TEXT_TYPES)
        else pl.lit(None, dtype=pl.String)
    )

    out = lf.select(
        (n_rows + first_row).alias("_row"),
        (pl.lit(sources) if sources is not None else pl.lit(source, dtype=pl.String)).alias(
            "_source"
        ),
        line.alias("_line"),
        pl.col("_malformed").cast(pl.String)
        if "_malformed" in schema
        else pl.lit(None, pl.String).alias("_malformed"),
        pl.col("_raw").cast(pl.String)
        if "_raw" in schema
        else pl.lit(None, pl.String).alias("_raw"),
        text_or_null("uuid", "a string").alias("uuid"),
        text_or_null("insert_id", "a string").alias("insert_id"),
        text_or_null("device_id", "a string").alias("device_id"),
        text_or_null(uid_col, "a user id (string or number)").alias("user_id"),
        _string("event_type", schema["event_type"], source).alias("event_type"),
        _time_to_utc("event_time", schema["event_time"], source).alias("event_time"),
        event_time_raw.alias("_event_time_raw"),
        *[json_or_null(c).alias(c) for c in JSON_COLUMNS],
    )
    canonical = (
        out.with_columns(_malformed=pl.coalesce(pl.col("_malformed"), _malformed_reason()))
        .select(list(CANONICAL_SCHEMA))
        .cast(CANONICAL_SCHEMA)  # type: ignore[arg-type]
        .collect()
    )
    canonical = _objects_from_json_strings(canonical)
    if "_raw" not in schema:  # a table: a malformed row is quarantined as its JSON
        canonical = _with_original_rows(canonical, frame, first_row)
    return canonical


def _objects_from_json_strings(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested values written as a JSON string holding JSON text of an object (what
    warehouse extracts and loaders write for VARIANT/JSON/SUPER columns), as that object.

    Other strings are left as they are (they are not objects, and the rules treat them so).
    """
    fixed = []
    for name in JSON_COLUMNS:
        column = frame[name]
        rows = column.str.starts_with('"').fill_null(False).arg_true()
        if rows.is_empty():
            continue
        texts = column.gather(rows).str.json_decode(pl.String)
        objects = texts.str.strip_chars().str.starts_with("{").fill_null(False)
        rows, texts = rows.filter(objects), texts.filter(objects)
        if not rows.is_empty():
            fixed.append(column.scatter(rows, texts.str.strip_chars()))
    return frame.with_columns(fixed) if fixed else frame


def _with_original_rows(
    canonical: pl.DataFrame, frame: pl.DataFrame | pl.LazyFrame, first_row: int
) -> pl.DataFrame:
    """``_raw`` of each malformed row of a table: the input row, all its columns, as JSON."""
    bad = canonical.select((pl.col("_row") - first_row).alias("_i"), "_malformed").filter(
        pl.col("_malformed").is_not_null()
    )
    if bad.is_empty():
        return canonical
    rows = (
        frame.lazy()
        .with_row_index("_i")
        .filter(pl.col("_i").is_in(bad["_i"].cast(pl.UInt32).implode()))
        .select(
            (pl.col("_i").cast(pl.UInt64) + first_row).alias("_row"),
            pl.struct(pl.all().exclude("_i")).struct.json_encode().alias("_original"),
        )
        .collect()
    )
    return (
        canonical.join(rows, on="_row", how="left", maintain_order="left")
        .with_columns(_raw=pl.coalesce("_raw", "_original"))
        .drop("_original")
    )


def _malformed_reason() -> pl.Expr:
    """Why a parsed row still can't be an event (null when it can)."""
    return (
        pl.when(pl.col("event_type").is_null())
        .then(pl.lit("missing required field event_type"))
        .when(pl.col("event_type").str.strip_chars() == "")
        .then(pl.lit("event_type: expected a non-empty string, got ") + pl.col("event_type"))
        .when(pl.col("event_time").is_null() & pl.col("_event_time_raw").is_null())
        .then(pl.lit("missing required field event_time"))
        .when(pl.col("event_time").is_null())
        .then(
            pl.lit("event_time: expected a time like '2026-11-24 09:59:58.880000', got ")
            + pl.col("_event_time_raw").str.slice(0, 60)
        )
    )


def empty_canonical() -> pl.DataFrame:
    return pl.DataFrame(schema=CANONICAL_SCHEMA)
