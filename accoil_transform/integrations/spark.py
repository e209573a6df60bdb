"""Run the transform inside Apache Spark, for event tables past one machine.

Nothing here is a distributed system of its own: Spark reads, shuffles and retries; each
partition runs the same pure core as the single-machine path
(:func:`~accoil_transform.read.normalize_frame` and :func:`transform_batch`) through
``mapInArrow``.

:func:`to_calls` plans it in three steps:

1. **Shape and normalise** (no shuffle). The needed columns are picked by the core's
   own rules (any case, ``$insert_id``/``_insert_id``/``insert_id``); nested
   struct/map/array/variant columns become JSON text with ``to_json`` (null fields
   kept). Each scan batch then goes through ``normalize_frame``, which also yields the
   core's duplicate key (null for a malformed row) and user id of every row.
2. **Duplicates, over the whole input.** A window by duplicate key ordered by ``_row``
   flags every row but the first occurrence in input order. Malformed rows have no key,
   so they never count as a first occurrence, exactly as in the core.
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

import os
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl
import pyarrow as pa

from ..calls import build_calls, get_format, group_calls, iter_batches
from ..config import DEFAULT_BATCH_SIZE, JSON_COLUMNS, DeliveryOptions, TransformConfig
from ..errors import ConfigError, InputError
from ..read import (
    CANONICAL_SCHEMA,
    canonical_name,
    file_order,
    ndjson_read_schema,
    normalize_frame,
    parse_ndjson,
)
from ..rules import GROUP_FACTS_SCHEMA, Transformer, apply_rules, dedup_key, user_id
from ..rules._select import GROUP_IDENTIFY
from ._spark_acks import (
    ACKS_SCHEMA,
    DEFAULT_ACK_GROUP,
    DEFAULT_ACK_SECONDS,
    REJECTED_DIR,
    TableSink,
    acked_ids,
    compact_acks,
    filesystem,
    read_ids,
    run_prefix,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from ..delivery import DeliveryReport

INSTALL_HINT = 'the Spark path needs pyspark: pip install "accoil-transform[spark]"'

#: The columns of a calls DataFrame (Spark DDL): the calls frame's own.
CALLS_DDL = "kind string, call_id string, user_id string, body string"

#: :data:`CALLS_DDL` in Arrow: plain ``string`` (32-bit offsets), the type Spark's
#: ``StringType`` maps to; never ``large_string`` or ``string_view``.
CALLS_ARROW_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string()),
        pa.field("call_id", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("body", pa.string()),
    ]
)

#: Rows per output record batch: keeps each batch's string data far below 2 GiB.
_OUT_ROWS = 65_536

#: Columns the per-partition transform needs, after normalisation (Spark DDL).
_CANONICAL_DDL = (
    "_row long, uuid string, insert_id string, device_id string, user_id string, "
    "event_type string, event_time timestamp, " + ", ".join(f"{c} string" for c in JSON_COLUMNS)
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
    spark: SparkSession,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    config: TransformConfig | None = None,
) -> DataFrame:
    """Read Amplitude NDJSON files (``.json``, ``.json.gz``) into a Spark DataFrame.

    For the S3/GCS export layout, or Export API zips once unzipped (their members are
    gzip NDJSON). Lines are parsed by the core's own NDJSON reader, so nested columns
    are the same JSON text as on one machine; a line that is not a JSON object becomes
    a row of nulls (malformed, as on one machine). ``_row`` numbers the non-blank lines
    as the single-machine reader does for a folder: by directory, then Export API
    members by date, hour and part, then by name; lines in file order. Numbering costs
    one counting pass over the files.
    """
    F = _pyspark()

    config = config or TransformConfig()
    uid = config.user_id_ref
    schema = ndjson_read_schema(uid.name if uid.scope == "column" else None)
    ddl = "_row long, " + ", ".join(f"`{name}` string" for name in schema)
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    absolute = [_absolute(p) for p in given]
    value = F.regexp_replace("value", "^\ufeff", "")  # a UTF-8 byte order mark
    lines = (
        spark.read.option("lineSep", "\n")  # not at a lone \r, as on one machine
        .text(absolute)
        .where(F.length(F.btrim(value, F.lit(" \t\r\x0b\x0c"))) > 0)
        # After the filter, so that ids are consecutive within a file split.
        .select(
            value.alias("value"),
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
    numbered = lines.join(F.broadcast(shift), ["_file", "_block"]).select(
        (F.col("_mid") + F.col("_shift")).alias("_row"), "value"
    )
    parse = _ParseLines(schema, _arrow_schema(spark, ddl))
    return numbered.mapInArrow(parse, ddl)


class _ParseLines:
    """mapInArrow: NDJSON lines to event columns with the core's NDJSON reader."""

    def __init__(self, schema: dict[str, pl.DataType], arrow: pa.Schema) -> None:
        self.schema, self.arrow = schema, arrow

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            values = batch.column("value").to_pylist()
            try:
                parsed = parse_ndjson("\n".join(values).encode(), _SOURCE, self.schema)
            except InputError:  # no line of this batch is a JSON object: all malformed
                parsed = pl.DataFrame(
                    {
                        name: pl.Series(name, [None] * len(values), dtype)
                        for name, dtype in self.schema.items()
                    }
                )
            if parsed.height != len(values):
                raise RuntimeError("NDJSON lines and parsed rows do not line up")
            out = parsed.select(list(self.schema)).with_columns(
                _row=pl.Series(batch.column("_row"))
            )
            yield from _to_arrow(out.select(self.arrow.names), self.arrow)


def _absolute(path: str | os.PathLike[str]) -> str:
    """A local relative path made absolute here: Spark resolves it against the JVM's cwd."""
    text = os.fspath(path)
    return text if "://" in text or text.startswith("file:") else os.path.abspath(text)


def _path_key(uri: str) -> tuple:
    """Sort like the single-machine reader sorts a folder (Export API members by hour)."""
    return file_order(Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path)))


# --------------------------------------------------------------------------- transform


def transform_batch(
    batch: pa.RecordBatch | pa.Table | pl.DataFrame,
    config: TransformConfig | None = None,
    format: str = "v2",
    *,
    known_groups: pl.DataFrame | None = None,
) -> pa.Table:
    """Map a batch of canonical events to its calls, in delivery order (no Spark needed).

    ``batch`` has the :data:`~accoil_transform.read.CANONICAL_SCHEMA` columns (as made
    by :func:`~accoil_transform.read.normalize_frame`) and optionally a boolean
    ``_duplicate`` judged over the whole input. A batch is self-contained: identify and
    group calls come from the latest event of each user in it, so it must hold every
    event of each of its users; ``known_groups`` holds group facts learnt from the whole
    input (:meth:`~accoil_transform.rules.Transformer.group_knowledge`). The result has
    :data:`CALLS_ARROW_SCHEMA`: identify calls first, then group, then track.

    >>> from accoil_transform.read import empty_canonical
    >>> transform_batch(empty_canonical()).schema == CALLS_ARROW_SCHEMA
    True
    """
    frame = batch if isinstance(batch, pl.DataFrame) else pl.DataFrame(batch)
    columns = [*CANONICAL_SCHEMA, *(["_duplicate"] if "_duplicate" in frame.columns else [])]
    config = config or TransformConfig()
    result = apply_rules(frame.select(columns), config, known_groups=known_groups)
    calls = build_calls(result.tracks, result.identifies, result.groups, get_format(format))
    return _calls_table(calls)


def _calls_table(calls: pl.DataFrame) -> pa.Table:
    batches = [
        pa.RecordBatch.from_arrays(
            [chunk[name].to_arrow().cast(pa.string()) for name in CALLS_ARROW_SCHEMA.names],
            schema=CALLS_ARROW_SCHEMA,
        )
        for chunk in calls.iter_slices(_OUT_ROWS)
    ]
    return pa.Table.from_batches(batches, schema=CALLS_ARROW_SCHEMA)


def to_calls(
    spark_df: DataFrame,
    config: TransformConfig | None = None,
    format: str = "v2",
    *,
    partitions: int | None = None,
) -> DataFrame:
    """Transform a Spark DataFrame of Amplitude events into a DataFrame of Accoil calls.

    ``spark_df`` is in either export shape: nested columns as JSON strings, or as
    structs/maps (or variants). The result has the columns of a calls frame (``kind``,
    ``call_id``, ``user_id``, ``body``; :data:`CALLS_DDL`), and ``partitions`` partitions
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
    shaped, names = _shape(spark_df, config)
    normalize = _Normalize(config, names, _arrow_schema(spark, _KEYED_DDL))
    keyed = shaped.mapInArrow(normalize, _KEYED_DDL)

    # 2. Duplicates: the first non-malformed occurrence of a key, in input order, is kept.
    # Rows without a key get a key of their own, so they do not all meet in one task.
    own_key = F.concat(F.lit("\x00"), F.col("_row").cast("string"))
    first = Window.partitionBy(F.coalesce("_key", own_key)).orderBy("_row")
    account_data = F.col("event_type") == GROUP_IDENTIFY  # needs no user
    rows = (
        keyed.where(F.col("_key").isNotNull() | F.col("_user").isNotNull() | account_data)
        .withColumn("_duplicate", F.row_number().over(first) > 1)
        .where((F.col("_user").isNotNull() | account_data) & ~F.col("_duplicate"))
        .drop("_key")
    )
    if config.user_id_ref.scope == "column":  # canonical rows hold it as ``user_id``
        config = config.replace(user_id="user_id")

    # 3. What the rows tell about groups, over the whole input: each group's latest
    # traits, the groups $groupidentify rows name, the primary groups.
    facts = _group_facts(rows.drop("_user"), config)

    # 4. Each user's rows in one partition, in input order, with the groups' traits.
    n = partitions or int(spark.conf.get("spark.sql.shuffle.partitions") or 200)
    by_user = (
        rows.where(~account_data).repartition(n, "_user").sortWithinPartitions("_row").drop("_user")
    )
    traits = facts.filter(pl.col("fact") == "traits")
    transform = _Transform(config, wire.name, _arrow_schema(spark, CALLS_DDL), traits)
    calls = by_user.mapInArrow(transform, CALLS_DDL)
    accounts = _account_calls(facts, config, wire.name)
    if accounts.num_rows == 0:
        return calls
    return calls.union(spark.createDataFrame(accounts.to_pandas(), CALLS_DDL))


def _group_facts(rows: DataFrame, config: TransformConfig) -> pl.DataFrame:
    """The group facts (:meth:`~accoil_transform.rules.Transformer.group_knowledge`) of
    all ``rows``, combined: the latest of each (fact, group), on the driver."""
    F = _pyspark()
    from pyspark.sql import Window

    spark = rows.sparkSession
    ddl = "fact string, group_type string, group_id string, event_time timestamp, " + (
        "_row long, traits string"
    )
    facts = rows.mapInArrow(_GroupFacts(config, _arrow_schema(spark, ddl)), ddl)
    latest = Window.partitionBy("fact", "group_type", "group_id").orderBy(
        F.col("event_time").desc_nulls_last(), F.col("_row").desc_nulls_last()
    )
    table = facts.withColumn("_n", F.row_number().over(latest)).where("_n = 1").drop("_n").toArrow()
    frame = pl.DataFrame(table)
    return frame.select(pl.col(c).cast(t) for c, t in GROUP_FACTS_SCHEMA.items())


def _account_calls(facts: pl.DataFrame, config: TransformConfig, fmt: str) -> pa.Table:
    """The account-only group calls: groups $groupidentify rows name that are no event's
    primary group (``v2`` only)."""
    transformer = Transformer(config)
    transformer.learn_groups(facts)
    _, groups = transformer.finish()
    calls = group_calls(groups.filter(pl.col("userId").is_null()), fmt)
    return _calls_table(calls)


def _shape(df: DataFrame, config: TransformConfig) -> tuple[DataFrame, list[str]]:
    """The columns the core reads, nested ones as JSON text, and their input names.

    Columns are renamed by position (``_c0``, ``_c1``...): input names may hold ``$``
    or dots, or differ only in case, which Spark cannot tell apart. The partitions put
    the input names back, and ``normalize_frame`` folds them (every spelling of a
    column, coalesced) exactly as on one machine.
    """
    F = _pyspark()
    from pyspark.sql import types as T

    uid = config.user_id_ref
    wanted = {"uuid", "insert_id", "device_id", "event_type", "event_time", *JSON_COLUMNS}
    if uid.scope == "column":
        wanted.add(canonical_name(uid.name))
    nested = (T.StructType, T.MapType, T.ArrayType, T.VariantType)
    picked: list[Any] = []
    names: list[str] = []
    row = None
    for i, field in enumerate(df.schema.fields):
        name = canonical_name(field.name)
        col = F.col(f"_c{i}")
        if name == "_row" and row is None:
            row = col.cast("long")
        elif name in wanted:
            if name in JSON_COLUMNS and isinstance(field.dataType, nested):
                col = F.to_json(col, {"ignoreNullFields": "false"})
            picked.append(col.alias(f"_c{len(names)}"))
            names.append(field.name)
    positional = df.toDF(*[f"_c{i}" for i in range(len(df.columns))])
    if row is None:
        row = F.monotonically_increasing_id()  # before any shuffle: the scan order
    out = positional.select(row.alias("_row"), *picked)
    # Check the shape on the driver, with the core's own rules, before any task runs.
    arrow = _arrow_schema(df.sparkSession, out.drop("_row").schema)
    empty = pl.DataFrame(arrow.empty_table()).rename(dict(zip(arrow.names, names, strict=True)))
    normalize_frame(empty, config, source="the Spark DataFrame")
    return out, names


class _Normalize:
    """mapInArrow: each scan batch to canonical columns plus the duplicate and user keys."""

    def __init__(self, config: TransformConfig, names: list[str], schema: pa.Schema) -> None:
        self.config, self.names, self.schema = config, names, schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            events = frame.drop("_row")
            events.columns = self.names
            canonical = normalize_frame(events, self.config, source=_SOURCE)
            out = canonical.with_columns(
                _row=frame["_row"].cast(pl.UInt64),
                _key=pl.when(pl.col("_malformed").is_null()).then(dedup_key()),
                _user=pl.when(pl.col("_malformed").is_null()).then(
                    user_id(self.config.user_id_ref)
                ),
            ).select(self.schema.names)
            yield from _to_arrow(out, self.schema)


def _canonical(table: pa.Table, config: TransformConfig) -> pl.DataFrame:
    """Shaped rows (``_row``, input columns, ``_duplicate``) as canonical events."""
    frame = pl.DataFrame(table)
    return normalize_frame(frame.drop("_row", "_duplicate"), config, source=_SOURCE).with_columns(
        _row=frame["_row"].cast(pl.UInt64), _duplicate=frame["_duplicate"]
    )


class _GroupFacts:
    """mapInArrow: the group facts of each batch of rows."""

    def __init__(self, config: TransformConfig, schema: pa.Schema) -> None:
        self.config, self.schema = config, schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if not batch.num_rows:
                continue
            transformer = Transformer(self.config)
            transformer.feed(_canonical(pa.Table.from_batches([batch]), self.config))
            facts = transformer.group_knowledge()
            yield from _to_arrow(facts.select(self.schema.names), self.schema)


class _Transform:
    """mapInArrow: a whole partition of users to its calls."""

    def __init__(
        self, config: TransformConfig, fmt: str, schema: pa.Schema, known_groups: pl.DataFrame
    ) -> None:
        self.config, self.fmt, self.schema = config, fmt, schema
        self.known_groups = known_groups

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # identify = a user's latest event: the partition is transformed as one batch.
        table = _whole(batches)
        if table is None:
            return
        canonical = _canonical(table, self.config)
        calls = transform_batch(canonical, self.config, self.fmt, known_groups=self.known_groups)
        for out in calls.to_batches():
            yield out.cast(self.schema)


def _whole(batches: Iterator[pa.RecordBatch]) -> pa.Table | None:
    """A partition's batches as one table; ``None`` for an empty partition."""
    collected = [b for b in batches if b.num_rows]
    return pa.Table.from_batches(collected) if collected else None


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


def write_calls_parquet(
    calls_df: DataFrame, path: str | os.PathLike[str], *, mode: str = "overwrite"
) -> None:
    """Write a calls DataFrame to Parquet, one file per partition of users."""
    calls_df.write.mode(mode).parquet(_absolute(path))


def send_partitions(
    calls_df: DataFrame,
    *,
    api_key: str,
    acks: str | os.PathLike[str] | None = None,
    ledger_dir: str | Path | None = None,
    base_url: str | None = None,
    format: str = "v2",
    url: str | None = None,
    options: DeliveryOptions | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rate_total: float | None = None,
    dead_letter_dir: str | Path | None = None,
    ack_group: int = DEFAULT_ACK_GROUP,
    ack_seconds: float = DEFAULT_ACK_SECONDS,
) -> DeliveryReport:
    """Send every partition of a calls DataFrame with the delivery engine, in parallel.

    Each Spark task sends its partition in order (identify, then group, then track) with
    :func:`~accoil_transform.delivery.send` (retries, rate limit, circuit breaker).
    Partitions hold whole users, so a user's identify precedes their tracks; calls of
    different partitions run concurrently. Returns the summed report of all tasks.

    ``acks`` (a folder or object-store URI that Spark and the executors' pyarrow can
    write) holds the acknowledgements table (:mod:`._spark_acks`). The calls it holds as
    done for this destination (base URL and key hash) are anti-joined away first, and
    the rest re-partitioned by user; each task attempt commits its acknowledged ids as
    files of its own every ``ack_group`` ids or ``ack_seconds``. So a re-run, with any
    partitions, or a retried task, re-sends only the calls that were in flight (sent,
    their group not yet committed) when a task died; a speculative attempt may likewise
    duplicate only the calls in flight. Anti-joined calls are in no count of the report.

    ``ledger_dir`` is the single-node option instead: one SQLite ledger per partition,
    ``ledger_dir/partition-<id>.sqlite``, on a local disk (SQLite must not be on a
    network mount); a re-run must use the same partitions.

    ``max_rate_total`` caps calls/s over all tasks: each task gets an equal share of the
    tasks that run at once (the partitions, at most ``spark.default.parallelism``), and
    ``options.max_rate`` still caps each task. Calls that finally failed go to
    ``dead_letter_dir/partition-<id>-<attempt>.dead.ndjson`` (a local or mounted folder)
    if given (with ``ledger_dir``: beside the ledgers).
    """
    _pyspark()
    from .._destination import Destination
    from ..delivery import DeliveryReport

    if not api_key:
        raise ConfigError("an API key is required to send calls (set ACCOIL_API_KEY)")
    if (acks is None) == (ledger_dir is None):
        raise ConfigError("send_partitions needs acks=PATH (or ledger_dir=, single node)")
    if max_rate_total is not None and max_rate_total <= 0:
        raise ConfigError(f"max_rate_total must be positive, got {max_rate_total}")
    if ack_group < 1 or ack_seconds <= 0:
        raise ConfigError("ack_group must be at least 1 and ack_seconds positive")
    wire = get_format(format)
    options = options or DeliveryOptions()
    destination = Destination.resolve(api_key, base_url)
    todo = calls_df
    where: _Where
    if acks is not None:
        uri = _absolute(acks).rstrip("/")
        done = acked_ids(
            calls_df.sparkSession, uri, destination.id, retry_rejected=options.retry_rejected
        )
        if done is not None:  # the join shuffles: each user's calls in one partition again
            n = calls_df.rdd.getNumPartitions()
            todo = (
                calls_df.join(done, "call_id", "left_anti")
                .select(*calls_df.columns)
                .repartition(n, "user_id")
            )
        dead = str(Path(dead_letter_dir).resolve()) if dead_letter_dir is not None else None
        where = _Where(uri, None, dead, run_prefix(), ack_group, ack_seconds)
    else:
        assert ledger_dir is not None
        folder = str(Path(ledger_dir).resolve())  # a local folder: SQLite files
        where = _Where(None, folder, dead_letter_dir or folder, "", ack_group, ack_seconds)
    if max_rate_total is not None:
        sc = calls_df.sparkSession.sparkContext
        at_once = max(1, min(todo.rdd.getNumPartitions(), sc.defaultParallelism))
        share = max_rate_total / at_once
        options = replace(options, max_rate=min(options.max_rate or share, share))
    send = _Send(
        _TaskKey(api_key),
        wire.name,
        where,
        options,
        base_url=destination.base_url,
        url=url,
        batch_size=batch_size,
        destination=destination.id,
    )
    started = time.perf_counter()
    rows = todo.mapInArrow(send, "partition int, report string").collect()
    return DeliveryReport.combine(
        (DeliveryReport.from_dict(orjson.loads(row["report"])) for row in rows),
        duration_s=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class _Where:
    """Where a task keeps what it did: the acks table or a SQLite folder, dead letters."""

    acks: str | None
    ledger_dir: str | None
    dead_letter_dir: str | Path | None
    prefix: str  # this run's acks file names: acks-<run>-
    group: int
    seconds: float


class _TaskKey:
    """The API key on its way to the executors, inside the task closure.

    Unlike :class:`~accoil_transform.delivery.Secret` it can be pickled (Spark must ship
    it); like it, it never shows itself. On shared clusters enable Spark's RPC
    encryption (``spark.network.crypto.enabled``).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __getstate__(self) -> str:
        return self._value

    def __setstate__(self, state: str) -> None:
        self._value = state

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "_TaskKey('***')"


class _Send:
    """mapInArrow: deliver one partition's calls; yields its report as JSON."""

    def __init__(
        self, secret: Any, fmt: str, where: _Where, options: Any, *,
        base_url: str | None, url: str | None, batch_size: int, destination: str,
    ) -> None:  # fmt: skip
        self.secret, self.fmt, self.where, self.options = secret, fmt, where, options
        self.base_url, self.url, self.batch_size = base_url, url, batch_size
        self.destination = destination

    def __repr__(self) -> str:  # never show the key
        return f"_Send(format={self.fmt!r}, where={self.where!r})"

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from .._destination import Destination
        from ..delivery import send

        context = TaskContext.get()
        pid = context.partitionId() if context else 0
        attempt = context.attemptNumber() if context else 0
        table = _whole(batches)
        if table is None:
            return
        calls = pl.from_arrow(table)
        assert isinstance(calls, pl.DataFrame)
        wire = get_format(self.fmt)
        where = self.where
        options = replace(self.options, ledger_path=None, progress=False)
        sink = None
        if where.acks is not None:
            name = f"{where.prefix}p{pid:05d}-a{attempt}-{uuid.uuid4().hex[:6]}-"
            fs, root = filesystem(where.acks)
            # Skip what earlier attempts of this run acknowledged: of this partition (a
            # resubmitted stage starts again at attempt 0), or any (a retry, a speculation).
            mine = where.prefix if attempt else f"{where.prefix}p{pid:05d}-"
            skip: set[str] = set()
            for folder in (root, f"{root}/{REJECTED_DIR}"):
                skip |= read_ids(fs, folder, mine, self.destination)
            kinds = dict(zip(calls["call_id"], calls["kind"], strict=True))
            sink = TableSink(
                where.acks, self.destination, name, kinds=kinds, skip=skip,
                group=where.group, seconds=where.seconds,
            )  # fmt: skip
        else:
            assert where.ledger_dir is not None
            ledger = Path(where.ledger_dir) / f"partition-{pid}.sqlite"
            options = replace(options, ledger_path=ledger)
        if where.dead_letter_dir is not None:
            suffix = f"-{attempt}" if where.acks is not None else ""
            dead = Path(where.dead_letter_dir) / f"partition-{pid}{suffix}.dead.ndjson"
            options = replace(options, dead_letter_path=dead)
        batches_out = iter_batches(
            calls, wire, base_url=self.base_url, url=self.url, batch_size=self.batch_size
        )
        try:
            report = send(
                batches_out,
                auth=wire.auth,
                options=options,
                total=calls.height,
                destination=Destination.resolve(self.secret.reveal(), self.base_url),
                ledger=sink,
            )
        finally:
            if sink is not None:
                sink.close()  # what was acknowledged, even when the task fails
        yield pa.RecordBatch.from_pydict(
            {"partition": [pid], "report": [orjson.dumps(report.to_dict()).decode()]},
            schema=pa.schema([("partition", pa.int32()), ("report", pa.string())]),
        )


__all__ = [
    "ACKS_SCHEMA",
    "CALLS_ARROW_SCHEMA",
    "CALLS_DDL",
    "INSTALL_HINT",
    "compact_acks",
    "read_amplitude_json",
    "send_partitions",
    "to_calls",
    "transform_batch",
    "write_calls_parquet",
]
