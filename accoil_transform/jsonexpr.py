"""JSON as polars expressions: encode values, pick typed values out of JSON text, build objects.

Nested Amplitude columns are carried as JSON text. These helpers read values out of that
text and write call bodies as text, without a Python loop per row.
"""

from __future__ import annotations

import polars as pl

_WRAP_PREFIX = '{"v":'


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
    escaped = k.str.replace_all("\\", "\\\\", literal=True).str.replace_all("'", "\\'", literal=True)
    return pl.lit("['") + escaped + pl.lit("']")


def json_value_at(doc: pl.Expr, key: str) -> pl.Expr:
    """The JSON text of ``doc[key]`` with its type kept; null when the key is absent.

    ``str.json_path_match`` returns strings unquoted, so ``"5"`` and ``5`` look alike.
    The type is recovered by checking the compact re-serialised document for the
    quoted form at that key; a JSON ``null`` value is kept as ``null``.
    """
    path = pl.lit("$") + jsonpath_key(key)
    value = doc.str.json_path_match(path)
    compact = doc.str.json_path_match(pl.lit("$"))
    key_prefix = json_encode(pl.lit(key)) + pl.lit(":")
    quoted = json_encode(value)
    is_string = compact.str.contains(key_prefix + quoted, literal=True)
    is_null = value.is_null() & compact.str.contains(key_prefix + pl.lit("null"), literal=True)
    return (
        pl.when(value.is_not_null() & is_string)
        .then(quoted)
        .when(value.is_not_null())
        .then(value)
        .when(is_null)
        .then(pl.lit("null"))
    )


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
