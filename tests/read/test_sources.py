"""Every input kind of SPEC §1 reaches the same canonical rows."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform import read
from accoil_transform.read import CANONICAL_SCHEMA

UTC = dt.UTC
PROJ = "203138"

# Members in (date, hour, n) order. Sorting the names as text would give another order:
# "_10#" < "_9#" and "#627" < "#70".
MEMBER_ORDER = [
    f"{PROJ}/{PROJ}_2025-06-30_23#0.json.gz",
    f"{PROJ}/{PROJ}_2025-07-01_9#70.json.gz",
    f"{PROJ}/{PROJ}_2025-07-01_9#627.json.gz",
    f"{PROJ}/{PROJ}_2025-07-01_10#3.json.gz",
]


def _events(make_event) -> list[dict[str, Any]]:
    """Seven varied export rows (no empty objects inside group_properties, so that the
    struct-typed Parquet variant can be written)."""
    return [
        make_event(
            event_type="Doc Opened",
            user_id="user-1",
            event_time="2025-06-30 23:10:00.100000",
            groups={"company_id": ["1", "2"], "org name": ["Acme Ünïcode"]},
            group_properties={"company_id": {"1": {"plan": "enterprise", "seats": 40}}},
            event_properties={"plan": "pro", "count": 3},
            user_properties={"email": "one@example.com", "name": "One"},
        ),
        make_event(
            event_type="Report Run 📈",
            user_id=None,
            event_time="2025-06-30 23:20:00.000000",
            event_properties={"nested": {"a": [1, 2, 3], "b": {"c": True}}},
        ),
        make_event(
            event_type="Doc Opened",
            user_id="user-2",
            event_time="2025-07-01 09:00:01.000000",
            groups={"Account": ["210000"]},
            group_properties={"Account": {"210000": {"domain": "accoil.com", "name": "Released"}}},
            user_properties={"email": "two@example.com"},
        ),
        make_event(
            event_type="Invite Sent",
            user_id="user-3",
            event_time="2025-07-01 09:30:00.250000",
            event_properties={"city": "St. John's", "rtl": "שלום"},
        ),
        make_event(
            event_type="$identify",
            user_id="user-3",
            event_time="2025-07-01 09:45:00.000000",
            user_properties={"$set": {"plan": "pro"}},
        ),
        make_event(
            event_type="Doc Opened",
            user_id="007",
            event_time="2025-07-01 10:05:00.999000",
            groups={"org": ["acme"]},
            group_properties={"org": {"acme": {"tier": 2}}},
        ),
        make_event(
            event_type="Doc Closed",
            user_id="user-1",
            event_time="2025-07-01 10:15:00.000000",
        ),
    ]


# rows per member, in MEMBER_ORDER
MEMBER_SPLIT = [2, 1, 2, 2]


def _members(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out, i = {}, 0
    for name, n in zip(MEMBER_ORDER, MEMBER_SPLIT, strict=True):
        out[name] = events[i : i + n]
        i += n
    return out


def _scrambled(members: dict[str, Any]) -> dict[str, Any]:
    """The same members, written into the zip in a different order than the read order."""
    names = list(members)
    order = [names[2], names[3], names[0], names[1]]
    return {n: members[n] for n in order}


def read_all(inputs: Any, config: at.TransformConfig | None = None) -> pl.DataFrame:
    return pl.concat(list(at.read_events(inputs, config)))


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def content(frame: pl.DataFrame, *, struct_nulls: bool = False) -> list[dict[str, Any]]:
    """The comparable content of canonical rows: ids, times, and the JSON columns decoded.

    ``struct_nulls`` drops null object members: a struct column can't tell a missing
    key from a null one.
    """
    rows = []
    for row in frame.select(
        "uuid",
        "insert_id",
        "device_id",
        "user_id",
        "event_type",
        "event_time",
        "event_properties",
        "user_properties",
        "groups",
        "group_properties",
    ).iter_rows(named=True):
        for col in ("event_properties", "user_properties", "groups", "group_properties"):
            decoded = None if row[col] is None else json.loads(row[col])
            row[col] = _strip_nulls(decoded) if struct_nulls else decoded
        rows.append(row)
    return rows


def expected_content(
    events: list[dict[str, Any]], *, struct_nulls: bool = False
) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        row = {
            "uuid": e["uuid"],
            "insert_id": e["$insert_id"],
            "device_id": e["device_id"],
            "user_id": e["user_id"],
            "event_type": e["event_type"],
            "event_time": dt.datetime.fromisoformat(e["event_time"]).replace(tzinfo=UTC),
        }
        for col in ("event_properties", "user_properties", "groups", "group_properties"):
            row[col] = _strip_nulls(e[col]) if struct_nulls else e[col]
        rows.append(row)
    return rows


@pytest.fixture
def events(make_event) -> list[dict[str, Any]]:
    return _events(make_event)


@pytest.fixture
def export_zip(tmp_path: Path, events: list[dict[str, Any]], make_zip) -> Path:
    return make_zip(tmp_path / "export.zip", _scrambled(_members(events)))


# --------------------------------------------------------------------------- zip


def test_export_zip_members_read_in_date_hour_n_order(export_zip: Path, events) -> None:
    frame = read_all(export_zip)
    assert frame.schema == pl.Schema(CANONICAL_SCHEMA)
    assert content(frame) == expected_content(events)
    sources = [
        f"{export_zip}!{m}"
        for m, n in zip(MEMBER_ORDER, MEMBER_SPLIT, strict=True)
        for _ in range(n)
    ]
    assert frame["_source"].to_list() == sources
    assert frame["_row"].to_list() == list(range(len(events)))
    # _line restarts in each member
    assert frame["_line"].to_list() == [1, 2, 1, 1, 2, 1, 2]
    assert frame["_malformed"].null_count() == frame.height


def test_zip_member_order_does_not_depend_on_the_order_in_the_archive(
    tmp_path: Path, events, make_zip
) -> None:
    members = _members(events)
    in_order = read_all(make_zip(tmp_path / "a.zip", members))
    reversed_zip = make_zip(tmp_path / "b.zip", dict(reversed(list(members.items()))))
    assert content(read_all(reversed_zip)) == content(in_order)


def test_zip_skips_directories_and_markers(tmp_path: Path, events, make_zip) -> None:
    path = tmp_path / "export.zip"
    make_zip(path, _members(events))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(f"{PROJ}/", b"")
        zf.writestr(f"{PROJ}/complete", b"done\n")
    assert content(read_all(path)) == expected_content(events)


# --------------------------------------------------------------------------- single files


@pytest.mark.parametrize(
    ("name", "gz"),
    [
        ("events.json.gz", True),
        ("events.json", False),
        ("events.jsonl", False),
        ("events.ndjson.gz", True),
    ],
)
def test_single_files(tmp_path: Path, events, name: str, gz: bool, write_lines, make_event) -> None:
    # JSON text keeps what a struct can't: mixed-type arrays, nulls inside objects.
    rows = [
        *events,
        make_event(event_properties={"mixed": [1, "two", {"three": 3}, None], "n": None}),
    ]
    path = write_lines(tmp_path, rows, name, gz=gz)
    frame = read_all(path)
    assert content(frame) == expected_content(rows)
    assert frame["_source"].unique().to_list() == [str(path)]
    assert frame["_line"].to_list() == list(range(1, len(rows) + 1))


def test_file_without_trailing_newline_and_with_crlf(tmp_path: Path, events) -> None:
    data = b"\r\n".join(json.dumps(e).encode() for e in events)
    path = tmp_path / "crlf.json"
    path.write_bytes(data)
    assert content(read_all(path)) == expected_content(events)


def test_zip_named_json_gz_is_read_as_a_zip(tmp_path: Path, events, make_zip) -> None:
    """The Export API download saved as ``*.json.gz`` is really a zip (magic ``PK``)."""
    path = make_zip(tmp_path / "export.json.gz", _members(events))
    assert path.read_bytes()[:2] == b"PK"
    frame = read_all(path)
    assert content(frame) == expected_content(events)
    assert frame["_source"][0] == f"{path}!{MEMBER_ORDER[0]}"


def test_zip_named_json_is_read_as_a_zip(tmp_path: Path, events, make_zip) -> None:
    path = make_zip(tmp_path / "events.json", _members(events))
    assert content(read_all(path)) == expected_content(events)


def test_gzip_named_json_is_read_as_gzip(tmp_path: Path, events, ndjson_bytes) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(gzip.compress(ndjson_bytes(events)))
    assert content(read_all(path)) == expected_content(events)


def test_gzip_wrapping_a_zip(tmp_path: Path, events, make_zip) -> None:
    inner = make_zip(tmp_path / "inner.zip", _members(events))
    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress(inner.read_bytes()))
    assert content(read_all(path)) == expected_content(events)


# --------------------------------------------------------------------------- folders and globs


def _s3_folder(root: Path, events: list[dict[str, Any]], write_lines) -> Path:
    """The S3/GCS layout: ``<prefix>/<proj>/<proj>_<date>_<H>#<n>.json.gz`` plus markers."""
    for name, rows in _scrambled(_members(events)).items():
        write_lines(root, rows, name, gz=True)
    (root / PROJ / "complete").write_text("complete\n")  # marker: not NDJSON, must be skipped
    (root / PROJ / f"{PROJ}_2025-07-01_11#0.json.gz").write_bytes(b"")  # empty hour
    return root


def test_folder_in_s3_layout(tmp_path: Path, events, write_lines) -> None:
    root = _s3_folder(tmp_path / "bucket", events, write_lines)
    frame = read_all(root)
    assert sorted(content(frame), key=lambda r: r["uuid"]) == sorted(
        expected_content(events), key=lambda r: r["uuid"]
    )
    assert frame["_row"].to_list() == list(range(len(events)))


@pytest.mark.parametrize("how", ["folder", "glob"])
def test_folder_files_are_read_in_the_same_order_as_zip_members(
    tmp_path: Path, events, write_lines, how: str
) -> None:
    """The same hourly files, zipped or unzipped into a folder, give the same row order
    (it decides which duplicate is "first in input order", SPEC §2): (date, hour, n),
    not name order, where "_10#" < "_9#" and "#627" < "#70"."""
    root = _s3_folder(tmp_path / "bucket", events, write_lines)
    frame = read_all(root if how == "folder" else str(root / PROJ / "*.json.gz"))
    assert [Path(s).name for s in frame["_source"].unique(maintain_order=True)] == [
        Path(m).name for m in MEMBER_ORDER
    ]
    assert content(frame) == expected_content(events)


def test_glob(tmp_path: Path, events, write_lines) -> None:
    root = _s3_folder(tmp_path / "bucket", events, write_lines)
    frame = read_all(str(root / PROJ / "*.json.gz"))
    assert sorted(content(frame), key=lambda r: r["uuid"]) == sorted(
        expected_content(events), key=lambda r: r["uuid"]
    )
    recursive = read_all(str(root / "**" / "*.json.gz"))
    assert recursive.height == len(events)


def test_several_inputs_number_rows_globally(tmp_path: Path, events, write_lines) -> None:
    a = write_lines(tmp_path, events[:3], "a.json")
    b = write_lines(tmp_path, events[3:], "b.json.gz", gz=True)
    df = pl.DataFrame(
        {"event_type": ["x", "y"], "event_time": ["2025-07-01 00:00:00"] * 2, "user_id": ["u", "v"]}
    )
    frames = list(at.read_events([a, b, df]))
    assert [f.height for f in frames] == [3, 4, 2]
    frame = pl.concat(frames)
    assert frame["_row"].to_list() == list(range(9))
    assert frame["_line"].to_list() == [1, 2, 3, 1, 2, 3, 4, 1, 2]
    assert frame["_source"].to_list()[:7] == [str(a)] * 3 + [str(b)] * 4


def test_line_numbers_count_blank_lines(tmp_path: Path, events, write_lines) -> None:
    lines: list[Any] = ["", events[0], "   ", events[1], events[2], "", "", events[3]]
    path = write_lines(tmp_path, lines, "blank.json")
    frame = read_all(path)
    assert frame["_line"].to_list() == [2, 4, 5, 8]
    assert frame["_row"].to_list() == [0, 1, 2, 3]
    assert content(frame) == expected_content(events[:4])


def test_empty_file_inside_an_explicit_list_gives_no_rows(
    tmp_path: Path, events, write_lines
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"\n\n")
    good = write_lines(tmp_path, events, "good.json")
    frame = read_all([empty, good])
    assert frame["_row"].to_list() == list(range(len(events)))


# --------------------------------------------------------------------------- Parquet


def _json_text_frame(events: list[dict[str, Any]]) -> pl.DataFrame:
    """The events as a warehouse extract: nested columns as JSON text."""
    nested = ("event_properties", "user_properties", "groups", "group_properties", "data", "plan")
    records = [
        {
            k: (json.dumps(v, ensure_ascii=False) if k in nested and v is not None else v)
            for k, v in e.items()
        }
        for e in events
    ]
    return pl.DataFrame(records, infer_schema_length=None)


def test_parquet_nested_as_json_text(tmp_path: Path, events) -> None:
    path = tmp_path / "events.parquet"
    _json_text_frame(events).write_parquet(path)
    frame = read_all(path)
    assert content(frame) == expected_content(events)
    assert frame["_line"].to_list() == list(range(1, len(events) + 1))
    assert frame["_source"][0] == str(path)


def test_parquet_nested_as_structs(tmp_path: Path, events, ndjson_bytes) -> None:
    # "data" and "plan" hold empty objects, which Parquet can't store as structs.
    inferred = pl.read_ndjson(io.BytesIO(ndjson_bytes(events)), infer_schema_length=None).drop(
        "data", "plan"
    )
    assert isinstance(inferred.schema["groups"], pl.Struct)
    assert isinstance(inferred.schema["group_properties"], pl.Struct)
    path = tmp_path / "structs.parquet"
    inferred.write_parquet(path)
    frame = read_all(path)
    assert frame.schema == pl.Schema(CANONICAL_SCHEMA)
    assert content(frame, struct_nulls=True) == expected_content(events, struct_nulls=True)


def test_parquet_named_json(tmp_path: Path, events) -> None:
    path = tmp_path / "events.json"
    _json_text_frame(events).write_parquet(path)
    assert content(read_all(path)) == expected_content(events)


# --------------------------------------------------------------------------- in-memory tables


def test_polars_dataframe_and_lazyframe(events) -> None:
    df = _json_text_frame(events)
    assert content(read_all(df)) == expected_content(events)
    assert content(read_all(df.lazy())) == expected_content(events)


def test_pyarrow_table_and_record_batch_reader(events) -> None:
    table = _json_text_frame(events).to_arrow()
    assert content(read_all(table)) == expected_content(events)
    batches = table.to_batches(max_chunksize=3)
    assert len(batches) == 3
    reader = pa.RecordBatchReader.from_batches(table.schema, batches)
    frame = read_all(reader)
    assert content(frame) == expected_content(events)
    assert frame["_row"].to_list() == list(range(len(events)))


def test_struct_typed_dataframe(events, ndjson_bytes) -> None:
    df = pl.read_ndjson(io.BytesIO(ndjson_bytes(events)), infer_schema_length=None)
    assert content(read_all(df), struct_nulls=True) == expected_content(events, struct_nulls=True)


def test_map_typed_nested_column() -> None:
    df = pl.DataFrame(
        {
            "event_type": ["a", "b"],
            "event_time": ["2025-07-01 00:00:00", "2025-07-01 00:00:01"],
            "user_id": ["u1", "u2"],
            "groups": pl.Series(
                [{"org": ["1", "2"]}, {}], dtype=pl.Map(pl.String, pl.List(pl.String))
            ),
        }
    )
    frame = read_all(df)
    assert [json.loads(g) for g in frame["groups"]] == [{"org": ["1", "2"]}, {}]


# --------------------------------------------------------------------------- warehouse shapes


def _wh_row(**kw: Any) -> dict[str, Any]:
    base = {
        "EVENT_TYPE": "Doc Opened",
        "EVENT_TIME": "2025-07-01 16:34:54.837000",
        "USER_ID": "u-1",
    }
    base.update(kw)
    return base


def test_upper_case_columns_and_json_text(events) -> None:
    df = _json_text_frame(events).rename(lambda c: c.upper())
    assert "EVENT_TYPE" in df.columns and "$INSERT_ID" in df.columns
    assert content(read_all(df)) == expected_content(events)


def test_mixed_case_columns() -> None:
    df = pl.DataFrame(
        {
            "Event_Type": ["a"],
            "Event_Time": ["2025-07-01 00:00:00"],
            "User_Id": ["u"],
            "Groups": ['{"org":["1"]}'],
        }
    )
    row = read_all(df).row(0, named=True)
    assert (row["event_type"], row["user_id"], row["groups"]) == ("a", "u", '{"org":["1"]}')
    assert row["event_time"] == dt.datetime(2025, 7, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "column", ["_insert_id", "insert_id", "$insert_id", "_INSERT_ID", "INSERT_ID"]
)
def test_insert_id_spellings(column: str) -> None:
    df = pl.DataFrame([_wh_row(**{column: "ins-1"})])
    assert read_all(df)["insert_id"].to_list() == ["ins-1"]


def test_dollar_insert_id_wins_over_alias() -> None:
    df = pl.DataFrame([_wh_row(_insert_id="alias", **{"$insert_id": "real"})])
    assert read_all(df)["insert_id"].to_list() == ["real"]


TIME_STRINGS = {
    "2025-07-01 16:34:54.837000": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01T16:34:54.837000": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01 16:34:54.837": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01T16:34:54.837": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01 16:34:54": dt.datetime(2025, 7, 1, 16, 34, 54),
    "2025-07-01T16:34:54": dt.datetime(2025, 7, 1, 16, 34, 54),
    "2025-07-01T16:34:54Z": dt.datetime(2025, 7, 1, 16, 34, 54),
    "2025-07-01T16:34:54.837Z": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01 16:34:54.837000Z": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01T16:34:54.837000+00:00": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01T18:34:54.837+02:00": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01T11:34:54-05:00": dt.datetime(2025, 7, 1, 16, 34, 54),
    "2025-07-02 01:04:54.837000+08:30": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    # Near the export's own shape, which has a fast path of its own:
    " 2025-07-01 16:34:54.837000 ": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01 16:34:54.8370009": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01 16:34:54.83700": dt.datetime(2025, 7, 1, 16, 34, 54, 837000),
    "2025-07-01 16:34:54.837000-01:00": dt.datetime(2025, 7, 1, 17, 34, 54, 837000),
}


def test_time_strings_in_all_documented_shapes() -> None:
    df = pl.DataFrame([_wh_row(EVENT_TIME=t) for t in TIME_STRINGS])
    frame = read_all(df)
    assert frame["_malformed"].to_list() == [None] * len(TIME_STRINGS)
    assert frame["event_time"].to_list() == [v.replace(tzinfo=UTC) for v in TIME_STRINGS.values()]


def test_time_strings_from_ndjson(tmp_path: Path, make_event, write_lines) -> None:
    events = [make_event(event_time=t) for t in TIME_STRINGS]
    frame = read_all(write_lines(tmp_path, events, "times.json"))
    assert frame["event_time"].to_list() == [v.replace(tzinfo=UTC) for v in TIME_STRINGS.values()]


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
def test_naive_datetime_column_is_utc(unit: str) -> None:
    df = pl.DataFrame(
        {
            "EVENT_TYPE": ["a"],
            "EVENT_TIME": [dt.datetime(2025, 7, 1, 16, 34, 54, 837000)],
            "USER_ID": ["u"],
        }
    ).with_columns(pl.col("EVENT_TIME").dt.cast_time_unit(unit))
    frame = read_all(df)
    assert frame.schema["event_time"] == pl.Datetime("us", "UTC")
    assert frame["event_time"].to_list() == [
        dt.datetime(2025, 7, 1, 16, 34, 54, 837000, tzinfo=UTC)
    ]


def test_zoned_datetime_column_is_converted_to_utc() -> None:
    df = pl.DataFrame(
        {
            "event_type": ["a", "b"],
            "event_time": [dt.datetime(2025, 7, 1, 12, 34, 54), dt.datetime(2025, 1, 1, 12)],
            "user_id": ["u", "v"],
        }
    ).with_columns(pl.col("event_time").dt.replace_time_zone("America/New_York"))
    frame = read_all(df)
    assert frame["event_time"].to_list() == [
        dt.datetime(2025, 7, 1, 16, 34, 54, tzinfo=UTC),  # EDT, -4
        dt.datetime(2025, 1, 1, 17, tzinfo=UTC),  # EST, -5
    ]


def test_date_column_is_midnight_utc() -> None:
    df = pl.DataFrame({"event_type": ["a"], "event_time": [dt.date(2025, 7, 1)], "user_id": ["u"]})
    assert read_all(df)["event_time"].to_list() == [dt.datetime(2025, 7, 1, tzinfo=UTC)]


def test_datetime_column_through_parquet_and_arrow(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "EVENT_TYPE": ["a"],
            "EVENT_TIME": [dt.datetime(2025, 7, 1, 16, 34, 54, 837000)],
            "USER_ID": ["u"],
        }
    )
    path = tmp_path / "ts.parquet"
    df.write_parquet(path)
    expected = [dt.datetime(2025, 7, 1, 16, 34, 54, 837000, tzinfo=UTC)]
    assert read_all(path)["event_time"].to_list() == expected
    assert read_all(df.to_arrow())["event_time"].to_list() == expected


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([12345, 9007199254740993], pl.Int64, ["12345", "9007199254740993"]),
        ([7, 8], pl.UInt32, ["7", "8"]),
    ],
)
def test_numeric_user_id_is_cast_to_string(values, dtype, expected) -> None:
    df = pl.DataFrame(
        {
            "EVENT_TYPE": ["a", "b"],
            "EVENT_TIME": ["2025-07-01 00:00:00"] * 2,
            "USER_ID": pl.Series(values, dtype=dtype),
        }
    )
    frame = read_all(df)
    assert frame.schema["user_id"] == pl.String
    assert frame["user_id"].to_list() == expected


def test_decimal_user_id_from_a_warehouse_number_column() -> None:
    """Snowflake NUMBER(38,0) / BigQuery BIGNUMERIC arrive as decimals."""
    table = pa.table(
        {
            "EVENT_TYPE": ["a"],
            "EVENT_TIME": ["2025-07-01 00:00:00"],
            "USER_ID": pa.array([12345], type=pa.decimal128(38, 0)),
        }
    )
    assert read_all(table)["user_id"].to_list() == ["12345"]


def test_integral_float_user_id_is_the_integer_text() -> None:
    """An integer id column with nulls becomes float64 in pandas-based extracts: the
    id 12345 must still be "12345" (as in the export), not "12345.0"."""
    df = pl.DataFrame(
        {
            "event_type": ["a", "b"],
            "event_time": ["2025-07-01 00:00:00"] * 2,
            "user_id": [12345.0, None],
        }
    )
    assert read_all(df)["user_id"].to_list() == ["12345", None]


def test_numeric_user_id_in_ndjson_stays_text(tmp_path: Path, make_event, write_lines) -> None:
    path = write_lines(
        tmp_path, [make_event(user_id=123456789), make_event(user_id="007")], "ids.json"
    )
    assert read_all(path)["user_id"].to_list() == ["123456789", "007"]


def test_ndjson_extract_with_upper_case_keys(tmp_path: Path, events, write_lines) -> None:
    """A warehouse table extracted as NDJSON (e.g. Snowflake OBJECT_CONSTRUCT(*), the
    Singer tap) has upper-case keys: column names in any case (SPEC §1)."""
    upper = [{k.upper(): v for k, v in e.items()} for e in events]
    frame = read_all(write_lines(tmp_path, upper, "snowflake.json"))
    assert frame["_malformed"].to_list() == [None] * len(events)
    assert content(frame) == expected_content(events)


def test_ndjson_extract_with_underscore_insert_id(tmp_path: Path, make_event, write_lines) -> None:
    """Fivetran spells $insert_id as _insert_id; it is the duplicate key without uuid."""
    rows = [
        {("_insert_id" if k == "$insert_id" else k): v for k, v in make_event(uuid=None).items()}
        for _ in range(2)
    ]
    frame = read_all(write_lines(tmp_path, rows, "fivetran.json"))
    assert frame["insert_id"].to_list() == [r["_insert_id"] for r in rows]


def test_utf8_byte_order_mark_is_ignored(tmp_path: Path, events, ndjson_bytes) -> None:
    path = tmp_path / "windows.json"
    path.write_bytes(b"\xef\xbb\xbf" + ndjson_bytes(events))
    frame = read_all(path)
    assert frame["_malformed"].to_list() == [None] * len(events)
    assert content(frame) == expected_content(events)


def test_empty_gzip_member_is_an_empty_hour(tmp_path: Path, events, make_zip) -> None:
    path = make_zip(
        tmp_path / "export.zip",
        {MEMBER_ORDER[0]: gzip.compress(b""), MEMBER_ORDER[1]: events},
    )
    frame = read_all(path)
    assert frame.height == len(events)
    assert frame["_row"].to_list() == list(range(len(events)))


def test_only_required_columns() -> None:
    df = pl.DataFrame(
        {"event_type": ["a"], "event_time": ["2025-07-01 00:00:00"], "user_id": ["u"]}
    )
    row = read_all(df).row(0, named=True)
    for col in (
        "uuid",
        "insert_id",
        "device_id",
        "event_properties",
        "user_properties",
        "groups",
        "group_properties",
    ):
        assert row[col] is None


def test_user_id_from_another_column_is_required_not_user_id() -> None:
    df = pl.DataFrame(
        {"EVENT_TYPE": ["a"], "EVENT_TIME": ["2025-07-01 00:00:00"], "ACCOUNT_EMAIL": ["a@b.c"]}
    )
    frame = read_all(df, at.TransformConfig(user_id="account_email"))
    assert frame["user_id"].to_list() == ["a@b.c"]


def test_user_id_from_another_ndjson_key(tmp_path: Path, make_event, write_lines) -> None:
    path = write_lines(tmp_path, [make_event(user_id=None, email_hash="h-1")], "e.json")
    frame = read_all(path, at.TransformConfig(user_id="email_hash"))
    assert frame["user_id"].to_list() == ["h-1"]


# --------------------------------------------------------------------------- groups are never inferred


N_GROUP_IDS = 20_000  # distinct group ids read through the canonical schema
N_INFERRED = 1_000  # rows given to polars' own inference (it slows down quadratically)


def _group_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "uuid": f"u-{i}",
            "user_id": f"user-{i % 50}",
            "event_type": "Doc Opened",
            "event_time": "2025-07-01 00:00:00.000000",
            "groups": {"company_id": [str(100_000 + i)]},
            "group_properties": {"company_id": {str(100_000 + i): {"name": f"Co {i}", "seats": i}}},
        }
        for i in range(n)
    ]


def test_many_distinct_group_ids_keep_the_fixed_schema(tmp_path: Path, ndjson_bytes) -> None:
    events = _group_rows(N_GROUP_IDS)
    path = tmp_path / f"{PROJ}_2025-07-01_0#1.json.gz"
    path.write_bytes(gzip.compress(ndjson_bytes(events)))
    frame = read_all(path)
    assert frame.schema == pl.Schema(CANONICAL_SCHEMA)
    assert len(frame.schema) == len(CANONICAL_SCHEMA) == 15
    assert frame.height == N_GROUP_IDS
    assert json.loads(frame["group_properties"][-1]) == events[-1]["group_properties"]
    assert json.loads(frame["groups"][123]) == {"company_id": ["100123"]}


def test_polars_inference_would_make_one_struct_field_per_group_id(
    tmp_path: Path, ndjson_bytes
) -> None:
    """Why the schema is fixed: inference makes a struct field for every group id seen.
    A table written by a tool that did infer still reads into the fixed schema."""
    data = ndjson_bytes(_group_rows(N_INFERRED))
    wide = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    inferred = wide.schema["group_properties"]
    assert isinstance(inferred, pl.Struct)
    company = dict(inferred.to_schema())["company_id"]
    assert isinstance(company, pl.Struct)
    assert len(company.fields) == N_INFERRED  # one field per group id

    pq = tmp_path / "wide.parquet"
    wide.write_parquet(pq)
    for source in (pq, wide):
        frame = read_all(source)
        assert frame.schema == pl.Schema(CANONICAL_SCHEMA)
        # the struct's all-null fields are dropped from the JSON text
        value = json.loads(frame["group_properties"][7])
        assert _strip_nulls(value) == {"company_id": {"100007": {"name": "Co 7", "seats": 7}}}


def test_canonical_frames_of_different_inputs_concat(
    tmp_path: Path, events, export_zip, write_lines, ndjson_bytes
) -> None:
    """Frames of every kind share the schema exactly, so they stack without casts."""
    frames = [
        *at.read_events(export_zip),
        *at.read_events(write_lines(tmp_path, events, "a.json")),
        *at.read_events(_json_text_frame(events)),
        *at.read_events(pl.read_ndjson(io.BytesIO(ndjson_bytes(events)), infer_schema_length=None)),
    ]
    assert {f.schema == pl.Schema(CANONICAL_SCHEMA) for f in frames} == {True}
    assert pl.concat(frames).height == 4 * len(events)


def test_small_tables_are_gathered_into_frames_with_their_own_sources(tmp_path: Path) -> None:
    """A warehouse extract's many small Parquet files make few frames (each costs the
    transform a fixed overhead), every row keeping its file."""
    rows = [_wh_row(EVENT_TIME=f"2025-07-01 00:00:{i % 60:02d}", UUID=f"e{i}") for i in range(40)]
    for i in range(20):
        pl.DataFrame(rows[2 * i : 2 * i + 2]).write_parquet(tmp_path / f"part-{i:02d}.parquet")
    gathered = list(at.read_events(tmp_path))
    # Every table on its own.
    alone = list(at.read_events(tmp_path, options=at.ReadOptions(chunk_bytes=1)))
    assert len(gathered) == 1 and len(alone) >= 20
    assert_frame_equal(pl.concat(gathered), pl.concat(alone))
    whole = pl.concat(gathered)
    assert whole["uuid"].to_list() == [f"e{i}" for i in range(40)]
    assert whole["_source"].to_list() == [
        str(tmp_path / f"part-{i // 2:02d}.parquet") for i in range(40)
    ]
    assert whole["_row"].to_list() == list(range(40))


def test_a_large_parquet_file_is_read_in_slices_with_its_own_line_numbers(tmp_path: Path) -> None:
    rows = [_wh_row(UUID=f"e{i}") for i in range(3000)]
    rows[2500]["EVENT_TIME"] = "not a time"
    path = tmp_path / "extract.parquet"
    pl.DataFrame(rows).write_parquet(path, row_group_size=250)
    whole = pl.concat(list(at.read_events(path)))
    assert len(list(read.iter_raw_inputs(path))) == 1
    options = at.ReadOptions(chunk_bytes=100 * at.ReadOptions().table_row_bytes)
    assert len(list(read.iter_raw_inputs(path, options))) == 12  # one per row group of 250 rows
    sliced = list(at.read_events(path, options=options))
    assert_frame_equal(pl.concat(sliced), whole)
    assert whole["_line"].to_list() == list(range(1, 3001))
    bad = whole.filter(pl.col("_malformed").is_not_null())
    assert bad.select("_source", "_line").rows() == [(str(path), 2501)]
