"""Bring any event table to the canonical frame (:mod:`._schema`).

Handles what warehouse extracts do differently from the Export API: column names in any
case, ``$insert_id`` spelled ``_insert_id`` or ``insert_id``, nested columns as JSON
text or as nested types, and times as strings or datetimes.
"""

from __future__ import annotations

import polars as pl

from .._json import strip_json_whitespace, to_json_text
from ..config import JSON_COLUMNS, TransformConfig
from ..errors import InputError
from ._schema import CANONICAL_SCHEMA, UTC_DATETIME, canonical_name

#: The Export API's own shape ("2026-11-24 09:59:58.880000"): polars parses a fixed-width
#: format like this one on a fast path, about eight times faster than a general format.
_EXPORT_FORMAT = "%Y-%m-%d %H:%M:%S.%6f"
_NAIVE_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"
_ZONED_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"

_TEXT_TYPES = (pl.String, pl.Categorical, pl.Enum)


#: The time forms accepted, for the messages of malformed rows and bad columns.
TIME_FORMS = (
    "'2026-11-24 09:59:58.880000' (space or T, 0-9 fractional digits), optionally with "
    "'Z', '±HH:MM', '±HHMM', '±HH' or ' UTC' (a time with no zone is UTC); "
    "a datetime; or epoch seconds, milliseconds or microseconds as a number"
)

#: An epoch number written as text (an NDJSON number, a CSV cell): 9+ digits, so that a
#: compact date like ``20261124`` is never taken for one.
_EPOCH_TEXT = r"^[+-]?[0-9]{9,}(?:\.[0-9]*)?$"

#: Epoch magnitudes: below 1e11 it is seconds (up to the year 5138), below 1e14
#: milliseconds, below 1e17 microseconds, else nanoseconds. Each range starts where the
#: one before ends (1e11 ms is 1973-03-03), so a time after 1973 is never ambiguous.
_EPOCH_SECONDS_BELOW = 1e11
_EPOCH_MILLIS_BELOW = 1e14
_EPOCH_MICROS_BELOW = 1e17


def parse_event_time(expr: pl.Expr) -> pl.Expr:
    """Parse Amplitude/warehouse time strings to UTC datetimes (null where unparseable).

    Accepts a space or ``T`` separator, 0 to 9 fractional digits, and an optional ``Z``,
    ``±HH:MM``/``±HHMM``/``±HH`` offset (also after a space, as Snowflake writes a
    ``TIMESTAMP_TZ``) or `` UTC`` suffix (BigQuery's ``bq extract``). A time with no
    zone is UTC (Snowflake's ``TIMESTAMP_NTZ``). Text that is only a number of 9 or
    more digits is an epoch time, its unit chosen by magnitude (:func:`epoch_to_utc`).
    """
    return expr.map_batches(_parse_times, return_dtype=UTC_DATETIME, is_elementwise=True)


def _parse_times(texts: pl.Series) -> pl.Series:
    """:func:`parse_event_time` on a column, in stages: each form is tried only on the
    rows that the forms before could not parse. Times in the export's own shape take
    polars' fixed-width fast path; regular expressions (other zones, epoch numbers) run
    on the few rows left. No parse cache: event times are nearly all distinct."""
    texts = texts.cast(pl.String)
    out = texts.str.strptime(pl.Datetime("us"), _EXPORT_FORMAT, strict=False, cache=False)
    out = out.dt.replace_time_zone("UTC")
    rows = (out.is_null() & texts.is_not_null()).arg_true()
    for stage in (_iso_times, _other_zone_times, _epoch_times):
        if rows.is_empty():
            break
        got = stage(texts.gather(rows).str.strip_chars())
        out = out.scatter(rows, got)
        rows = rows.filter(got.is_null())
    return out


def _iso_times(texts: pl.Series) -> pl.Series:
    text = texts.str.replace(" ", "T", literal=True)
    naive = text.str.strptime(pl.Datetime("us"), _NAIVE_FORMAT, strict=False, cache=False)
    zoned = text.str.strptime(UTC_DATETIME, _ZONED_FORMAT, strict=False, cache=False)
    return pl.select(pl.coalesce(pl.lit(naive).dt.replace_time_zone("UTC"), zoned)).to_series()


def _other_zone_times(texts: pl.Series) -> pl.Series:
    """`` UTC`` (BigQuery), and an offset after a space (Snowflake's TIMESTAMP_TZ)."""
    return (
        texts.str.replace(r"(?i)\s*(?:UTC|GMT)$", "Z")
        .str.replace(r"\s+([+-][0-9]{2}(?::?[0-9]{2})?)$", "${1}")
        .str.replace(" ", "T", literal=True)
        .str.strptime(UTC_DATETIME, _ZONED_FORMAT, strict=False, cache=False)
    )


def _epoch_times(texts: pl.Series) -> pl.Series:
    number = pl.when(pl.lit(texts).str.contains(_EPOCH_TEXT))
    return pl.select(
        pl.coalesce(
            epoch_to_utc(number.then(pl.lit(texts).cast(pl.Int64, strict=False))),
            epoch_to_utc(number.then(pl.lit(texts).cast(pl.Float64, strict=False))),
        )
    ).to_series()


def epoch_to_utc(expr: pl.Expr) -> pl.Expr:
    """Epoch numbers (integers or floats) to UTC datetimes, the unit chosen by magnitude.

    Seconds below 1e11 (up to the year 5138), milliseconds below 1e14, microseconds
    below 1e17, nanoseconds above. Non-finite values give null.
    """
    size = expr.abs()
    micros = (
        pl.when(size < _EPOCH_SECONDS_BELOW)
        .then(expr * 1_000_000)
        .when(size < _EPOCH_MILLIS_BELOW)
        .then(expr * 1_000)
        .when(size < _EPOCH_MICROS_BELOW)
        .then(expr)
        .otherwise(expr // 1_000)
    )
    # Whole microseconds below 2**53 (the year 2255) are exact as a double.
    whole = micros.cast(pl.Float64).round(0)
    return (
        pl.when(whole.is_finite())
        .then(whole)
        .cast(pl.Int64, strict=False)
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
    )


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
    if dtype.is_integer():
        return epoch_to_utc(pl.col(col).cast(pl.Int64, strict=False))
    if dtype.is_numeric():  # floats and decimals (BigQuery's BIGNUMERIC)
        return epoch_to_utc(pl.col(col).cast(pl.Float64))
    raise InputError(source, f"column {col!r} has type {dtype}; expected a time: {TIME_FORMS}")


def _text(col: str, dtype: pl.DataType, source: str, *, what: str) -> pl.Expr:
    if isinstance(dtype, _TEXT_TYPES):
        return pl.col(col).cast(pl.String)
    if isinstance(dtype, pl.Binary):
        # A database's UUID type (16 bytes: PostgreSQL uuid through ADBC) in its usual
        # text form; other bytes as UTF-8 text.
        hexed = pl.col(col).bin.encode("hex")
        dashed = pl.concat_str(
            [hexed.str.slice(a, b - a) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))],
            separator="-",
        )
        return (
            pl.when(pl.col(col).bin.size() == 16)
            .then(dashed)
            .otherwise(pl.col(col).cast(pl.String, strict=False))
        )
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
    storage = _extension_storage(schema)
    if storage:  # Arrow extension types (arrow.json from ADBC drivers) as their storage
        lf = lf.with_columns(storage)
        frame = lf
        schema = lf.collect_schema()
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

    is_table = "_raw" not in schema

    def json_or_null(name: str) -> pl.Expr:
        if name not in schema:
            return pl.lit(None, dtype=pl.String)
        try:
            text = to_json_text(pl.col(name), schema[name])
            if is_table and isinstance(schema[name], (*_TEXT_TYPES, pl.Extension)):
                # Indented JSON text (as extracts write VARIANT/JSON/SUPER) made one
                # line: the rules split joined values on line breaks.
                multiline = text.str.contains(r"[\n\r]")
                text = pl.when(multiline).then(strip_json_whitespace(text)).otherwise(text)
            return text
        except TypeError:
            raise InputError(
                source,
                f"column {name!r} has type {schema[name]}; expected a JSON object "
                "(as JSON text, a struct or a map)",
            ) from None

    uid_col = uid.name.lower() if uid.scope == "column" else "user_id"
    n_rows = pl.int_range(pl.len(), dtype=pl.UInt64)
    line = pl.lit(lines) if lines is not None else (n_rows.cast(pl.Int64) + first_line)
    event_time_type = schema["event_time"]
    event_time_raw = (
        pl.col("event_time").cast(pl.String)
        if isinstance(event_time_type, _TEXT_TYPES) or event_time_type.is_numeric()
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


def _extension_storage(schema: pl.Schema) -> list[pl.Expr]:
    """Columns of an extension type (``arrow.json`` and others) as their storage."""
    return [
        pl.col(name).ext.storage()
        for name, dtype in schema.items()
        if isinstance(dtype, pl.Extension)
    ]


def _json_encodable(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Binary columns (which polars can't write as JSON) as hex text."""
    schema = frame.collect_schema()
    binary = [name for name, dtype in schema.items() if isinstance(dtype, pl.Binary)]
    return frame.with_columns(pl.col(binary).bin.encode("hex")) if binary else frame


def _objects_from_json_strings(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested values written as a JSON string holding JSON text of an object (what
    warehouse extracts and loaders write for VARIANT/JSON/SUPER columns), as that object,
    made compact (indented text is common, and the rules need one line a value).

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
            compact = texts.to_frame().select(strip_json_whitespace(pl.first())).to_series()
            fixed.append(column.scatter(rows, compact))
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
        _json_encodable(frame.lazy())
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
            pl.lit(f"event_time: expected a time: {TIME_FORMS}; got ")
            + pl.col("_event_time_raw").str.slice(0, 60)
        )
    )


def empty_canonical() -> pl.DataFrame:
    return pl.DataFrame(schema=CANONICAL_SCHEMA)
