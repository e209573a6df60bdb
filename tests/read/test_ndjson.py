"""NDJSON decoding (msgspec): values, bad lines that keep their numbers whatever the piece
size, decoded lines extended piece by piece, and the JSON column helpers."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform._json import json_value_at, object_fields
from accoil_transform.read import decode_lines, parse_ndjson
from tests.read.helpers import content, expected_content, read_all

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


def test_utf8_byte_order_mark_is_ignored(tmp_path: Path, events, ndjson_bytes) -> None:
    path = tmp_path / "windows.json"
    path.write_bytes(b"\xef\xbb\xbf" + ndjson_bytes(events))
    frame = read_all(path)
    assert frame["_malformed"].to_list() == [None] * len(events)
    assert content(frame) == expected_content(events)


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


# --------------------------------------------------------------------------- decoded lines


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
