"""JSON text as polars columns: pick values out of it, encode values, build objects.

Nested Amplitude columns are carried as JSON text. These helpers read values out of that
text (msgspec decodes a whole column at once, each wanted value as its exact text) and
write call bodies as text, without a Python loop per row. Readers and rules share them.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import msgspec
import orjson
import polars as pl

from ._buffers import text_buffer

_WRAP_PREFIX = '{"v":'
#: Joins the values of one key; never inside the JSON text of a value from one line.
SEPARATOR = b"\n"
_ABSENT = msgspec.Raw()  # a key missing from the object (a JSON null is b"null")

Getters: TypeAlias = tuple[Callable[[Any], Any], ...]

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


# --------------------------------------------------------------------------- decoding


@functools.lru_cache(maxsize=64)
def line_decoder(keys: tuple[str, ...]) -> tuple[msgspec.json.Decoder, Getters]:
    """A decoder of lines into a struct of ``keys`` (as spelled in the file), and a getter
    of each key's value."""
    names = [f"f{i}" for i in range(len(keys))]
    struct = msgspec.defstruct(
        "Line",
        [(name, msgspec.Raw, _ABSENT) for name in names],
        rename=dict(zip(names, keys, strict=True)),
        gc=False,  # rows hold only Raw values: no reference cycles to collect
    )
    return msgspec.json.Decoder(struct), tuple(operator.attrgetter(name) for name in names)


def cells(key: str) -> pl.Expr:
    """One value per row from a column of newline-joined values."""
    return pl.col(key).cast(pl.String).str.split("\n").explode()


def object_fields(docs: pl.Series, keys: Sequence[str]) -> pl.DataFrame:
    """The JSON text of ``doc[key]`` for each of ``keys``, one row per document.

    A value is its exact text in the document (spacing and number spelling kept). Absent
    keys, and documents that are null or not a JSON object,
    give null; a JSON ``null`` gives the text ``null``.
    """
    keys = tuple(dict.fromkeys(keys))
    decoder, values = line_decoder(keys)
    valid = docs.is_not_null() & (docs.str.len_bytes() > 0)
    present = docs.filter(valid)
    rows = _decode_objects(present, decoder)
    if not rows:
        return pl.DataFrame({key: pl.Series([None] * docs.len(), dtype=pl.String) for key in keys})
    flats = pl.DataFrame(
        [
            pl.Series(key, [SEPARATOR.join(map(value, rows))], pl.Binary)
            for key, value in zip(keys, values, strict=True)
        ]
    )
    found = flats.select(cells(key).replace("", None) for key in keys)
    if present.len() == docs.len():
        return found
    index = (valid.cast(pl.Int64).cum_sum() - 1).clip(lower_bound=0)
    absent = (~valid).arg_true()
    return pl.DataFrame([found[key].gather(index).scatter(absent, None) for key in keys])


def _decode_objects(docs: pl.Series, decoder: msgspec.json.Decoder) -> list[Any]:
    """One struct per document (all fields absent for one that is not a JSON object)."""
    if docs.is_empty():
        return []
    data = text_buffer(docs)
    try:  # the documents back to back: one call for the whole column
        rows = decoder.decode_lines(data)
        if len(rows) == len(docs):
            return rows
    except (msgspec.DecodeError, RecursionError):
        pass
    empty = decoder.decode(b"{}")
    rows = []
    for doc in docs:
        try:
            rows.append(decoder.decode(doc))
        except (msgspec.DecodeError, RecursionError):
            rows.append(empty)
    return rows


# --------------------------------------------------------------------------- encoding


def json_encode(expr: pl.Expr) -> pl.Expr:
    """Encode any value as JSON text: strings are quoted and escaped, null is ``null``."""
    return (
        pl.struct(expr.alias("v"))
        .struct.json_encode()
        .str.strip_prefix(_WRAP_PREFIX)
        .str.strip_suffix("}")
    )


def to_json_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A column as JSON text: text columns are taken as JSON already, nested ones encoded.

    An extension type is read as its storage: the Arrow JSON type (``arrow.json``, what
    ADBC drivers give for PostgreSQL ``jsonb`` and Snowflake ``VARIANT``) is JSON text.
    """
    if isinstance(dtype, pl.Extension):
        storage = dtype.ext_storage()
        return to_json_text(expr.ext.storage(), storage() if isinstance(storage, type) else storage)
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

    The value is taken as it is written in the document (numbers keep every digit),
    by :func:`object_fields`; an object or array written with
    whitespace is made compact.
    """
    return doc.map_batches(
        lambda docs: _values_at(docs, key), return_dtype=pl.String, is_elementwise=True
    )


def _values_at(docs: pl.Series, key: str) -> pl.Series:
    return compact_json(object_fields(docs, [key])[key]).alias(docs.name)


def json_scalar_at(doc: pl.Expr, key: str) -> pl.Expr:
    """``doc[key]`` as text when it is a scalar: a string decoded, a number or a boolean
    as its JSON text; null when absent, ``null``, an object or an array."""
    return doc.map_batches(
        lambda docs: _scalars(object_fields(docs, [key])[key]).alias(docs.name),
        return_dtype=pl.String,
        is_elementwise=True,
    )


def _scalars(texts: pl.Series) -> pl.Series:
    container = texts.str.starts_with("{") | texts.str.starts_with("[") | (texts == "null")
    texts = texts.set(container.fill_null(False), None)
    strings = texts.str.starts_with('"').fill_null(False).arg_true()
    if strings.is_empty():
        return texts
    return texts.scatter(strings, texts.gather(strings).str.json_decode(pl.String))


#: A JSON string token (kept, as group 1) or a run of the whitespace JSON allows between
#: tokens (dropped): replacing every match by group 1 makes valid JSON text compact.
_TOKEN_OR_SPACE = r'("(?:[^"\\]|\\.)*")|[ \t\n\r]+'


def strip_json_whitespace(expr: pl.Expr) -> pl.Expr:
    """Valid JSON text with the whitespace between tokens removed, vectorised.

    Text inside strings is kept as written; numbers and keys are not touched. Indented
    JSON text (what warehouse extracts write for VARIANT/JSON/SUPER columns) becomes one
    line, as the readers' column splitting (:data:`SEPARATOR`) needs.
    """
    return expr.str.replace_all(_TOKEN_OR_SPACE, "${1}")


def compact_json(texts: pl.Series) -> pl.Series:
    """JSON texts with the whitespace between tokens removed (objects and arrays only)."""
    nested = texts.str.starts_with("{") | texts.str.starts_with("[")
    rows = (nested & texts.str.contains(r"\s")).arg_true()
    if rows.is_empty():
        return texts
    outside_strings = texts.gather(rows).str.replace_all(r'"(?:[^"\\]|\\.)*"', "")
    rows = rows.filter(outside_strings.str.contains(r"\s"))
    if rows.is_empty():
        return texts
    compact = [dumps_exact(loads_exact(text)) for text in texts.gather(rows)]
    return texts.scatter(rows, pl.Series(compact, dtype=pl.String))


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


class RawJson:
    """Marks an expression whose values are JSON text already, for :func:`json_object`."""

    __slots__ = ("expr",)

    def __init__(self, expr: pl.Expr) -> None:
        self.expr = expr


def json_object(fields: dict[str, pl.Expr | RawJson]) -> pl.Expr:
    """A JSON object per row, keys in the given order.

    Plain expressions are encoded (consecutive ones in one ``struct.json_encode``);
    :class:`RawJson` values are spliced in as they are, a null becoming ``null``. The
    object is one ``concat_str`` of all its pieces, so each row's text is copied once.
    """
    plain = {k: v for k, v in fields.items() if not isinstance(v, RawJson)}
    if fields and len(plain) == len(fields):
        return _encoded(plain)  # already the whole object: no braces to strip and add
    pieces: list[pl.Expr] = []
    run: dict[str, pl.Expr] = {}
    literal = "{"  # text waiting to go before the next piece

    def flush() -> None:
        nonlocal literal
        if run:
            encoded = _encoded(run)
            pieces.extend([pl.lit(literal), encoded.str.strip_prefix("{").str.strip_suffix("}")])
            literal = ","
            run.clear()

    for key, value in fields.items():
        if isinstance(value, RawJson):
            flush()
            pieces.extend([pl.lit(literal + _quote(key) + ":"), value.expr.fill_null("null")])
            literal = ","
        else:
            run[key] = value
    flush()
    return pl.concat_str([*pieces, pl.lit("}")]) if pieces else pl.lit("{}")


def _encoded(fields: dict[str, pl.Expr]) -> pl.Expr:
    """``fields`` as one JSON object per row, each value encoded."""
    return pl.struct(*[e.alias(k) for k, e in fields.items()]).struct.json_encode()


def json_object_from_pairs(pairs: list[tuple[str, pl.Expr]]) -> pl.Expr:
    """``{"k1": v1, ...}`` from (key, JSON-text value) pairs, leaving out null values."""
    if not pairs:
        return pl.lit("{}")
    members = [pl.lit(_quote(k) + ":") + v for k, v in pairs]
    return pl.lit("{") + pl.concat_str(members, separator=",", ignore_nulls=True) + pl.lit("}")


def _quote(key: str) -> str:
    return orjson.dumps(key).decode()
