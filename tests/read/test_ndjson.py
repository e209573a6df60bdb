"""NDJSON decoding (msgspec), streamed chunks, and results that must not depend on batching.

The reader decodes NDJSON a piece at a time inside chunks of lines, and the transform
remembers dedup keys and group texts between batches. These tests shrink the pieces and
chunks to a few bytes, so that every boundary case happens, and check that the rows
are the same as when the input is read whole.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform._json import json_value_at, object_fields
from accoil_transform.read import decode_lines, parse_ndjson
from accoil_transform.rules import GroupResolver, Transformer, primary_groups
from accoil_transform.testing.synthetic import (
    generate_events,
    with_malformed_lines,
    write_export_zip,
    write_ndjson_gz,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "amplitude_export_sample.zip"
KEYS = {"uuid": pl.String(), "user_id": pl.String(), "groups": pl.String(), "n": pl.String()}


def _parse(text: bytes) -> pl.DataFrame:
    return parse_ndjson(text, "test.json", KEYS)


# --------------------------------------------------------------------------- values


def test_strings_are_unescaped_and_other_values_kept_as_json_text() -> None:
    lines = [
        {"uuid": 'say "hi" \\ \u00e9 \U0001f680 \n', "user_id": 12345678901234567890123, "n": 1.50},
        {"uuid": "plain", "user_id": True, "n": {"a": [1, 2]}},
        {"uuid": None, "n": "1e20"},
    ]
    text = b"\n".join(json.dumps(x).encode() for x in lines) + b"\n"
    frame = _parse(text)
    assert frame["uuid"].to_list() == ['say "hi" \\ \u00e9 \U0001f680 \n', "plain", None]
    # Numbers keep their digits as written: no trip through a double.
    assert frame["user_id"].to_list() == ["12345678901234567890123", "true", None]
    assert frame["n"].to_list() == ["1.5", '{"a": [1, 2]}', "1e20"]
    assert frame["_line"].to_list() == [1, 2, 3]
    assert frame["_malformed"].null_count() == 3


def test_nested_columns_are_the_exact_text_of_the_line() -> None:
    text = b'{"groups": {"A" : ["1"], "n": 1.0e2, "s": "C:\\\\new"}, "uuid": "u"}\n'
    frame = _parse(text)
    assert frame["groups"].to_list() == ['{"A" : ["1"], "n": 1.0e2, "s": "C:\\\\new"}']
    assert json.loads(frame["groups"][0]) == {"A": ["1"], "n": 100.0, "s": "C:\\new"}


def test_json_null_and_absent_keys_are_null() -> None:
    frame = _parse(b'{"uuid": null, "groups": null}\n{"other": 1}\n')
    assert frame.select("uuid", "groups").to_dicts() == [{"uuid": None, "groups": None}] * 2


# --------------------------------------------------------------------------- bad lines


BAD_LINES = {
    3: (b'{"uuid": "cut", ', "not valid JSON"),
    5: (b'["an", "array"]', "expected a JSON object, got array"),
    6: (b'{"uuid": "a"} {"uuid": "b"}', "not valid JSON"),
    8: (b'{"uuid": "u8", "city": "S\xe3o Paulo"}', "not valid UTF-8"),
    9: (b"42", "expected a JSON object, got int"),
}


def _mixed_text(crlf: bool = False) -> bytes:
    lines = [json.dumps({"uuid": f"u{n}", "user_id": f"user-{n}"}).encode() for n in range(1, 13)]
    for number, (line, _) in BAD_LINES.items():
        lines[number - 1] = line
    lines[3] = b""  # line 4 blank
    lines[9] = b"   \t "  # line 10 white space only
    end = b"\r\n" if crlf else b"\n"
    return end.join(lines)  # no newline after the last line


@pytest.mark.parametrize("piece_bytes", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("crlf", [False, True])
def test_bad_lines_keep_their_number_whatever_the_piece_size(piece_bytes: int, crlf: bool) -> None:
    frame = parse_ndjson(_mixed_text(crlf), "test.json", KEYS, decode_bytes=piece_bytes)
    good = frame.filter(pl.col("_malformed").is_null())
    assert good["_line"].to_list() == [1, 2, 7, 11, 12]
    assert good["uuid"].to_list() == ["u1", "u2", "u7", "u11", "u12"]
    bad = frame.filter(pl.col("_malformed").is_not_null())
    assert bad["_line"].to_list() == sorted(BAD_LINES)
    for number, reason, raw in bad.select("_line", "_malformed", "_raw").iter_rows():
        line, expected = BAD_LINES[number]
        assert reason.startswith(expected), (number, reason)
        assert raw == line.decode("utf-8", errors="replace")


def test_text_with_no_json_object_is_not_ndjson() -> None:
    with pytest.raises(at.InputError) as info:
        _parse(b"a,b,c\n1,2,3\n")
    assert info.value.line == 1 and "not an NDJSON event file" in str(info.value)


def test_white_space_only_text_has_no_rows() -> None:
    assert _parse(b"  \n\n\t\n").height == 0
    assert _parse(b"").height == 0


def test_decoding_continues_line_numbers_across_spans() -> None:
    first = b'{"uuid": "a"}\n{"uuid": "b"}\n'
    second = b'xx{"uuid": "c"}\n{"uuid"\n'
    decoded = decode_lines([(first, 0, len(first)), (second, 2, len(second))], "t", tuple(KEYS))
    frame = decoded.to_frame(["groups"])
    assert frame["_line"].to_list() == [1, 2, 3, 4]
    assert frame["uuid"].to_list() == ["a", "b", "c", None]
    assert decoded.next_line == 5


def test_decoded_lines_extended_piece_by_piece_make_the_frame_of_the_whole() -> None:
    text = _mixed_text(crlf=False)
    cut = text.index(b"\n", len(text) // 2) + 1
    keys = tuple(KEYS)
    first = decode_lines(text[:cut], "t", keys)
    first.extend(decode_lines(text[cut:], "t", keys, first_line=first.next_line))
    whole = decode_lines(text, "t", keys)
    assert first.next_line == whole.next_line
    assert_frame_equal(first.to_frame(), whole.to_frame())
    with pytest.raises(ValueError, match="keys differ"):
        first.extend(decode_lines(text, "t", ("uuid",)))


# --------------------------------------------------------------------------- JSON columns


def test_object_fields() -> None:
    docs = pl.Series(
        [
            '{"email": "a@x.io", "n": 12345678901234567890, "o": {"k": [1, 2]}}',
            None,
            '{"email": null}',
            "",
            '"not an object"',
            "{not json",
            '{"other": 1}',
        ]
    )
    fields = object_fields(docs, ["email", "n", "o"])
    assert fields.to_dicts() == [
        {"email": '"a@x.io"', "n": "12345678901234567890", "o": '{"k": [1, 2]}'},
        {"email": None, "n": None, "o": None},
        {"email": "null", "n": None, "o": None},
        {"email": None, "n": None, "o": None},
        {"email": None, "n": None, "o": None},
        {"email": None, "n": None, "o": None},
        {"email": None, "n": None, "o": None},
    ]


def test_property_values_are_made_compact() -> None:
    frame = pl.DataFrame(
        {
            "event_properties": [
                '{"plan": {"name": "Pro plan", "seats" : [1, 2]}, "x": "a b"}',
                '{"plan": "a  b"}',
            ]
        }
    )
    out = frame.select(json_value_at(pl.col("event_properties"), "plan"))
    assert out.to_series().to_list() == ['{"name":"Pro plan","seats":[1,2]}', '"a  b"']


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


def test_decoded_lines_of_two_sources_keep_their_parts() -> None:
    keys = tuple(KEYS)
    first = decode_lines(b'{"uuid": "a"}\nnope\n', "one", keys)
    first.extend(decode_lines(b'[1]\n{"uuid": "b"}\n', "two", keys))
    assert first.parts == [("one", 1, 1), ("two", 1, 1)]
    frame = first.to_frame()
    assert frame.select("_source", "_line", "uuid").rows() == [
        ("one", 1, "a"),
        ("one", 2, None),
        ("two", 1, None),
        ("two", 2, "b"),
    ]


# --------------------------------------------------------------------------- batch invariance


def _transform(frames: list[pl.DataFrame]) -> at.TransformResult:
    return at.transform(frames, at.TransformConfig())


def test_transform_results_do_not_depend_on_the_batches() -> None:
    """Dedup keys and group texts remembered between batches give the one-batch result."""
    whole = _transform([pl.concat(list(at.read_events(SAMPLE)))])
    batches = list(at.read_events(SAMPLE, options=at.ReadOptions(chunk_bytes=20_000)))
    assert len(batches) > 20
    result = _transform(batches)
    assert result.report.to_dict() == whole.report.to_dict()
    assert result.report.dropped["duplicate"] > 0  # some duplicates are in other batches
    for name in ("tracks", "identifies", "groups", "quarantine"):
        assert_frame_equal(getattr(result, name), getattr(whole, name), check_row_order=False)


def test_hash_collisions_cost_time_not_correctness() -> None:
    """Every dedup key and every group text pair hashed alike: results are unchanged."""
    batches = list(at.read_events(SAMPLE, options=at.ReadOptions(chunk_bytes=50_000)))
    expected = _transform(batches)
    colliding = Transformer(
        at.TransformConfig(),
        key_hash=lambda keys: keys.is_null().cast(pl.UInt64),
        resolver=GroupResolver(hash_texts=lambda: pl.lit(7, pl.UInt64)),
    )
    tracks = pl.concat([colliding.feed(batch) for batch in batches])
    identifies, groups = colliding.finish()
    result = at.TransformResult(tracks, identifies, groups, colliding.quarantine, colliding.report)
    result.report.calls["track"] = tracks.height
    assert result.report.to_dict() == expected.report.to_dict()
    for name in ("tracks", "identifies", "groups"):
        assert_frame_equal(getattr(result, name), getattr(expected, name), check_row_order=False)


def test_group_resolver_memory_is_bounded_and_restarts_without_changing_results() -> None:
    frame = pl.concat(list(at.read_events(SAMPLE))).with_columns(pl.col("_row").cast(pl.UInt64))
    expected = primary_groups(frame).sort("_row")
    resolver = GroupResolver(max_texts=5)
    for start in range(0, frame.height, 300):
        part = resolver.primary_groups(frame.slice(start, 300)).drop("groupTraits")
        assert_frame_equal(
            part.sort("_row"), expected.filter(pl.col("_row").is_in(part["_row"].implode()))
        )
        assert "known=" in repr(resolver)
    assert resolver.primaries.height <= 300
