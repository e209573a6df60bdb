"""The files a run writes: the dry-run calls as NDJSON ``{"method","url","body"}``, the
quarantine and the JSON report."""

from __future__ import annotations

import io
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from accoil_transform.calls import CALLS_SCHEMA
from accoil_transform.jobs import dry_run_lines, write_dry_run, write_quarantine, write_report


def calls(*rows: tuple[str, str]) -> pl.DataFrame:
    """A calls frame of (kind, body) rows."""
    return pl.DataFrame(
        [(kind, f"c{i}", "u", body) for i, (kind, body) in enumerate(rows)],
        schema=CALLS_SCHEMA,
        orient="row",
    )


FRAME = calls(
    ("identify", '{"userId":"u","traits":{}}'),
    ("group", '{"groupId":"g","userId":"u"}'),
    ("track", '{"userId":"u","event":"É"}'),
)


def test_a_line_per_call_with_the_url_of_its_kind() -> None:
    lines = dry_run_lines(FRAME).to_list()
    assert [json.loads(line) for line in lines] == [
        {
            "method": "POST",
            "url": "https://in.accoil.com/v2/identify",
            "body": {"userId": "u", "traits": {}},
        },
        {
            "method": "POST",
            "url": "https://in.accoil.com/v2/group",
            "body": {"groupId": "g", "userId": "u"},
        },
        {
            "method": "POST",
            "url": "https://in.accoil.com/v2/track",
            "body": {"userId": "u", "event": "É"},
        },
    ]
    assert all(not line.endswith("\n") for line in lines)
    # the body is written as it is, not parsed and dumped again
    assert lines[2].endswith(',"body":{"userId":"u","event":"É"}}')


def test_the_format_the_base_url_and_a_single_url() -> None:
    v1 = [json.loads(x)["url"] for x in dry_run_lines(FRAME, "v1", base_url="http://h:9/")]
    assert v1 == ["http://h:9/v1/users", "http://h:9/v1/groups", "http://h:9/v1/events"]
    segment = {json.loads(x)["url"] for x in dry_run_lines(FRAME, "segment")}
    assert segment == {"https://in.accoil.com/segment"}
    hook = "https://hooks.example.test/accoil"
    assert {json.loads(x)["url"] for x in dry_run_lines(FRAME, url=hook)} == {hook}


def test_write_dry_run_writes_every_chunk_in_order(tmp_path: Path) -> None:
    chunks = [FRAME.head(1), FRAME.clear(), FRAME.tail(2)]
    path = write_dry_run(iter(chunks), tmp_path / "sub" / "calls.ndjson")
    assert path == tmp_path / "sub" / "calls.ndjson"
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert text.splitlines() == dry_run_lines(FRAME).to_list()
    assert write_dry_run(FRAME, tmp_path / "one.ndjson").read_text(encoding="utf-8") == text
    assert write_dry_run([], tmp_path / "none.ndjson").read_bytes() == b""


@pytest.mark.parametrize("target", ["file", "stdout", "device"])
def test_calls_known_last_can_be_written_first(
    tmp_path: Path,
    capfdbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    """``first`` is asked for once every other chunk is made, and its lines lead."""
    tracks = [calls(("track", f'{{"n":{i}}}')) for i in range(3)]
    made: list[int] = []

    def chunks() -> Iterator[pl.DataFrame]:
        for i, chunk in enumerate(tracks):
            made.append(i)
            yield chunk

    def head() -> pl.DataFrame:
        assert made == [0, 1, 2]  # known only after the last chunk
        return FRAME.head(2)

    side_dirs: list[str | None] = []
    make_side_file = tempfile.TemporaryFile

    def side_file(*args: Any, **kwargs: Any) -> Any:
        side_dirs.append(kwargs.get("dir"))
        return make_side_file(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", side_file)
    path = {"file": tmp_path / "calls.ndjson", "stdout": Path("-"), "device": Path("/dev/null")}
    write_dry_run(chunks(), path[target], first=head)
    # beside the output file; never in /dev (not writable but by root)
    assert side_dirs == [tmp_path if target == "file" else None]
    expected = [*dry_run_lines(FRAME.head(2)), *(dry_run_lines(t).item() for t in tracks)]
    if target == "file":
        assert path["file"].read_text(encoding="utf-8").splitlines() == expected
        assert [p.name for p in tmp_path.iterdir()] == ["calls.ndjson"]  # no side file left
    elif target == "stdout":
        assert capfdbinary.readouterr().out.decode().splitlines() == expected
    else:
        assert made == [0, 1, 2]


class ShortWrites(io.BytesIO):
    """A buffered file whose ``write`` takes at most 100 bytes and says so, as Python's
    buffered stdout does when the reader of a pipe goes away in the middle of a write."""

    def write(self, data: Any) -> int:
        return super().write(memoryview(data)[:100])


@pytest.mark.parametrize("fmt", ["stream", "v2"])
def test_a_write_that_takes_fewer_bytes_is_finished(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    sink = ShortWrites()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(sink))
    tracks = calls(*[("track", f'{{"n":{i}}}') for i in range(50)])
    first = None if fmt == "stream" else (lambda: FRAME.head(2))
    write_dry_run([tracks], "-", first=first)
    head = [] if first is None else dry_run_lines(FRAME.head(2)).to_list()
    assert sink.getvalue().decode().splitlines() == [*head, *dry_run_lines(tracks)]
    write_report({"rows_read": 1, "note": "x" * 500}, "-")
    assert sink.getvalue().decode().endswith('"note": "' + "x" * 500 + '"\n}\n')


def test_quarantine_and_report_files(tmp_path: Path) -> None:
    quarantine = pl.DataFrame(
        {"source": ["a.json"], "line": [3], "reason": ["not JSON"], "raw": ['{"cut']}
    )
    path = write_quarantine(quarantine, tmp_path / "q" / "bad.ndjson")
    assert [json.loads(x) for x in path.read_text().splitlines()] == [
        {"source": "a.json", "line": 3, "reason": "not JSON", "raw": '{"cut'}
    ]
    report = {"rows_read": 3, "calls": {"track": 1}, "event": "Doc Shared 📄"}
    path = write_report(report, tmp_path / "r" / "report.json")
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == report
    assert "📄" in text and text.endswith("}\n") and '\n  "rows_read": 3' in text
