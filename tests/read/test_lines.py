"""NDJSON text cut into lines: line ends, blank lines, and pieces and chunks of a few bytes
that cut lines anywhere, with the same rows as when the input is read whole."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform.read._lines import LineChunk, iter_line_chunks
from accoil_transform.read._sources import iter_raw_inputs
from accoil_transform.testing.synthetic import (
    generate_events,
    with_malformed_lines,
    write_ndjson_gz,
)
from tests.read.helpers import content, expected_content, read_all

# --------------------------------------------------------------------------- line ends and blank lines


def test_file_without_trailing_newline_and_with_crlf(tmp_path: Path, events) -> None:
    data = b"\r\n".join(json.dumps(e).encode() for e in events)
    path = tmp_path / "crlf.json"
    path.write_bytes(data)
    assert content(read_all(path)) == expected_content(events)


def test_line_numbers_count_blank_lines(tmp_path: Path, events, write_lines) -> None:
    lines: list[Any] = ["", events[0], "   ", events[1], events[2], "", "", events[3]]
    path = write_lines(tmp_path, lines, "blank.json")
    frame = read_all(path)
    assert frame["_line"].to_list() == [2, 4, 5, 8]
    assert frame["_row"].to_list() == [0, 1, 2, 3]
    assert content(frame) == expected_content(events[:4])


# --------------------------------------------------------------------------- streamed chunks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 3,000 varied events (edge cases, malformed lines) as .json.gz and .json."""
    folder = tmp_path_factory.mktemp("corpus")
    events = list(with_malformed_lines(generate_events(3000, seed=7), 6))
    gz = folder / "events.json.gz"
    write_ndjson_gz(gz, events)
    plain = folder / "events.json"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    return {"gz": gz, "plain": plain}


def _read(path: Path) -> pl.DataFrame:
    frames = list(at.read_events(path))
    return pl.concat(frames).drop("_source")


@pytest.mark.parametrize("kind", ["gz", "plain"])
@pytest.mark.parametrize(
    ("chunk_bytes", "read_bytes", "min_chunks"),
    [
        (5_000, 16 << 20, 100),  # lines cut by every chunk
        (20_000, 1_700, 20),  # and by the read pieces inside a chunk
    ],
)
def test_tiny_chunks_and_pieces_read_the_same_rows(
    corpus: dict[str, Path],
    kind: str,
    chunk_bytes: int,
    read_bytes: int,
    min_chunks: int,
) -> None:
    whole = _read(corpus[kind])
    assert whole["_malformed"].is_not_null().sum() >= 5  # the corpus does hold bad lines
    options = at.ReadOptions(chunk_bytes=chunk_bytes, read_bytes=read_bytes, decode_bytes=1_500)
    chunks = list(at.read_events(corpus[kind], options=options))
    assert len(chunks) > min_chunks
    assert_frame_equal(pl.concat(chunks).drop("_source"), whole)


def test_multi_member_gzip_with_padding_is_read_in_chunks(tmp_path: Path) -> None:
    lines = [
        json.dumps({"event_type": "E", "event_time": "2025-07-01 00:00:00", "user_id": f"u{i}"})
        for i in range(300)
    ]
    parts = [gzip.compress(("\n".join(lines[i : i + 100]) + "\n").encode()) for i in (0, 100, 200)]
    path = tmp_path / "members.json.gz"
    path.write_bytes(parts[0] + b"\x00" * 512 + parts[1] + parts[2])
    frame = pl.concat(list(at.read_events(path, options=at.ReadOptions(chunk_bytes=700))))
    assert frame["user_id"].to_list() == [f"u{i}" for i in range(300)]
    assert frame["_line"].to_list() == list(range(1, 301))


# --------------------------------------------------------------------------- UTF-8


def _chunks(path: Path, read_bytes: int) -> list[LineChunk]:
    (raw,) = iter_raw_inputs([path], at.ReadOptions())
    return list(iter_line_chunks(raw, 64, read_bytes=read_bytes, check_utf8=True))


def test_chunks_say_whether_their_text_is_utf8_however_pieces_cut_it(tmp_path: Path) -> None:
    line = json.dumps({"event_type": "É", "city": "São Paulo 🚀"}, ensure_ascii=False)
    path = tmp_path / "e.json"
    path.write_bytes((line + "\n").encode() * 20)
    for read_bytes in (1, 3, 7, 64):  # pieces that cut characters between their bytes
        chunks = _chunks(path, read_bytes)
        assert len(chunks) > 1 and all(chunk.utf8 for chunk in chunks), read_bytes
    path.write_bytes((line + "\n").encode() * 10 + b'{"city": "S\xe3o"}\n' + b"{}\n" * 10)
    chunks = _chunks(path, 7)
    assert [c.utf8 for c in chunks].count(False) == 1


def test_one_line_that_is_not_utf8_among_good_lines_is_quarantined(tmp_path: Path) -> None:
    event = {"event_type": "E", "event_time": "2025-07-01 00:00:00", "city": "São Paulo"}
    good = [
        json.dumps({**event, "user_id": f"u{i}"}, ensure_ascii=False).encode() for i in range(2000)
    ]
    # Latin-1, in a key the reader skips: only the UTF-8 check can find it.
    bad = json.dumps({**event, "user_id": "u"}, ensure_ascii=False).encode("latin-1")
    path = tmp_path / "e.json.gz"
    path.write_bytes(gzip.compress(b"\n".join([*good[:1000], bad, *good[1000:]]) + b"\n"))
    frame = pl.concat(list(at.read_events(path)))
    malformed = frame.filter(pl.col("_malformed").is_not_null())
    assert malformed["_line"].to_list() == [1001]
    assert malformed["_malformed"].item().startswith("not valid UTF-8")
    assert frame.height == 2001
