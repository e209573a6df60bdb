"""Run the transform inside Apache Spark, for event tables past one machine (SPEC §8).

Nothing here is a distributed system of its own: Spark reads, shuffles and retries; each
partition runs the same pure core as the single-machine path
(:func:`~accoil_transform.normalize.normalize_frame` and
:func:`~accoil_transform.batch.transform_batch`) through ``mapInArrow``.

:func:`to_calls` plans it in three steps:

1. **Shape and normalise** (no shuffle). The needed columns are picked by the core's
   own rules (any case, ``$insert_id``/``_insert_id``/``insert_id``); nested
   struct/map/array/variant columns become JSON text with ``to_json`` (null fields
   kept). Each scan batch then goes through ``normalize_frame``, which also yields the
   core's duplicate key (null for a malformed row) and user id of every row.
2. **Duplicates, over the whole input.** A window by duplicate key ordered by ``_row``
   flags every row but the first occurrence in input order. Malformed rows have no key,
   so they never count as a first occurrence, exactly as in the core (SPEC §2).
3. **By user.** Rows that can become calls (not malformed, not a duplicate, with a user
   id) are repartitioned by user id and sorted by ``_row`` within each partition, so a
   user's identify/group de-duplication and track order stay in one partition; each
   partition is transformed whole (identify takes a user's latest event).

**Input order.** ``_row`` is the global input order that breaks ties (the first of
duplicates, the latest of events with equal times) and numbers events that have
neither ``uuid`` nor ``$insert_id`` in their call ids. A ``_row`` column of the input
(non-negative, unique integers) is used as is; :func:`read_amplitude_json` makes one
that equals the single-machine reader's. Otherwise it is
``monotonically_increasing_id()`` on the input, before any shuffle: Spark's scan order,
stable for a given set of files.

Install with ``pip install "accoil-transform[spark]"``; importing this module does not
need pyspark, calling it does.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from .batch import CALLS_ARROW_SCHEMA, transform_batch
from .batches import DEFAULT_BATCH_SIZE, iter_batches
from .config import TransformConfig
from .formats import get_format
from .normalize import _canonical_names, normalize_frame
from .schema import JSON_COLUMNS, ndjson_read_schema
from .transform import dedup_key, user_id

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from .delivery import DeliveryOptions, DeliveryReport

INSTALL_HINT = 'the Spark path needs pyspark: pip install "accoil-transform[spark]"'

#: The columns of a calls DataFrame (Spark DDL).
CALLS_DDL = "endpoint string, call_id string, body string"

#: Columns the per-partition transform needs, after normalisation (Spark DDL).
_CANONICAL_DDL = (
    "_row long, uuid string, insert_id string, device_id string, user_id string, "
    "event_type string, event_time timestamp, "
    + ", ".join(f"{c} string" for c in JSON_COLUMNS)
)
_KEYED_DDL = _CANONICAL_DDL + ", _key string, _user string"
_SOURCE = "<spark>"


def _pyspark() -> Any:
    """``pyspark.sql.functions``, or an ImportError that says how to install it."""
    try:
        from pyspark.sql import functions
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return functions


# --------------------------------------------------------------------------- reading


def read_amplitude_json(
    spark: SparkSession, paths: str | Iterable[str], config: TransformConfig | None = None
) -> DataFrame:
    """Read Amplitude NDJSON files (``.json``, ``.json.gz``) into a Spark DataFrame.

    For the S3/GCS export layout, or Export API zips once unzipped (their members are
    gzip NDJSON). Nested columns stay JSON text. ``_row`` numbers the non-blank lines as
    the single-machine reader does for a folder: files in path order, lines in file
    order. It costs one counting pass over the files.
    """
    F = _pyspark()
    from pyspark.sql import types as T

    config = config or TransformConfig()
    uid = config.user_id_ref
    names = ndjson_read_schema(uid.name if uid.scope == "column" else None)
    schema = T.StructType([T.StructField(n, T.StringType()) for n in names])
    paths = [paths] if isinstance(paths, str) else [str(p) for p in paths]
    lines = (
        spark.read.text(paths)
        .where(F.length(F.btrim("value", F.lit(" \t\r\n\x0b\x0c"))) > 0)
        # After the filter, so that ids are consecutive within a file split.
        .select(
            "value",
            F.col("_metadata.file_path").alias("_file"),
            F.col("_metadata.file_block_start").alias("_block"),
            F.monotonically_increasing_id().alias("_mid"),
        )
    )
    splits = lines.groupBy("_file", "_block").agg(
        F.count(F.lit(1)).alias("n"), F.min("_mid").alias("first")
    )
    start, shifts = 0, []
    for split in sorted(splits.collect(), key=lambda r: (_path_key(r["_file"]), r["_block"])):
        shifts.append((split["_file"], split["_block"], start - split["first"]))
        start += split["n"]
    shift = spark.createDataFrame(shifts, "_file string, _block long, _shift long")
    return lines.join(F.broadcast(shift), ["_file", "_block"]).select(
        (F.col("_mid") + F.col("_shift")).alias("_row"),
        F.from_json("value", schema).alias("e"),
    ).select("_row", "e.*")


def _path_key(uri: str) -> tuple[str, ...]:
    """Sort like the single-machine reader sorts a folder's ``Path`` objects."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
    return tuple(p for p in path.split("/") if p)


# --------------------------------------------------------------------------- transform


def to_calls(
    spark_df: DataFrame,
    config: TransformConfig | None = None,
    format: str = "v2",
    *,
    partitions: int | None = None,
) -> DataFrame:
    """Transform a Spark DataFrame of Amplitude events into a DataFrame of Accoil calls.

    ``spark_df`` is in either export shape: nested columns as JSON strings, or as
    structs/maps (or variants). The result has the columns ``endpoint`` (identify,
    group or track), ``call_id`` and ``body`` (JSON text), and ``partitions`` partitions
    (default ``spark.sql.shuffle.partitions``) of whole users, each in delivery order:
    identify, then group, then track. Its calls equal the single-machine path's (see the
    module notes on input order).

    Raises:
        ImportError: pyspark is not installed.
        InputError: a required column is missing or has an unusable type.
    """
    F = _pyspark()
    from pyspark.sql import Window

    config = config or TransformConfig()
    wire = get_format(format)
    spark = spark_df.sparkSession
    shaped = _shape(spark_df, config)
    keyed = shaped.mapInArrow(_Normalize(config, _arrow_schema(spark, _KEYED_DDL)), _KEYED_DDL)

    # 2. Duplicates: the first non-malformed occurrence of a key, in input order, is kept.
    # Rows without a key get a key of their own, so they do not all meet in one task.
    own_key = F.concat(F.lit("\x00"), F.col("_row").cast("string"))
    first = Window.partitionBy(F.coalesce("_key", own_key)).orderBy("_row")
    flagged = (
        keyed.where(F.col("_key").isNotNull() | F.col("_user").isNotNull())
        .withColumn("_duplicate", F.row_number().over(first) > 1)
        .where(F.col("_user").isNotNull() & ~F.col("_duplicate"))
    )

    # 3. Each user's rows in one partition, in input order.
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    by_user = flagged.repartition(n, "_user").sortWithinPartitions("_row").drop("_key", "_user")
    return by_user.mapInArrow(
        _Transform(config, wire.name, _arrow_schema(spark, CALLS_DDL)), CALLS_DDL
    )


def _shape(df: DataFrame, config: TransformConfig) -> DataFrame:
    """The columns the core reads, named canonically; nested ones as JSON text."""
    F = _pyspark()
    from pyspark.sql import types as T

    uid = config.user_id_ref
    wanted = {"_row", "uuid", "insert_id", "device_id", "event_type", "event_time", *JSON_COLUMNS}
    if uid.scope == "column":
        wanted.add(uid.name.lower())
    # Columns by position: names may hold '$', dots, or differ only in case.
    renames = _canonical_names(df.columns)
    positional = df.toDF(*[f"_c{i}" for i in range(len(df.columns))])
    nested = (T.StructType, T.MapType, T.ArrayType, T.VariantType)
    picked, taken = [], set()
    for i, (orig, field) in enumerate(zip(df.columns, positional.schema.fields, strict=True)):
        name = renames.get(orig)
        if name not in wanted or name in taken:
            continue
        taken.add(name)
        col = F.col(f"_c{i}")
        if name in JSON_COLUMNS and isinstance(field.dataType, nested):
            col = F.to_json(col, {"ignoreNullFields": "false"})
        picked.append(col.alias(name))
    out = positional.select(*picked)
    if "_row" not in taken:
        out = out.withColumn("_row", F.monotonically_increasing_id())
    else:
        out = out.withColumn("_row", F.col("_row").cast("long"))
    # Check the shape on the driver, with the core's own rules, before any task runs.
    empty = pl.from_arrow(_arrow_schema(df.sparkSession, out.drop("_row").schema).empty_table())
    normalize_frame(empty, config, source="the Spark DataFrame")  # type: ignore[arg-type]
    return out


class _Normalize:
    """mapInArrow: each scan batch to canonical columns plus the duplicate and user keys."""

    def __init__(self, config: TransformConfig, schema: pa.Schema) -> None:
        self.config, self.schema = config, schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            canonical = normalize_frame(frame.drop("_row"), self.config, source=_SOURCE)
            out = canonical.with_columns(
                _row=frame["_row"].cast(pl.UInt64),
                _key=pl.when(pl.col("_malformed").is_null()).then(dedup_key()),
                _user=pl.when(pl.col("_malformed").is_null()).then(
                    user_id(self.config.user_id_ref)
                ),
            ).select(self.schema.names)
            yield from _to_arrow(out, self.schema)


class _Transform:
    """mapInArrow: a whole partition of users to its calls."""

    def __init__(self, config: TransformConfig, fmt: str, schema: pa.Schema) -> None:
        self.config, self.fmt, self.schema = config, fmt, schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # identify = a user's latest event: the partition is transformed as one batch.
        table = pa.Table.from_batches(list(batches))
        if table.num_rows == 0:
            return
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        canonical = normalize_frame(
            frame.drop("_row", "_duplicate"), self.config, source=_SOURCE
        ).with_columns(_row=frame["_row"].cast(pl.UInt64), _duplicate=frame["_duplicate"])
        for out in transform_batch(canonical, self.config, self.fmt).to_batches():
            yield out.cast(self.schema)


def _to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in frame.to_arrow().to_batches():
        yield batch.cast(schema)


def _arrow_schema(spark: SparkSession, schema: Any) -> pa.Schema:
    """The Arrow schema Spark expects back from ``mapInArrow`` for ``schema``.

    ``StringType`` is ``string`` (32-bit offsets), or ``large_string`` when the session
    sets ``spark.sql.execution.arrow.useLargeVarTypes``; polars hands out
    ``large_string``/``string_view``, so every batch is cast to this.
    """
    from pyspark.sql import types as T

    if isinstance(schema, str):
        schema = T._parse_datatype_string(schema)
    large = str(spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")).lower()
    text = pa.large_string() if large == "true" else pa.string()

    def arrow(dtype: Any) -> pa.DataType:
        if isinstance(dtype, T.StringType):
            return text
        if isinstance(dtype, T.LongType):
            return pa.int64()
        if isinstance(dtype, T.TimestampType):
            return pa.timestamp("us", tz="UTC")
        from pyspark.sql.pandas.types import to_arrow_type

        return to_arrow_type(dtype, timezone="UTC")

    return pa.schema([pa.field(f.name, arrow(f.dataType)) for f in schema.fields])


# --------------------------------------------------------------------------- outputs


def write_calls_parquet(calls_df: DataFrame, path: str, *, mode: str = "overwrite") -> None:
    """Write a calls DataFrame to Parquet, one file per partition of users."""
    calls_df.write.mode(mode).parquet(str(path))


def send_partitions(
    calls_df: DataFrame,
    *,
    api_key: str,
    ledger_dir: str | Path,
    base_url: str | None = None,
    format: str = "v2",
    url: str | None = None,
    options: DeliveryOptions | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> DeliveryReport:
    """Send every partition of a calls DataFrame with the delivery engine, in parallel.

    Each Spark task sends its partition in order (identify, then group, then track) and
    records acknowledged ids in its own ledger, ``ledger_dir/partition-<id>.sqlite``,
    so a retried task, or a re-run with the same partitions, skips what was sent.
    Partitions hold whole users, so a user's identify precedes their tracks; calls of
    different partitions run concurrently. ``ledger_dir`` must be a path every executor
    sees (local disk in local mode, a shared mount on a cluster); disable speculative
    execution. Failed calls of partition i go to ``ledger_dir/partition-<i>.dead.ndjson``.
    Returns the summed report of all partitions.
    """
    _pyspark()
    from .delivery import DeliveryOptions, DeliveryReport, EndpointStats, Secret

    wire = get_format(format)
    send = _Send(
        Secret(api_key),
        wire.name,
        str(ledger_dir),
        options or DeliveryOptions(),
        base_url=base_url,
        url=url,
        batch_size=batch_size,
    )
    started = time.perf_counter()
    rows = calls_df.mapInArrow(send, "partition int, report string").collect()
    total = DeliveryReport()
    known = {f.name for f in fields(EndpointStats)}
    for row in rows:
        part = _loads(row["report"])
        for kind, stats in part["calls"].items():
            total.endpoint(kind).add(EndpointStats(**{k: v for k, v in stats.items() if k in known}))
        total.stopped = total.stopped or part["stopped"]
    total.duration_s = time.perf_counter() - started
    return total


class _Send:
    """mapInArrow: deliver one partition's calls; yields its report as JSON."""

    def __init__(
        self, secret: Any, fmt: str, ledger_dir: str, options: Any, *,
        base_url: str | None, url: str | None, batch_size: int,
    ) -> None:  # fmt: skip
        self.secret, self.fmt, self.ledger_dir, self.options = secret, fmt, ledger_dir, options
        self.base_url, self.url, self.batch_size = base_url, url, batch_size

    def __repr__(self) -> str:  # never show the key
        return f"_Send(format={self.fmt!r}, ledger_dir={self.ledger_dir!r})"

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from .delivery import send

        context = TaskContext.get()
        pid = context.partitionId() if context else 0
        table = pa.Table.from_batches(list(batches))
        if table.num_rows == 0:
            return
        calls = pl.from_arrow(table)
        assert isinstance(calls, pl.DataFrame)
        wire = get_format(self.fmt)
        base = Path(self.ledger_dir) / f"partition-{pid}"
        options = replace(
            self.options,
            ledger_path=base.with_suffix(".sqlite"),
            dead_letter_path=base.with_suffix(".dead.ndjson"),
            progress=False,
            total_calls=calls.height,
        )
        batches_out = iter_batches(
            calls.rename({"endpoint": "kind"}),
            wire,
            base_url=self.base_url,
            url=self.url,
            batch_size=self.batch_size,
        )
        report = send(batches_out, api_key=self.secret.reveal(), auth=wire.auth, options=options)
        yield pa.RecordBatch.from_pydict(
            {"partition": [pid], "report": [_dumps(report.to_dict())]},
            schema=pa.schema([("partition", pa.int32()), ("report", pa.string())]),
        )


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _loads(text: str) -> Any:
    import orjson

    return orjson.loads(text)


__all__ = [
    "CALLS_ARROW_SCHEMA",
    "CALLS_DDL",
    "INSTALL_HINT",
    "read_amplitude_json",
    "send_partitions",
    "to_calls",
    "write_calls_parquet",
]
