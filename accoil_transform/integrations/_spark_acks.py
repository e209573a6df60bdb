"""The acknowledgements table: which calls each destination acknowledged, as Parquet files.

A folder (or an object-store URI) of Parquet files with the columns of
:data:`ACKS_SCHEMA`: ``destination`` (base URL and a one-way hash of the key, as in the
single-machine ledger; never the key), ``call_id``, ``kind`` and ``acked_at``. Calls
Accoil rejected for good are kept apart, in ``<folder>/_rejected`` (plus a ``status``
column); Spark skips folders whose names start with ``_`` when it reads the table.

Files are only ever added, each committed atomically: written under a hidden name (a
leading ``.``, which readers skip), then renamed (on object stores a single upload is
already atomic). Nothing needs Spark but :func:`acked_ids` and :func:`compact_acks`:
executors write with pyarrow's filesystems, and ``accoil-transform ledger export`` writes
the same files from a SQLite ledger.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..calls import CALL_KINDS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The acknowledgements table's columns.
ACKS_SCHEMA = pa.schema(
    [
        pa.field("destination", pa.string()),
        pa.field("call_id", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("acked_at", pa.timestamp("us", tz="UTC")),
    ]
)
#: The rejected calls' columns: the same, and the final HTTP status (0: none).
REJECTED_SCHEMA = ACKS_SCHEMA.append(pa.field("status", pa.int32()))
ACKS_DDL = "destination string, call_id string, kind string, acked_at timestamp"
REJECTED_DDL = ACKS_DDL + ", status int"
#: The subfolder of rejected calls.
REJECTED_DIR = "_rejected"

#: Acknowledgements per file at most, and seconds before a pending group is committed.
DEFAULT_ACK_GROUP = 500
DEFAULT_ACK_SECONDS = 2.0


def kind_of(call_id: str) -> str | None:
    """The call kind in a call id (``<format>:<kind>[-...]:...``), or ``None``."""
    parts = call_id.split(":", 2)
    kind = parts[1].split("-", 1)[0] if len(parts) > 2 else None
    return kind if kind in CALL_KINDS else None


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for ``uri`` (a local path, ``file:``, ``s3://``, ``gs://``...)."""
    if uri.startswith("file:") and not uri.startswith("file://"):
        uri = "file://" + uri[len("file:") :]  # Spark's file:/x
    for hadoop in ("s3a://", "s3n://"):  # Hadoop's names of S3
        if uri.startswith(hadoop):
            uri = "s3://" + uri[len(hadoop) :]
    return pafs.FileSystem.from_uri(uri)


def write_group(fs: pafs.FileSystem, folder: str, name: str, table: pa.Table) -> None:
    """Write ``table`` as ``folder/name`` atomically: a hidden file, then a rename."""
    fs.create_dir(folder, recursive=True)
    hidden = f"{folder}/.{name}.tmp"
    pq.write_table(table, hidden, filesystem=fs)
    fs.move(hidden, f"{folder}/{name}")


def rows(
    destination: str,
    ids: Sequence[str],
    kinds: Mapping[str, str] | None,
    *,
    statuses: Sequence[int] | None = None,
    at: datetime | None = None,
) -> pa.Table:
    """A table of :data:`ACKS_SCHEMA` (:data:`REJECTED_SCHEMA` with ``statuses``)."""
    columns: dict[str, Any] = {
        "destination": [destination] * len(ids),
        "call_id": list(ids),
        "kind": [(kinds or {}).get(i) or kind_of(i) for i in ids],
        "acked_at": [at] * len(ids),
    }
    if statuses is None:
        return pa.table(columns, schema=ACKS_SCHEMA)
    return pa.table({**columns, "status": list(statuses)}, schema=REJECTED_SCHEMA)


def read_ids(fs: pafs.FileSystem, folder: str, prefix: str, destination: str) -> set[str]:
    """The call ids of ``destination`` in the committed files of ``folder`` named ``prefix*``."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    ids: set[str] = set()
    for info in infos:
        if info.type == pafs.FileType.File and info.base_name.startswith(prefix):
            table = pq.read_table(info.path, filesystem=fs, columns=["destination", "call_id"])
            for d, i in zip(
                *(table.column(c).to_pylist() for c in table.column_names), strict=True
            ):
                if d == destination:
                    ids.add(i)
    return ids


class TableSink:
    """An :class:`~accoil_transform.delivery.AckSink` that appends to the acknowledgements
    table: the ledger of one Spark task attempt.

    Acknowledged ids are committed as one file per group of ``group`` ids, or after
    ``seconds``, whichever comes first (and at :meth:`flush`/:meth:`close`). Unlike the
    SQLite ledger, a call's slot is given back at once, so a killed task re-sends at most
    its calls in flight plus its pending group. ``skip`` holds ids acknowledged by earlier
    attempts of the same task. Writing happens under a lock, on the caller's thread or a
    timer thread; a failed write raises :class:`LedgerError` on the next call.
    """

    def __init__(
        self,
        uri: str,
        destination: str,
        prefix: str,
        *,
        kinds: Mapping[str, str] | None = None,
        skip: Iterable[str] = (),
        group: int = DEFAULT_ACK_GROUP,
        seconds: float = DEFAULT_ACK_SECONDS,
    ) -> None:
        self.fs, self.root = filesystem(uri)
        self.destination, self.prefix, self.kinds = destination, prefix, kinds
        self.skip = set(skip)
        self.group, self.seconds = group, seconds
        self.files = 0
        self._acked: list[str] = []
        self._rejected: list[tuple[str, int]] = []
        self._since = time.monotonic()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._closed = threading.Event()
        self._timer = threading.Thread(target=self._tick, name="acks-writer", daemon=True)
        self._timer.start()

    def __repr__(self) -> str:
        return f"TableSink({self.root!r}, {self.prefix!r})"

    def unsent(self, ids: Sequence[str], *, retry_rejected: bool = False) -> tuple[list[str], int]:
        """``ids`` less those earlier attempts acknowledged (the table was anti-joined)."""
        return [i for i in ids if i not in self.skip], 0

    def record(
        self,
        ids: Iterable[str],
        *,
        status: int | None = None,
        wait: bool = False,
        on_commit: Callable[[], object] | None = None,
    ) -> None:
        """Queue ``ids`` as acknowledged (with ``status``: rejected); ``on_commit`` runs
        at once (the slot is not held); ``wait`` commits before returning."""
        with self._lock:
            self._raise_if_failed()
            if status is None:
                self._acked.extend(ids)
            else:
                self._rejected.extend((i, status) for i in ids)
            due = len(self._acked) + len(self._rejected) >= self.group
        if due or wait:
            self.flush()
        if on_commit is not None:
            on_commit()

    def flush(self) -> None:
        """Commit what is pending."""
        with self._lock:
            self._raise_if_failed()
            acked, self._acked = self._acked, []
            rejected, self._rejected = self._rejected, []
            self._since = time.monotonic()
            if not acked and not rejected:
                return
            now = datetime.now(UTC)
            try:
                if acked:
                    table = rows(self.destination, acked, self.kinds, at=now)
                    write_group(self.fs, self.root, self._name(), table)
                if rejected:
                    ids, statuses = zip(*rejected, strict=True)
                    table = rows(self.destination, ids, self.kinds, statuses=statuses, at=now)
                    write_group(self.fs, f"{self.root}/{REJECTED_DIR}", self._name(), table)
            except (OSError, pa.ArrowException) as exc:
                self._error = exc
                self._raise_if_failed()

    def close(self) -> None:
        """Commit what is pending and stop the timer."""
        self._closed.set()
        self._timer.join()
        self.flush()

    def _name(self) -> str:
        self.files += 1
        return f"{self.prefix}{self.files:05d}.parquet"

    def _tick(self) -> None:
        while not self._closed.wait(min(0.5, self.seconds / 2)):
            if time.monotonic() - self._since >= self.seconds:
                try:
                    self.flush()
                except Exception:  # kept in self._error; the sender sees it next time
                    return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            from ..errors import LedgerError

            raise LedgerError(f"cannot write the acknowledgements table {self.root}: {self._error}")


def run_prefix() -> str:
    """A new run's file-name prefix: ``acks-<run>-``."""
    return f"acks-{uuid.uuid4().hex[:12]}-"


# --------------------------------------------------------------------------- Spark side


def acked_ids(
    spark: SparkSession, uri: str, destination: str, *, retry_rejected: bool = False
) -> DataFrame | None:
    """The ``call_id`` of every call the table holds as done for ``destination``
    (acknowledged, and rejected unless ``retry_rejected``); ``None`` with no table yet."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    out = None
    folders = [(uri, ACKS_DDL)]
    if not retry_rejected:
        folders.append((f"{uri.rstrip('/')}/{REJECTED_DIR}", REJECTED_DDL))
    for folder, ddl in folders:
        try:
            table = spark.read.schema(ddl).parquet(folder)
        except AnalysisException:  # no such folder yet
            continue
        ids = table.where(F.col("destination") == destination).select("call_id")
        out = ids if out is None else out.unionAll(ids)
    return out


def compact_acks(spark: SparkSession, path: str, *, files: int = 1) -> dict[str, dict[str, int]]:
    """Rewrite the acknowledgements table's files (and its rejected calls') as ``files``
    files each, one row per (destination, call_id); return and print how many calls were
    acknowledged per destination and kind.

    Files committed while it runs are left alone; a reader may briefly see a call twice,
    which is harmless. Stop the runs that write the table to get the fewest files.
    """
    from pyspark.sql import functions as F

    uri = _spark_uri(path)
    counts: dict[str, dict[str, int]] = {}
    for folder, ddl in ((uri, ACKS_DDL), (f"{uri}/{REJECTED_DIR}", REJECTED_DDL)):
        jvm, fs = _hadoop_fs(spark, folder)
        if not fs.exists(jvm.org.apache.hadoop.fs.Path(folder)):
            continue
        old = spark.read.schema(ddl).parquet(folder).inputFiles()
        if not old:
            continue
        table = spark.read.schema(ddl).parquet(*old)
        extra = [F.max("status").alias("status")] if "status" in ddl else []
        merged = table.groupBy("destination", "call_id").agg(
            F.first("kind", ignorenulls=True).alias("kind"),
            F.min("acked_at").alias("acked_at"),
            *extra,
        )
        staging = f"{folder}/_compacting-{uuid.uuid4().hex[:8]}"
        _write_micros(merged.coalesce(files), staging)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        Path = jvm.org.apache.hadoop.fs.Path
        for i, status in enumerate(fs.globStatus(Path(f"{staging}/part-*.parquet"))):
            fs.rename(status.getPath(), Path(f"{folder}/compacted-{stamp}-{i:05d}.parquet"))
        fs.delete(Path(staging), True)
        for name in old:
            fs.delete(Path(name), False)
        if "status" not in ddl:
            for row in (
                spark.read.schema(ddl)
                .parquet(folder)
                .groupBy("destination", "kind")
                .count()
                .collect()
            ):
                counts.setdefault(row["destination"], {})[row["kind"] or "?"] = row["count"]
    for destination, by_kind in sorted(counts.items()):
        shown = ", ".join(f"{k} {n:,}" for k, n in sorted(by_kind.items()))
        print(f"{destination}: {shown}")
    return counts


def _write_micros(df: DataFrame, uri: str) -> None:
    """Write ``df`` as Parquet with ``acked_at`` in microseconds (as the tasks write it),
    not Spark's default INT96."""
    conf = df.sparkSession.conf
    key = "spark.sql.parquet.outputTimestampType"
    before = conf.get(key, None)
    conf.set(key, "TIMESTAMP_MICROS")
    try:
        df.write.parquet(uri)
    finally:
        if before is None:
            conf.unset(key)
        else:
            conf.set(key, before)


def _spark_uri(path: str) -> str:
    import os

    text = os.fspath(path).rstrip("/")
    return text if "://" in text or text.startswith("file:") else os.path.abspath(text)


def _hadoop_fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    sc = spark.sparkContext
    jvm = sc._jvm
    assert jvm is not None
    conf = sc._jsc.hadoopConfiguration()
    return jvm, jvm.org.apache.hadoop.fs.Path(uri).getFileSystem(conf)
