"""The canonical event frame every reader produces, and the columns it is made from.

Every input (Export API zip, hourly files, Parquet, warehouse extracts, in-memory
frames) becomes this one shape before any rule runs. The nested columns stay JSON
text: ``groups`` and ``group_properties`` have group ids as keys, so inferring them as
structs would create one field per id ever seen.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from ..config import JSON_COLUMNS

UTC_DATETIME = pl.Datetime("us", "UTC")

#: The file formats read, named in the errors for files that are none of them.
SUPPORTED_FORMATS = (
    "an Amplitude Export API zip; NDJSON (.json, .jsonl), plain or gzip; CSV with a header "
    "row (comma, tab, | or ; separated), plain or gzip; Parquet"
)

#: Alternative spellings found in warehouse extracts (lower-cased first).
COLUMN_ALIASES: dict[str, str] = {
    "$insert_id": "insert_id",
    "_insert_id": "insert_id",
    "insert_id": "insert_id",
}

#: Canonical columns, in order. ``user_id`` holds the configured user-id *column*
#: (cast to text); property-based user ids are resolved from the JSON columns.
CANONICAL_SCHEMA: dict[str, pl.DataType] = {
    "_row": pl.UInt64(),
    "_source": pl.String(),
    "_line": pl.Int64(),
    "_malformed": pl.String(),
    "_raw": pl.String(),
    "uuid": pl.String(),
    "insert_id": pl.String(),
    "device_id": pl.String(),
    "user_id": pl.String(),
    "event_type": pl.String(),
    "event_time": UTC_DATETIME,
    **{name: pl.String() for name in JSON_COLUMNS},
}


def canonical_name(column: str) -> str:
    """The canonical name of an input column: lower-cased, insert-id aliases folded."""
    lower = column.lower()
    return COLUMN_ALIASES.get(lower, lower)


def ndjson_read_schema(
    user_id_column: str | None,
    keys: Iterable[str] = (),
    *,
    json_columns: Iterable[str] = JSON_COLUMNS,
) -> dict[str, pl.DataType]:
    """What the NDJSON reader asks for; everything else in a line is skipped unparsed.

    ``keys`` are the keys seen in the file's first lines: any spelling of a wanted
    column (``EVENT_TYPE``, ``_insert_id``) is read under that spelling, and the
    normaliser folds it to the canonical name. Of the nested columns, only
    ``json_columns`` are read (the rest come out null): decoding a nested object to
    text is a large part of the reading cost.
    """
    wanted = {
        "uuid",
        "insert_id",
        "device_id",
        "user_id",
        "event_type",
        "event_time",
        *json_columns,
    }
    if user_id_column:
        wanted.add(canonical_name(user_id_column))
    schema: dict[str, pl.DataType] = {}
    found: set[str] = set()
    for key in keys:
        name = canonical_name(key)
        if name in wanted:
            schema[key] = pl.String()
            found.add(name)
    for name in sorted(wanted - found):
        schema["$insert_id" if name == "insert_id" else name] = pl.String()
    return schema
