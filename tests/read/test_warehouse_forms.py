"""Warehouse tables as they really come (issue #19, items 1-6).

Real rows of Fivetran's Amplitude ``EVENT`` table (``fixtures/``), written in every shape a
warehouse, its extract tool or its Python client gives them, must give the same calls as
the Export-line form (NDJSON, nested objects) of the same rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import accoil_transform as at
from accoil_transform.config import FieldRef
from accoil_transform.errors import InputError
from accoil_transform.read import parse_event_time

FIXTURE = Path(__file__).parent / "fixtures" / "fivetran_amplitude_event_data.csv"
NESTED = ("event_properties", "user_properties", "groups", "group_properties", "data")
#: Groups added to some rows (the seed rows all hold ``{}``), in the Export API's shape.
GROUPS: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {
    0: ({"org": ["7"]}, {"org": {"7": {"plan": "pro", "seats": 12, "name": "Ünïcode Co"}}}),
    2: ({"org": ["7", "10"], "team": "ops"}, {"org": {"10": {"plan": "free"}}}),
    6: ({"[Segment] Group": ["90f978f0"]}, {"[Segment] Group": {"90f978f0": {}}}),
}


def _export_time(text: str) -> str:
    """``2025-02-13T19:42:58.123`` in the Export API's form ``2025-02-13 19:42:58.123000``."""
    return _time(text).strftime("%Y-%m-%d %H:%M:%S.%f")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def export_rows() -> list[dict[str, Any]]:
    """The fixture rows as Export API lines: nested objects, ``$insert_id``, export times."""
    with FIXTURE.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for i, row in enumerate(rows):
        line: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
        for name in NESTED:
            line[name] = json.loads(row[name]) if row[name] else None
        line["$insert_id"] = line.pop("_insert_id") or f"ins-{i}"
        for name in ("event_time", "server_upload_time", "client_event_time"):
            line[name] = _export_time(row[name])
        line["user_properties"]["email"] = row["user_id"]
        line["event_properties"]["step"] = i
        line["groups"], line["group_properties"] = GROUPS.get(i, ({}, {}))
        out.append(line)
    return out


def _text_nested(row: dict[str, Any], *, indent: int | None = None) -> dict[str, Any]:
    return {
        k: json.dumps(v, indent=indent, ensure_ascii=False) if k in NESTED and v is not None else v
        for k, v in row.items()
    }


def _upper(row: dict[str, Any]) -> dict[str, Any]:
    return {k.upper(): v for k, v in row.items()}


def _times(row: dict[str, Any], form: Callable[[dt.datetime], str]) -> dict[str, Any]:
    return {
        k: form(_time(v)) if k.lower().endswith("_time") and isinstance(v, str) else v
        for k, v in row.items()
    }


def bigquery_time(t: dt.datetime) -> str:
    """``bq extract``'s TIMESTAMP form: ``2020-11-24 09:59:55.977 UTC``."""
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def snowflake_ntz(t: dt.datetime) -> str:
    """Snowflake's TIMESTAMP_NTZ in JSON/ISO: six digits, ``T``, no zone."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _ndjson(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return buf.getvalue().encode("utf-8")


def _text_table(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Columns of text (as a warehouse client returns VARCHAR/VARIANT), nested as JSON text."""
    texts = [_text_nested(r) for r in rows]
    return {k: [None if r[k] is None else str(r[k]) for r in texts] for k in texts[0]}


def _arrow_json_table(rows: list[dict[str, Any]]) -> pa.Table:
    """What an ADBC driver returns: nested columns of the Arrow JSON extension type."""
    columns = _text_table(rows)
    arrays = {}
    for name, values in columns.items():
        array = pa.array(values, pa.string())
        if name in NESTED:
            array = pa.ExtensionArray.from_storage(pa.json_(pa.string()), array)
        arrays[name.upper()] = array
    return pa.table(arrays)


class CapsuleOnly:
    """An object that speaks only the Arrow PyCapsule stream interface."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)


CONFIGS = {
    "default": at.TransformConfig(),
    "email": at.TransformConfig(user_id="USER_PROPERTIES.email", properties=["Cohort", "step"]),
}


def bodies(source: Any, config: at.TransformConfig, fmt: str) -> list[tuple[str, Any]]:
    """Every call of a run, as (kind, parsed body), in a stable order."""
    res = at.transform(source, config)
    calls = at.build_calls(res.tracks, res.identifies, res.groups, fmt)
    return sorted(
        ((kind, json.loads(body)) for kind, body in calls.select("kind", "body").iter_rows()),
        key=lambda kb: (kb[0], json.dumps(kb[1], sort_keys=True)),
    )


def make_forms(tmp_path: Path) -> dict[str, Any]:
    rows = export_rows()
    text_rows = [_text_nested(r) for r in rows]
    snowflake = [_upper(_times(_text_nested(r, indent=2), snowflake_ntz)) for r in rows]
    bigquery = [_times(r, bigquery_time) for r in text_rows]
    csv_rows = [_times(r, bigquery_time) for r in text_rows]
    (tmp_path / "events.csv.gz").write_bytes(
        gzip.compress(_csv_bytes([_upper(r) for r in csv_rows]))
    )
    parquet = tmp_path / "events.parquet"
    epoch = pl.DataFrame(_text_table(rows)).with_columns(
        event_time=pl.Series([int(_time(_iso(r["event_time"])).timestamp() * 1000) for r in rows])
    )
    epoch.write_parquet(parquet)
    snowflake_frame = pd.DataFrame(
        {k.upper(): v for k, v in _text_table([_times(r, snowflake_ntz) for r in rows]).items()}
    )
    return {
        "ndjson json text, indented, upper case, TIMESTAMP_NTZ": _ndjson(
            tmp_path / "snowflake.json", snowflake
        ),
        "ndjson json text, BigQuery UTC times": _ndjson(tmp_path / "bigquery.jsonl", bigquery),
        "csv (the Fivetran seed file as it is)": fivetran_csv(tmp_path, rows),
        "csv.gz, upper case, BigQuery UTC times": tmp_path / "events.csv.gz",
        "parquet, epoch ms times": parquet,
        "pandas DataFrame (fetch_pandas_all)": snowflake_frame,
        "pyarrow Table with arrow.json columns (ADBC)": _arrow_json_table(rows),
        "PyCapsule stream object": CapsuleOnly(_arrow_json_table(rows)),
        "polars frame, epoch seconds as float": pl.DataFrame(_text_table(rows)).with_columns(
            event_time=pl.Series([_time(_iso(r["event_time"])).timestamp() for r in rows])
        ),
    }


def _iso(export_time: str) -> str:
    return export_time.replace(" ", "T")


def fivetran_csv(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    """The seed CSV with the same rows' groups, email and step written into its own text
    (its columns, quoting and ``T`` times as Fivetran writes them)."""
    with FIXTURE.open(newline="", encoding="utf-8") as fh:
        seed = list(csv.DictReader(fh))
    for row, line in zip(seed, rows, strict=True):
        for name in NESTED:
            row[name] = json.dumps(line[name], ensure_ascii=False)
        row["_insert_id"] = line["$insert_id"]
    path = tmp_path / "fivetran.csv"
    path.write_bytes(_csv_bytes(seed))
    return path


@pytest.mark.parametrize("fmt", ["v2", "stream"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_form_gives_the_calls_of_the_export_lines(tmp_path: Path, config: str, fmt: str):
    expected = bodies(_ndjson(tmp_path / "export.json", export_rows()), CONFIGS[config], fmt)
    kinds = {kind for kind, _ in expected}
    assert kinds == ({"track"} if fmt == "stream" else {"identify", "group", "track"})
    if config == "email":  # the user id comes from user_properties.email in any case
        assert {b["userId"] for _, b in expected} >= {"dev@gmail.com", "a@gmail.com"}
    for name, source in make_forms(tmp_path).items():
        assert bodies(source, CONFIGS[config], fmt) == expected, name


def test_group_traits_of_indented_json_text(tmp_path: Path) -> None:
    rows = [_upper(_text_nested(r, indent=2)) for r in export_rows()]
    groups = [b for k, b in bodies(_ndjson(tmp_path / "a.json", rows), CONFIGS["email"], "v2")]
    assert {
        "groupId": "7",
        "userId": "dev@gmail.com",
        "traits": {"plan": "pro", "seats": 12, "name": "Ünïcode Co", "group_type": "org"},
        "timestamp": "2025-03-01T19:42:58.123Z",
    } in groups


def test_duckdb_relation(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    expected = bodies(_ndjson(tmp_path / "export.json", export_rows()), CONFIGS["email"], "v2")
    table = pl.DataFrame(_text_table(export_rows())).to_arrow()
    con = duckdb.connect()
    relation = con.from_arrow(table)
    assert bodies(relation, CONFIGS["email"], "v2") == expected


def test_cli_runs_a_gzip_csv(tmp_path: Path) -> None:
    rows = [_upper(_times(_text_nested(r), bigquery_time)) for r in export_rows()]
    path = tmp_path / "extract_000.gz"
    path.write_bytes(gzip.compress(_csv_bytes(rows)))
    ref = _ndjson(tmp_path / "export.json", export_rows())
    outs = []
    for i, source in enumerate([ref, path]):
        out, report = tmp_path / f"out{i}.ndjson", tmp_path / f"report{i}.json"
        proc = subprocess.run(
            [sys.executable, "-m", "accoil_transform", "run", str(source), "--out", str(out),
             "--report", str(report), "--user-id", "USER_PROPERTIES.email", "--format", "stream"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outs.append(sorted(out.read_text().splitlines()))
        assert json.loads(report.read_text())["rows_read"] == 10
    assert outs[0] == outs[1]


# --------------------------------------------------------------------------- times


def test_time_forms_of_the_warehouses() -> None:
    forms = [
        "2020-11-24 09:59:55.977000",  # Export API
        "2020-11-24 09:59:55.977 UTC",  # bq extract
        "2020-11-24T09:59:55.977000",  # Snowflake TIMESTAMP_NTZ
        "2020-11-24 09:59:55.977000000",  # 9 digits
        "2020-11-24 09:59:55.977+00",  # PostgreSQL/Redshift timestamptz
        "2020-11-24 01:59:55.977 -0800",  # Snowflake TIMESTAMP_TZ
        "2020-11-24T09:59:55.977Z",
        "1606211995977",  # epoch ms as text (an NDJSON number, a CSV cell)
        "1606211995.977",
    ]
    parsed = pl.select(parse_event_time(pl.lit(pl.Series(forms)))).to_series()
    want = dt.datetime(2020, 11, 24, 9, 59, 55, 977000, tzinfo=dt.UTC)
    assert parsed.to_list() == [want] * len(forms)


@pytest.mark.parametrize(
    ("value", "unit"),
    [(1606211995, "s"), (1606211995977, "ms"), (1606211995977000, "us"), (1606211995.5, "s")],
)
def test_epoch_number_columns_by_magnitude(value: float, unit: str) -> None:
    frame = pl.DataFrame({"event_type": ["a"], "user_id": ["u"], "event_time": [value]})
    got = pl.concat(list(at.read_events(frame)))["event_time"][0]
    seconds = {"s": 1, "ms": 1e3, "us": 1e6}[unit]
    assert got == dt.datetime.fromtimestamp(value / seconds, dt.UTC)


def test_bad_time_names_the_accepted_forms(tmp_path: Path) -> None:
    rows = [_text_nested(r) for r in export_rows()]
    rows[3]["event_time"] = "24/11/2020 09:59"
    path = tmp_path / "bad.csv"
    path.write_bytes(_csv_bytes(rows))
    res = at.transform(path)
    assert res.report.dropped["malformed"] == 1
    q = res.quarantine.row(0, named=True)
    assert q["source"] == str(path) and q["line"] == 5  # the header is line 1
    assert "' UTC'" in q["reason"] and "epoch" in q["reason"] and "24/11/2020" in q["reason"]
    assert json.loads(q["raw"])["event_time"] == "24/11/2020 09:59"


# --------------------------------------------------------------------------- inputs


def test_csv_rows_are_numbered_across_slices(tmp_path: Path) -> None:
    rows = [_text_nested(r) for r in export_rows()]
    rows[8]["event_type"] = ""
    path = tmp_path / "events.csv"
    path.write_bytes(_csv_bytes(rows))
    options = at.ReadOptions(chunk_bytes=1 << 20, table_row_bytes=1 << 18)  # 4 rows a slice
    frames = list(at.read_events(path, options=options))
    frame = pl.concat(frames)
    assert frame["_line"].to_list() == list(range(2, 12))
    assert frame.filter(pl.col("_malformed").is_not_null())["_line"].to_list() == [10]


def test_tab_separated_with_header(tmp_path: Path) -> None:
    rows = [_text_nested(r) for r in export_rows()]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    path = tmp_path / "events.tsv"
    path.write_text(buf.getvalue(), "utf-8")
    expected = bodies(_ndjson(tmp_path / "export.json", export_rows()), CONFIGS["email"], "v2")
    assert bodies(path, CONFIGS["email"], "v2") == expected


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (b"Obj\x01\x04\x14avro.schema", "Avro"),
        (b"ORC\x0a\x03", "ORC"),
        (b"ARROW1\x00\x00", "Arrow IPC"),
        (b"\x28\xb5\x2f\xfd\x00\x58", "zstd"),
        (b"BZh91AY&SY", "bzip2"),
    ],
)
def test_unsupported_format_is_named(tmp_path: Path, head: bytes, name: str) -> None:
    path = tmp_path / "events.data"
    path.write_bytes(head + b"\x00" * 64)
    with pytest.raises(InputError) as info:
        at.transform(path)
    message = str(info.value)
    assert str(path) in message and name in message
    assert "supported" in message and "CSV" in message and "Parquet" in message


def test_zstd_inside_gzip_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.json.gz"
    path.write_bytes(gzip.compress(b"\x28\xb5\x2f\xfd" + b"\x00" * 32))
    with pytest.raises(InputError, match="zstd is not a supported input format"):
        at.transform(path)


def test_headerless_csv_lists_the_supported_formats(tmp_path: Path) -> None:
    path = tmp_path / "unload_0000_part_00"
    path.write_text("a,b,c\n1,2,3\n", "utf-8")
    with pytest.raises(InputError) as info:
        at.transform(path)
    assert info.value.line == 1 and "CSV with a header row" in str(info.value)


@pytest.mark.parametrize("bad", [{"event_type": ["a"]}, 42, b"events.json", [Path("x"), 3.5]])
def test_other_inputs_are_a_type_error_naming_the_type(bad: Any) -> None:
    with pytest.raises(TypeError) as info:
        at.transform(bad)
    name = type(bad[1] if isinstance(bad, list) else bad).__name__
    assert name in str(info.value)


def test_pandas_frame_is_not_taken_for_file_names() -> None:
    frame = pd.DataFrame(
        {
            "EVENT_TYPE": ["a", "b"],
            "EVENT_TIME": pd.to_datetime(["2025-07-01 00:00:00", "2025-07-01 00:00:01"]),
            "USER_ID": ["u1", "u2"],
            "COUNTRY": ["India", "Fátima"],
        },
        index=[10, 20],
    )
    res = at.transform(frame)
    assert res.report.kept == 2 and sorted(res.tracks["userId"]) == ["u1", "u2"]


def test_record_batch_rows_are_numbered_across_batches() -> None:
    table = pl.DataFrame(
        {
            "event_type": ["a", "b", "", "d"],
            "event_time": ["2025-07-01 00:00:00"] * 4,
            "user_id": ["u1", "u2", "u3", "u4"],
        }
    ).to_arrow()
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=2))
    res = at.transform(reader)
    assert res.quarantine["line"].to_list() == [3]


def test_arrow_json_extension_column_alone() -> None:
    storage = pa.array(['{\n  "org": [\n    "7"\n  ]\n}', None, '{"org": "8"}'])
    table = pa.table(
        {
            "event_type": ["a", "b", "c"],
            "event_time": ["2025-07-01 00:00:00"] * 3,
            "user_id": ["u1", "u2", "u3"],
            "groups": pa.ExtensionArray.from_storage(pa.json_(pa.string()), storage),
        }
    )
    assert isinstance(pl.DataFrame(table).schema["groups"], pl.Extension)
    frame = pl.concat(list(at.read_events(table)))
    assert frame["groups"].to_list() == ['{"org":["7"]}', None, '{"org": "8"}']


def test_uuid_bytes_from_a_database() -> None:
    table = pa.table(
        {
            "event_type": ["a"],
            "event_time": ["2025-07-01 00:00:00"],
            "user_id": ["u1"],
            "uuid": pa.array([bytes.fromhex("a6ec45f600164907b4335bf4e4a56908")], pa.binary(16)),
        }
    )
    frame = pl.concat(list(at.read_events(table)))
    assert frame["uuid"].to_list() == ["a6ec45f6-0016-4907-b433-5bf4e4a56908"]


def test_parquet_of_arrow_json_columns(tmp_path: Path) -> None:
    path = tmp_path / "adbc.parquet"
    pq.write_table(_arrow_json_table(export_rows()), path)
    expected = bodies(_ndjson(tmp_path / "export.json", export_rows()), CONFIGS["email"], "v2")
    assert bodies(path, CONFIGS["email"], "v2") == expected


# --------------------------------------------------------------------------- user id


@pytest.mark.parametrize(
    "spec", ["USER_PROPERTIES.email", "User_Properties.email", "user_properties.email"]
)
def test_scope_of_a_field_ref_in_any_case(spec: str) -> None:
    assert FieldRef.parse(spec, default_scope="column") == FieldRef("email", "user_properties")
    assert at.TransformConfig(user_id=spec).user_id_ref == FieldRef("email", "user_properties")


def test_key_after_the_scope_keeps_its_case() -> None:
    ref = FieldRef.parse("EVENT_PROPERTIES.Plan", default_scope=None)
    assert ref == FieldRef("Plan", "event_properties")
