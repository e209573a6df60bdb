"""JSON as polars expressions: encode values, pick typed values out of JSON text, build objects.

Nested Amplitude columns are carried as JSON text. These helpers read values out of that
text and write call bodies as text, without a Python loop per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import polars as pl

_WRAP_PREFIX = '{"v":'

#: A number that a double may not hold exactly: 15+ digits, or an exponent. polars'
#: JSONPath parses such numbers approximately, so values holding one are re-read with
#: :func:`loads_exact` (a few false positives, like long digit ids, only cost time).
RISKY_NUMBER = r"[0-9][0-9.eE+-]{14,}|[0-9][eE][+-]?[0-9]"


def loads_exact(text: str | bytes) -> Any:
    """Parse JSON keeping every number exactly (big integers, all float digits)."""
    return json.loads(text)


def dumps_exact(value: Any) -> str:
    """Compact JSON text, UTF-8 kept, numbers written back exactly."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_encode(expr: pl.Expr) -> pl.Expr:
    """Encode any value as JSON text: strings are quoted and escaped, null is ``null``."""
    return (
        pl.struct(expr.alias("v"))
        .struct.json_encode()
        .str.strip_prefix(_WRAP_PREFIX)
        .str.strip_suffix("}")
    )


def to_json_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A column as JSON text: text columns are taken as JSON already, nested ones encoded."""
    if isinstance(dtype, pl.String | pl.Null):
        return expr.cast(pl.String)
    if isinstance(dtype, pl.Struct | pl.List | pl.Array):
        return pl.when(expr.is_not_null()).then(json_encode(expr))
    if isinstance(dtype, pl.Map):
        entries = expr.map.entries()
        # {"k": v, ...} from the list of {key, value} entries.
        pairs = entries.list.eval(
            json_encode(pl.element().struct.field("key"))
            + pl.lit(":")
            + json_encode(pl.element().struct.field("value"))
        ).list.join(",")
        return pl.when(expr.is_not_null()).then(pl.lit("{") + pairs + pl.lit("}"))
    raise TypeError(f"can't read a JSON object from a column of type {dtype}")


def jsonpath_key(key: str | pl.Expr) -> pl.Expr:
    """A JSONPath bracket selector ``['key']`` for a literal or per-row key."""
    k = pl.lit(key) if isinstance(key, str) else key
    escaped = k.str.replace_all("\\", "\\\\", literal=True).str.replace_all(
        "'", "\\'", literal=True
    )
    return pl.lit("['") + escaped + pl.lit("']")


def json_value_at(doc: pl.Expr, key: str) -> pl.Expr:
    """The JSON text of ``doc[key]`` with its type kept; null when the key is absent.

    ``str.json_path_match`` returns strings unquoted, so ``"5"`` and ``5`` look alike.
    The type is recovered by finding the quoted form after the key in the compact
    re-serialised document. That is exact when the key occurs once; documents where it
    also occurs nested (rare) are resolved with a JSON parser.
    """
    return doc.map_batches(
        lambda docs: _values_at(docs, key), return_dtype=pl.String, is_elementwise=True
    )


def _values_at(docs: pl.Series, key: str) -> pl.Series:
    doc = pl.col("doc")
    value = doc.str.json_path_match(pl.lit("$") + jsonpath_key(key))
    compact = doc.str.json_path_match(pl.lit("$"))
    key_prefix = json_encode(pl.lit(key)) + pl.lit(":")
    quoted = json_encode(value)
    is_string = compact.str.contains(key_prefix + quoted, literal=True)
    is_null = value.is_null() & compact.str.contains(key_prefix + pl.lit("null"), literal=True)
    frame = docs.to_frame("doc").select(
        pl.when(value.is_not_null() & is_string)
        .then(quoted)
        .when(value.is_not_null())
        .then(value)
        .when(is_null)
        .then(pl.lit("null"))
        .alias("value"),
        # The substring tests are exact when the key occurs once and the value is
        # present; otherwise the key may (also) be nested, so parse those rows.
        (
            (compact.str.count_matches(key_prefix, literal=True) > 1)
            | (value.is_null() & compact.str.contains(key_prefix, literal=True))
            | (~is_string & value.str.contains(RISKY_NUMBER))
            | (doc.is_not_null() & compact.is_null())  # e.g. a number past f64
        ).alias("nested"),
        doc,
    )
    exact = patch_rows(
        frame, pl.col("nested"), "value", lambda text: _parsed_value_at(text, key), ["doc"]
    )
    return exact["value"].alias(docs.name)


def patch_rows(
    frame: pl.DataFrame,
    mask: pl.Expr,
    column: str,
    fix: Callable[..., str | None],
    inputs: list[str],
) -> pl.DataFrame:
    """Set ``column`` to ``fix(*inputs)`` on the (rare) rows where ``mask`` holds.

    The vectorised paths hand the few rows they can't answer exactly to a JSON parser
    through this one helper.
    """
    rows = frame.with_row_index("_i").filter(mask.fill_null(False))
    if rows.is_empty():
        return frame
    values = [fix(*row) for row in rows.select(inputs).iter_rows()]
    patched = frame[column].clone()
    patched.scatter(rows["_i"], pl.Series(values, dtype=pl.String))
    return frame.with_columns(patched)


def _parsed_value_at(text: str | None, key: str) -> str | None:
    if text is None:
        return None
    obj = loads_exact(text)
    if not isinstance(obj, dict) or key not in obj:
        return None
    return dumps_exact(obj[key])


class RawJson:
    """Marks an expression whose values are JSON text already, for :func:`json_object`."""

    __slots__ = ("expr",)

    def __init__(self, expr: pl.Expr) -> None:
        self.expr = expr


def json_object(fields: dict[str, pl.Expr | RawJson]) -> pl.Expr:
    """A JSON object per row, keys in the given order.

    Plain expressions are encoded (consecutive ones in one ``struct.json_encode``);
    :class:`RawJson` values are spliced in as they are, a null becoming ``null``.
    """
    parts: list[pl.Expr] = []
    run: dict[str, pl.Expr] = {}

    def flush() -> None:
        if run:
            encoded = pl.struct(*[e.alias(k) for k, e in run.items()]).struct.json_encode()
            parts.append(encoded.str.strip_prefix("{").str.strip_suffix("}"))
            run.clear()

    for key, value in fields.items():
        if isinstance(value, RawJson):
            flush()
            parts.append(pl.lit(_quote(key) + ":") + value.expr.fill_null(pl.lit("null")))
        else:
            run[key] = value
    flush()
    if len(parts) == 1 and not any(isinstance(v, RawJson) for v in fields.values()):
        return pl.lit("{") + parts[0] + pl.lit("}")
    return pl.lit("{") + pl.concat_str(parts, separator=",") + pl.lit("}")


def json_object_from_pairs(pairs: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """``{"k1": v1, ...}`` from (key, JSON-text value) pairs, leaving out null values."""
    if not pairs:
        return pl.lit("{}")
    members = [pl.lit(_quote(k) + ":") + v for k, v in pairs]
    return pl.lit("{") + pl.concat_str(members, separator=",", ignore_nulls=True) + pl.lit("}")


def _quote(key: str) -> str:
    import orjson

    return orjson.dumps(key).decode()
