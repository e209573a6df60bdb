"""Every input kind of SPEC §1 reaches the same canonical rows: Export API zips, single
files, folders and globs, Parquet, and in-memory tables."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform import read
from accoil_transform.read import CANONICAL_SCHEMA
from tests.read.helpers import (
    MEMBER_ORDER,
    MEMBER_SPLIT,
    PROJ,
    content,
    expected_content,
    json_text_frame,
    members_of,
    read_all,
    s3_folder,
    wh_row,
)

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
    members = members_of(events)
    in_order = read_all(make_zip(tmp_path / "a.zip", members))
    reversed_zip = make_zip(tmp_path / "b.zip", dict(reversed(list(members.items()))))
    assert content(read_all(reversed_zip)) == content(in_order)


def test_zip_skips_directories_and_markers(tmp_path: Path, events, make_zip) -> None:
    path = tmp_path / "export.zip"
    make_zip(path, members_of(events))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(f"{PROJ}/", b"")
        zf.writestr(f"{PROJ}/complete", b"done\n")
    assert content(read_all(path)) == expected_content(events)


def test_empty_gzip_member_is_an_empty_hour(tmp_path: Path, events, make_zip) -> None:
    path = make_zip(
        tmp_path / "export.zip",
        {MEMBER_ORDER[0]: gzip.compress(b""), MEMBER_ORDER[1]: events},
    )
    frame = read_all(path)
    assert frame.height == len(events)
    assert frame["_row"].to_list() == list(range(len(events)))


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


def test_zip_named_json_gz_is_read_as_a_zip(tmp_path: Path, events, make_zip) -> None:
    """The Export API download saved as ``*.json.gz`` is really a zip (magic ``PK``)."""
    path = make_zip(tmp_path / "export.json.gz", members_of(events))
    assert path.read_bytes()[:2] == b"PK"
    frame = read_all(path)
    assert content(frame) == expected_content(events)
    assert frame["_source"][0] == f"{path}!{MEMBER_ORDER[0]}"


def test_zip_named_json_is_read_as_a_zip(tmp_path: Path, events, make_zip) -> None:
    path = make_zip(tmp_path / "events.json", members_of(events))
    assert content(read_all(path)) == expected_content(events)


def test_gzip_named_json_is_read_as_gzip(tmp_path: Path, events, ndjson_bytes) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(gzip.compress(ndjson_bytes(events)))
    assert content(read_all(path)) == expected_content(events)


def test_gzip_wrapping_a_zip(tmp_path: Path, events, make_zip) -> None:
    inner = make_zip(tmp_path / "inner.zip", members_of(events))
    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress(inner.read_bytes()))
    assert content(read_all(path)) == expected_content(events)


# --------------------------------------------------------------------------- folders and globs


def test_folder_in_s3_layout(tmp_path: Path, events, write_lines) -> None:
    root = s3_folder(tmp_path / "bucket", events, write_lines)
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
    root = s3_folder(tmp_path / "bucket", events, write_lines)
    frame = read_all(root if how == "folder" else str(root / PROJ / "*.json.gz"))
    assert [Path(s).name for s in frame["_source"].unique(maintain_order=True)] == [
        Path(m).name for m in MEMBER_ORDER
    ]
    assert content(frame) == expected_content(events)


def test_glob(tmp_path: Path, events, write_lines) -> None:
    root = s3_folder(tmp_path / "bucket", events, write_lines)
    frame = read_all(str(root / PROJ / "*.json.gz"))
    assert sorted(content(frame), key=lambda r: r["uuid"]) == sorted(
        expected_content(events), key=lambda r: r["uuid"]
    )
    recursive = read_all(str(root / "**" / "*.json.gz"))
    assert recursive.height == len(events)


def test_empty_file_inside_an_explicit_list_gives_no_rows(
    tmp_path: Path, events, write_lines
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"\n\n")
    good = write_lines(tmp_path, events, "good.json")
    frame = read_all([empty, good])
    assert frame["_row"].to_list() == list(range(len(events)))


# --------------------------------------------------------------------------- Parquet


def test_parquet_nested_as_json_text(tmp_path: Path, events) -> None:
    path = tmp_path / "events.parquet"
    json_text_frame(events).write_parquet(path)
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
    json_text_frame(events).write_parquet(path)
    assert content(read_all(path)) == expected_content(events)


def test_a_large_parquet_file_is_read_in_slices_with_its_own_line_numbers(tmp_path: Path) -> None:
    rows = [wh_row(UUID=f"e{i}") for i in range(3000)]
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


# --------------------------------------------------------------------------- in-memory tables


def test_polars_dataframe_and_lazyframe(events) -> None:
    df = json_text_frame(events)
    assert content(read_all(df)) == expected_content(events)
    assert content(read_all(df.lazy())) == expected_content(events)


def test_pyarrow_table_and_record_batch_reader(events) -> None:
    table = json_text_frame(events).to_arrow()
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
