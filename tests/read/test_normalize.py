"""Any table or NDJSON extract comes to the one canonical frame: column names in any case,
``$insert_id`` spellings, times in every documented shape, user ids as text, and nested
JSON columns never inferred into per-group-id structs (SPEC §1)."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

import accoil_transform as at
from accoil_transform.read import CANONICAL_SCHEMA
from tests.read.helpers import (
    PROJ,
    UTC,
    content,
    expected_content,
    json_text_frame,
    read_all,
    strip_nulls,
    wh_row,
)

# --------------------------------------------------------------------------- warehouse shapes


def test_upper_case_columns_and_json_text(events) -> None:
    df = json_text_frame(events).rename(lambda c: c.upper())
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
    df = pl.DataFrame([wh_row(**{column: "ins-1"})])
    assert read_all(df)["insert_id"].to_list() == ["ins-1"]


def test_dollar_insert_id_wins_over_alias() -> None:
    df = pl.DataFrame([wh_row(_insert_id="alias", **{"$insert_id": "real"})])
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
    df = pl.DataFrame([wh_row(EVENT_TIME=t) for t in TIME_STRINGS])
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
        assert strip_nulls(value) == {"company_id": {"100007": {"name": "Co 7", "seats": 7}}}


def test_canonical_frames_of_different_inputs_concat(
    tmp_path: Path, events, export_zip, write_lines, ndjson_bytes
) -> None:
    """Frames of every kind share the schema exactly, so they stack without casts."""
    frames = [
        *at.read_events(export_zip),
        *at.read_events(write_lines(tmp_path, events, "a.json")),
        *at.read_events(json_text_frame(events)),
        *at.read_events(pl.read_ndjson(io.BytesIO(ndjson_bytes(events)), infer_schema_length=None)),
    ]
    assert {f.schema == pl.Schema(CANONICAL_SCHEMA) for f in frames} == {True}
    assert pl.concat(frames).height == 4 * len(events)
