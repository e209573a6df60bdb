"""``read_events``: rows numbered across all inputs, and small files, zip members and
tables gathered into chunks, each row keeping its own source and line."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform.testing.synthetic import (
    generate_events,
    with_malformed_lines,
    write_export_zip,
)
from tests.read.helpers import wh_row

# --------------------------------------------------------------------------- row numbers


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


# --------------------------------------------------------------------------- gathered chunks


def test_small_members_are_gathered_into_chunks_with_their_own_sources_and_lines(
    tmp_path: Path,
) -> None:
    """Many small zip members make few frames, each row keeping its member and line."""
    path = tmp_path / "export.zip"
    events = with_malformed_lines(generate_events(3000, seed=3), 8)
    members = write_export_zip(path, events, members=40)
    gathered = list(at.read_events(path))
    # A chunk per 4 KB piece: one member.
    alone = list(at.read_events(path, options=at.ReadOptions(chunk_bytes=4096)))
    assert len(gathered) < 5 < len(members) <= len(alone)
    assert_frame_equal(pl.concat(gathered), pl.concat(alone))
    whole = pl.concat(gathered)
    assert whole["_source"].unique().len() == len(members)
    for member, lines in whole.group_by("_source", maintain_order=True).agg("_line").iter_rows():
        assert lines == list(range(1, len(lines) + 1)), member  # every line, in order
    bad = whole.filter(pl.col("_malformed").is_not_null())
    assert bad.height >= 8 and bad["_source"].n_unique() > 1


def test_members_with_other_key_spellings_are_not_gathered(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    line = {"event_type": "E", "event_time": "2025-07-01 00:00:00.000000", "user_id": "u"}
    upper = {k.upper(): v for k, v in line.items()}
    with zipfile.ZipFile(path, "w") as zf:
        for i, event in enumerate([line, line, line, upper, line]):
            text = json.dumps({**event, "uuid": f"e{i}"}) + "\n"
            zf.writestr(f"1/1_2025-07-01_{i}#0.json.gz", gzip.compress(text.encode()))
    frames = list(at.read_events(path))
    # The first member goes on alone (so that the later stages start early); then members
    # 1 and 2 are gathered, and the other spelling ends a chunk and starts one.
    assert [f.height for f in frames] == [1, 2, 1, 1]
    whole = pl.concat(frames)
    assert whole["uuid"].to_list() == [f"e{i}" for i in range(5)]
    assert whole["event_type"].to_list() == ["E"] * 5
    assert whole["_source"].to_list() == [f"{path}!1/1_2025-07-01_{i}#0.json.gz" for i in range(5)]


def test_small_tables_are_gathered_into_frames_with_their_own_sources(tmp_path: Path) -> None:
    """A warehouse extract's many small Parquet files make few frames (each costs the
    transform a fixed overhead), every row keeping its file."""
    rows = [wh_row(EVENT_TIME=f"2025-07-01 00:00:{i % 60:02d}", UUID=f"e{i}") for i in range(40)]
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
