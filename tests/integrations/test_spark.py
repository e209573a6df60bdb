"""The Spark path equals the single-machine path, call for call (issue: scale past one machine).

A real local Spark session (``local[2]``, UI off, 4 shuffle partitions) runs
:func:`accoil_transform.integrations.spark.to_calls`; the reference is
:func:`accoil_transform.transform` + :func:`build_calls` on the same input. Calls are
compared as multisets of (kind, call_id, user_id, body).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from accoil_transform import DeliveryOptions, TransformConfig, transform
from accoil_transform.calls import FORMATS, build_calls
from accoil_transform.integrations.spark import (
    CALLS_ARROW_SCHEMA,
    INSTALL_HINT,
    read_amplitude_json,
    send_partitions,
    to_calls,
    transform_batch,
    write_calls_parquet,
)
from accoil_transform.read import empty_canonical, read_events
from accoil_transform.testing import LocalAccoil
from accoil_transform.testing.synthetic import generate_events, write_s3_layout

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parents[2]
SAMPLE_ZIP = REPO / "sample_data" / "amplitude_export_sample.zip"
PARTITIONS = 4
API_KEY = "test-key"

Call = tuple[str, str, str | None, str]


def spark_calls(calls_df) -> list[Call]:
    assert calls_df.columns == ["kind", "call_id", "user_id", "body"]
    return sorted((r["kind"], r["call_id"], r["user_id"], r["body"]) for r in calls_df.collect())


def local_calls(inputs: Any, config: TransformConfig, fmt: str) -> list[Call]:
    result = transform(inputs, config)
    return sorted(build_calls(result.tracks, result.identifies, result.groups, fmt).rows())


def assert_same_calls(got: list[Call], want: list[Call]) -> None:
    assert len(want) > 0
    missing, extra = Counter(want) - Counter(got), Counter(got) - Counter(want)
    assert not missing and not extra, (
        f"{sum(missing.values())} calls missing, {sum(extra.values())} extra; "
        f"e.g. missing {list(missing)[:2]}, extra {list(extra)[:2]}"
    )


def partition_sizes(calls_df) -> list[int]:
    counts = calls_df.groupBy(F.spark_partition_id().alias("p")).count().collect()
    return sorted(r["count"] for r in counts)


# --------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    """The bundled Export API zip, unzipped: its members are gzip NDJSON files."""
    out = tmp_path_factory.mktemp("sample") / "187520"
    out.mkdir()
    with zipfile.ZipFile(SAMPLE_ZIP) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                (out / Path(info.filename).name).write_bytes(zf.read(info))
    return out


def _extra_lines() -> list[dict[str, Any] | str]:
    """Rows the rules are judged on, to be spread over several files by upload hour."""

    def ev(hour: int, **fields: Any) -> dict[str, Any]:
        stamp = f"2025-07-01 {hour:02d}:30:00.000000"
        base = {
            "uuid": None, "$insert_id": None, "device_id": "dev-x", "user_id": "usr_span",
            "event_type": "Report Created", "event_time": stamp, "server_upload_time": stamp,
            "event_properties": {"plan": "pro"}, "user_properties": {"email": "span@x.io"},
            "groups": {"Account": ["acc-1"]},
            "group_properties": {"Account": {"acc-1": {"name": "One", "mrr": 10.0}}},
        }  # fmt: skip
        return {**base, **fields}

    return [
        # A duplicate whose first occurrence is malformed: the later copy is kept.
        ev(1, uuid="dup-after-bad", event_time="yesterday-ish"),
        ev(20, uuid="dup-after-bad"),
        # First occurrence kept even though a later copy has another user (global key).
        ev(2, uuid="dup-cross-user", user_id="usr_first"),
        ev(21, uuid="dup-cross-user", user_id="usr_second"),
        # A first occurrence without a usable user id still makes later copies duplicates.
        ev(3, uuid="dup-no-user", user_id=" null "),
        ev(22, uuid="dup-no-user"),
        # Neither uuid nor $insert_id: call ids carry the input position (_row).
        ev(4, event_type="No Ids A"),
        ev(23, event_type="No Ids B"),
        # Same ($insert_id, device_id), no uuid, in two files.
        ev(5, **{"$insert_id": "ins-1"}),
        ev(18, **{"$insert_id": "ins-1", "event_type": "Dropped As Duplicate"}),
        # Equal times across files: the later row in input order is the user's latest.
        ev(6, uuid="tie-1", user_id="usr_tie", event_time="2025-07-01 12:00:00",
           user_properties={"name": "Early file"}),
        ev(19, uuid="tie-2", user_id="usr_tie", event_time="2025-07-01 12:00:00",
           user_properties={"name": "Late file"}),
        ev(7, uuid="no-type", event_type=None),
        "this line is not JSON",
        ev(8, uuid="late", event_time="2025-06-28T01:00:00.5+02:00"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """A generated S3-layout export over 6 files, with users and duplicates across files."""
    out = tmp_path_factory.mktemp("corpus") / "s3"
    # The spool files each event under its upload hour (a str line: the previous one's).
    files = write_s3_layout(out, [*generate_events(2500, seed=11), *_extra_lines()], members=6)
    assert len(files) == 6
    # The corpus has what the test claims: users and duplicate keys spanning files.
    users: dict[str, set[int]] = {}
    uuids: dict[str, set[int]] = {}
    for i, f in enumerate(files):
        for line in gzip.decompress(f.read_bytes()).splitlines():
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if row.get("user_id"):
                users.setdefault(row["user_id"], set()).add(i)
            if row.get("uuid"):
                uuids.setdefault(row["uuid"], set()).add(i)
    assert len(users["usr_span"]) >= 4
    assert len(users["usr_tie"]) == 2
    assert sum(len(v) > 1 for v in uuids.values()) >= 4  # duplicates across files
    return out


# --------------------------------------------------------------------------- the pure batch function


def test_transform_batch_has_a_fixed_schema_and_equals_build_calls():
    assert transform_batch(empty_canonical()).schema == CALLS_ARROW_SCHEMA
    config = TransformConfig(properties=["plan"])
    canonical = pl.concat(list(read_events(SAMPLE_ZIP, config)))
    want = local_calls(SAMPLE_ZIP, config, "stream")
    table = canonical.to_arrow()
    for batch in (canonical, table, table.combine_chunks().to_batches()[0]):
        assert batch.num_rows if isinstance(batch, pa.RecordBatch) else len(batch)
        table = transform_batch(batch, config, "stream")
        assert table.schema == CALLS_ARROW_SCHEMA  # plain string: not large, not a view
        got = sorted(
            zip(*(table.column(c).to_pylist() for c in CALLS_ARROW_SCHEMA.names), strict=True)
        )
        assert_same_calls(got, want)


# --------------------------------------------------------------------------- equality with one machine


def test_sample_export_equals_single_machine(spark, sample_dir):
    config = TransformConfig()
    calls_df = to_calls(
        read_amplitude_json(spark, str(sample_dir), config), config, partitions=PARTITIONS
    )
    assert calls_df.rdd.getNumPartitions() == PARTITIONS
    assert_same_calls(spark_calls(calls_df), local_calls(SAMPLE_ZIP, config, "v2"))
    assert len(partition_sizes(calls_df)) == PARTITIONS  # every partition got users


@pytest.mark.parametrize("fmt", ["v2", "stream"])
def test_generated_corpus_equals_single_machine(spark, corpus_dir, fmt):
    config = TransformConfig(properties=["plan", "user_properties.email"])
    events = read_amplitude_json(spark, str(corpus_dir), config)
    calls_df = to_calls(events, config, fmt, partitions=PARTITIONS + 1)
    got = spark_calls(calls_df)
    assert_same_calls(got, local_calls(corpus_dir, config, fmt))

    ids = {call_id for _, call_id, _, _ in got}
    assert f"{fmt}:track:u:dup-after-bad" in ids
    cross = [b for _, i, _, b in got if i == f"{fmt}:track:u:dup-cross-user"]
    assert len(cross) == 1 and '"usr_first"' in cross[0]
    assert f"{fmt}:track:u:dup-no-user" not in ids
    assert sum(i.startswith(f"{fmt}:track:r:usr_span|") for i in ids) == 2
    if fmt == "v2":
        (tie,) = [b for k, _, _, b in got if k == "identify" and '"usr_tie"' in b]
        assert "Late file" in tie
    assert len(partition_sizes(calls_df)) > 1


def _struct_rows() -> tuple[list[dict[str, Any]], pl.DataFrame]:
    """Events with nested columns as Python values (for struct/map columns) and the same
    events as a single-machine polars frame with the nested columns as JSON text."""
    user_fields = ("email", "name", "plan", "role")
    trait_fields = {"name": str, "domain": str, "plan": str, "seats": int, "mrr": float,
                    "is_trial": bool, "industry": str}  # fmt: skip

    def trait(value: Any, kind: type) -> Any:
        return None if value is None else kind(value)

    events = list(generate_events(400, seed=5, edge_cases=False))
    events += [{**e, "event_time": "2025-07-02 00:00:00.000000"} for e in events[::37]]  # dups
    rows = []
    for i, e in enumerate(events):
        up = e.get("user_properties") or {}
        groups = e.get("groups")
        gp = e.get("group_properties")
        rows.append({
            "_row": i,
            "UUID": e["uuid"],
            "_insert_id": e["$insert_id"],
            "Device_Id": e["device_id"],
            "USER_ID": e["user_id"],
            "EVENT_TYPE": e["event_type"],
            "event_time": datetime.fromisoformat(e["event_time"]).replace(tzinfo=UTC),
            "event_properties": {k: str(v) for k, v in (e.get("event_properties") or {}).items()
                                 if isinstance(v, str | int | float)},
            "user_properties": {k: None if up.get(k) is None else str(up[k]) for k in user_fields},
            "groups": None if groups is None else {t: [str(x) for x in ids] for t, ids in groups.items()},
            "group_properties": None if gp is None else {
                t: {gid: {f: trait(tr.get(f), k) for f, k in trait_fields.items()}
                    for gid, tr in ids.items()}
                for t, ids in gp.items()
            },
            "city": e.get("city"),
        })  # fmt: skip
    nested = ("event_properties", "user_properties", "groups", "group_properties")
    text = pl.DataFrame(
        {
            name: [
                r[name] if name not in nested or r[name] is None else orjson.dumps(r[name]).decode()
                for r in rows
            ]
            for name in rows[0]
            if name != "_row"
        },
        schema_overrides={"event_time": pl.Datetime("us", "UTC")},
    )
    return rows, text


STRUCT_SCHEMA = T.StructType([
    T.StructField("_row", T.LongType()),
    T.StructField("UUID", T.StringType()),
    T.StructField("_insert_id", T.StringType()),
    T.StructField("Device_Id", T.StringType()),
    T.StructField("USER_ID", T.StringType()),
    T.StructField("EVENT_TYPE", T.StringType()),
    T.StructField("event_time", T.TimestampType()),
    T.StructField("event_properties", T.MapType(T.StringType(), T.StringType())),
    T.StructField("user_properties", T.StructType(
        [T.StructField(n, T.StringType()) for n in ("email", "name", "plan", "role")])),
    T.StructField("groups", T.MapType(T.StringType(), T.ArrayType(T.StringType()))),
    T.StructField("group_properties", T.MapType(T.StringType(), T.MapType(
        T.StringType(), T.StructType([
            T.StructField("name", T.StringType()), T.StructField("domain", T.StringType()),
            T.StructField("plan", T.StringType()), T.StructField("seats", T.LongType()),
            T.StructField("mrr", T.DoubleType()), T.StructField("is_trial", T.BooleanType()),
            T.StructField("industry", T.StringType()),
        ])))),
    T.StructField("city", T.StringType()),
])  # fmt: skip


@pytest.fixture(scope="module")
def struct_inputs(spark):
    rows, text = _struct_rows()
    df = spark.createDataFrame([tuple(r.values()) for r in rows], STRUCT_SCHEMA)
    return df, text


@pytest.mark.parametrize(
    ("fmt", "user_id"),
    [*((fmt, "user_id") for fmt in FORMATS), ("v2", "Device_Id"), ("v2", "user_properties.email")],
)
def test_struct_and_map_columns_equal_single_machine(spark, struct_inputs, fmt, user_id):
    df, text = struct_inputs
    config = TransformConfig(user_id=user_id, properties=["plan", "user_properties.role"])
    calls_df = to_calls(df, config, fmt, partitions=PARTITIONS)
    assert_same_calls(spark_calls(calls_df), local_calls(text, config, fmt))


def test_large_var_types_session(spark, struct_inputs):
    """Sessions that exchange ``large_string`` with Python get it back from every stage."""
    df, text = struct_inputs
    spark.conf.set("spark.sql.execution.arrow.useLargeVarTypes", "true")
    try:
        calls = spark_calls(to_calls(df, partitions=2))
    finally:
        spark.conf.unset("spark.sql.execution.arrow.useLargeVarTypes")
    assert_same_calls(calls, local_calls(text, TransformConfig(), "v2"))


def test_missing_column_is_reported_before_any_task(spark):
    from accoil_transform.errors import InputError

    with pytest.raises(InputError, match="event_time"):
        to_calls(spark.createDataFrame([("u", "e")], "user_id string, event_type string"))


# --------------------------------------------------------------------------- outputs


def test_write_calls_parquet(spark, struct_inputs, tmp_path):
    calls_df = to_calls(struct_inputs[0], partitions=2)
    write_calls_parquet(calls_df, str(tmp_path / "calls"))
    back = pl.read_parquet(tmp_path / "calls" / "*.parquet")
    assert back.columns == ["kind", "call_id", "user_id", "body"]
    assert sorted(back.rows()) == spark_calls(calls_df)


def test_send_partitions_sends_every_call_once_and_a_rerun_nothing(spark, struct_inputs, tmp_path):
    calls_df = to_calls(struct_inputs[0], partitions=3)
    want = spark_calls(calls_df)
    ledgers = tmp_path / "ledgers"
    with LocalAccoil(api_key=API_KEY) as server:
        options = DeliveryOptions(concurrency=4)
        first = send_partitions(
            calls_df, api_key=API_KEY, base_url=server.base_url,
            ledger_dir=ledgers, options=options,
        )  # fmt: skip
        accepted = server.accepted
        assert first.total.sent == len(want) == len(accepted)
        got = Counter(orjson.dumps(c.body, option=orjson.OPT_SORT_KEYS) for c in accepted)
        assert got == Counter(
            orjson.dumps(orjson.loads(b), option=orjson.OPT_SORT_KEYS) for _, _, _, b in want
        )
        # Each user's identify was accepted before any of their tracks.
        seen_identify: set[str] = set()
        for call in accepted:
            if call.kind == "identify":
                seen_identify.add(call.body["userId"])
            elif call.kind == "track":
                assert call.body["userId"] in seen_identify
        assert len(list(ledgers.glob("partition-*.sqlite"))) == 3

        again = send_partitions(
            calls_df, api_key=API_KEY, base_url=server.base_url,
            ledger_dir=ledgers, options=options,
        )  # fmt: skip
        assert len(server.accepted) == len(accepted)
        assert again.total.sent == 0 and again.total.skipped == len(want)


# --------------------------------------------------------------------------- README example


def readme_example() -> str:
    """The PySpark example of docs/scaling.md, as written there."""
    text = (REPO / "docs" / "scaling.md").read_text(encoding="utf-8")
    block = text.split("<!-- spark-example -->\n```python\n", 1)[1]
    return block.split("```", 1)[0]


def test_readme_example_runs(spark, sample_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "187520").symlink_to(sample_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    with LocalAccoil(api_key=API_KEY) as server:
        monkeypatch.setenv("ACCOIL_API_KEY", API_KEY)
        monkeypatch.setenv("ACCOIL_BASE_URL", server.base_url)
        ns: dict[str, Any] = {}
        exec(compile(readme_example(), "docs/scaling.md", "exec"), ns)
        ns["calls"].unpersist()
        want = local_calls(SAMPLE_ZIP, TransformConfig(properties=["plan"]), "v2")
        assert len(server.accepted) == ns["report"].total.sent == len(want)
    acked = pl.read_parquet(tmp_path / "accoil-acks" / "*.parquet")
    assert acked.height == len(want) and acked["call_id"].n_unique() == len(want)
    assert list((tmp_path / "accoil-calls").glob("*.parquet"))
    assert "'sent':" in capsys.readouterr().out


# --------------------------------------------------------------------------- without pyspark


def test_import_without_pyspark_works_and_the_error_says_how_to_install():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pyspark"] = None  # as if pyspark were not installed
        import accoil_transform, accoil_transform.integrations.spark as spark
        try:
            spark.to_calls(None)
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert out.stdout.strip() == INSTALL_HINT
    assert 'pip install "accoil-transform[spark]"' in out.stdout
