"""The quarantine keeps each malformed line exactly as its source holds it, and a table's
malformed row as JSON (docs/rules.md §2); a column of the wrong type is an InputError."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest

import accoil_transform as at

GOOD = {"event_type": "E", "event_time": "2025-07-01 00:00:00", "user_id": "u", "n": 1.50}


def _lines() -> list[bytes]:
    long_value = "x" * 10_000
    return [
        json.dumps(GOOD).encode(),
        b'{"event_type": "E", "event_time": "yesterday", "user_id":   "u",  "n": 1.50}',
        json.dumps({**GOOD, "event_type": None, "pad": long_value}).encode(),
        b'{"event_type": 42, "event_time": "2025-07-01 00:00:00", "user_id": "u"}',
        b'{"event_type": "E", "user_id": "\xff\xfe"}',  # not UTF-8
        b"[1, 2]",
        b'{"event_type": "E", truncated',
    ]


def _zip(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("1/1_2025-07-01_0#1.json.gz", gzip.compress(b"\n".join(lines) + b"\n"))
    return path


def test_quarantined_lines_are_the_original_bytes(tmp_path: Path) -> None:
    lines = _lines()
    result = at.run(_zip(tmp_path, lines), options=at.RunOptions(out=tmp_path / "calls.ndjson"))
    quarantine = [json.loads(line) for line in (tmp_path / "calls.quarantine.ndjson").open()]
    assert result.report.dropped["malformed"] == len(lines) - 1 == len(quarantine)
    for row in quarantine:
        original = lines[row["line"] - 1]
        if row["raw_base64"] is None:
            assert row["raw"].encode("utf-8") == original, row["reason"]
        else:  # bytes that are not UTF-8: no byte lost
            assert base64.b64decode(row["raw_base64"]) == original
            assert "UTF-8" in row["reason"]


def test_the_python_api_quarantine_has_the_original_lines_too(tmp_path: Path) -> None:
    lines = _lines()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")  # CRLF: the \r is the line's end
    quarantine = at.transform(path).quarantine.sort("line")
    assert quarantine["raw"][0].encode() == lines[1]
    assert quarantine["raw"][1].encode() == lines[2]  # 10 KB, whole


def test_a_malformed_row_of_a_table_is_quarantined_as_its_json() -> None:
    frame = pl.DataFrame(
        {
            "EVENT_TYPE": ["E", "E"],
            "EVENT_TIME": ["2025-07-01 00:00:00", "never"],
            "USER_ID": ["u", "v"],
            "extra": [1, 2],
        }
    )
    quarantine = at.transform(frame).quarantine
    (raw,) = quarantine["raw"].to_list()
    assert json.loads(raw) == {"EVENT_TYPE": "E", "EVENT_TIME": "never", "USER_ID": "v", "extra": 2}


@pytest.mark.parametrize(
    ("column", "values"),
    [("event_properties", [1, 2]), ("event_type", [1, 2]), ("groups", [1.5, 2.5])],
)
def test_a_column_of_the_wrong_type_is_an_input_error(
    tmp_path: Path, column: str, values: list[object]
) -> None:
    frame = pl.DataFrame(
        {"event_type": ["E", "E"], "event_time": ["2025-07-01 00:00:00"] * 2, "user_id": ["u", "v"]}
    ).with_columns(pl.Series(column, values))
    with pytest.raises(at.InputError, match=f"column '{column}' has type"):
        at.transform(frame)
    path = tmp_path / "wrong.parquet"
    frame.write_parquet(path)
    done = subprocess.run(
        [sys.executable, "-m", "accoil_transform", "run", str(path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f"column '{column}' has type" in done.stderr and "Traceback" not in done.stderr
