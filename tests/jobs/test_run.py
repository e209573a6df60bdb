"""The whole run as a library call: read, transform, then a dry run or a delivery, and
the RunResult that says what it did (the ``run`` subcommand is tested in ``tests/cli``)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import accoil_transform as at
from accoil_transform.jobs import _run as jobs_run
from accoil_transform.read import read_events
from accoil_transform.testing import LocalAccoil, make_events

KEY = "jobs-run-accoil-key"
T0 = datetime(2026, 11, 20, 0, tzinfo=UTC)


@pytest.fixture
def export(tmp_path: Path, write_lines: Callable[..., Path]) -> Path:
    """Two hours of events for five users, and one cut line."""
    events = list(make_events(T0, hours=2, per_hour=6))
    return write_lines(tmp_path, [*events[:4], '{"event_type": "cut', *events[4:]])


def test_a_dry_run_writes_the_calls_the_quarantine_and_the_report(
    tmp_path: Path, export: Path
) -> None:
    out, report = tmp_path / "out" / "calls.ndjson", tmp_path / "out" / "report.json"
    result = at.run(export, options=at.RunOptions(out=out, report=report))
    assert isinstance(result, at.RunResult)
    assert (result.format, result.dry_run, result.delivery, result.failed) == ("v2", True, None, 0)
    assert dict(result.outputs) == {
        "quarantine": tmp_path / "out" / "calls.quarantine.ndjson",
        "calls": out,
        "report": report,
    }
    assert result.report.rows_read == 13 and result.report.dropped["malformed"] == 1
    assert result.report.calls["track"] == result.report.kept == 12
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == sum(result.report.calls.values())
    assert json.loads(report.read_text()) == result.to_dict()
    assert result.to_dict()["outputs"] == {k: str(v) for k, v in result.outputs.items()}
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.dry_run = False  # type: ignore[misc]


def test_a_delivery_sends_each_call_once_and_a_rerun_skips_them(
    tmp_path: Path, export: Path
) -> None:
    with LocalAccoil(api_key=KEY) as accoil:
        options = at.RunOptions(
            api_key=KEY,
            base_url=accoil.base_url,
            delivery=at.DeliveryOptions(ledger_path=tmp_path / "ledger.sqlite"),
        )
        first = at.run(export, options=options)
        total = sum(first.report.calls.values())
        assert not first.dry_run and first.delivery is not None and first.failed == 0
        assert first.delivery.total.sent == len(accoil.accepted) == total
        assert first.to_dict()["delivery"] == first.delivery.to_dict()
        assert "calls" not in first.outputs  # nothing written in place of sending

        again = at.run(export, options=options)
        assert again.delivery is not None
        assert (again.delivery.total.sent, again.delivery.total.skipped) == (0, total)
        assert len(accoil.accepted) == total


def test_transform_takes_paths_or_the_canonical_frames(export: Path) -> None:
    from_path = at.transform(export)
    from_frames = at.transform(read_events(export))
    from_list = at.transform(list(read_events(export)))
    for result in (from_frames, from_list):
        assert result.report.to_dict() == from_path.report.to_dict()
        assert result.tracks.equals(from_path.tracks)
    assert from_path.report.kept == 12 and from_path.quarantine.height == 1


def test_a_run_that_reads_nothing_is_an_error(
    tmp_path: Path, write_lines: Callable[..., Path]
) -> None:
    empty = write_lines(tmp_path, [], name="empty.json")
    with pytest.raises(at.InputError, match="the file is empty"):
        at.run(empty, options=at.RunOptions(out=tmp_path / "calls.ndjson"))


def test_track_calls_follow_the_input_order(
    tmp_path: Path, write_lines: Callable[..., Path]
) -> None:
    """Within the track calls, input order, across chunks, whatever the event times."""
    events = list(make_events(T0, hours=3, per_hour=5))[::-1]  # latest first
    lines = write_lines(tmp_path, events)
    small = at.ReadOptions(chunk_bytes=2_000, read_bytes=1_000, decode_bytes=1_000)
    for fmt in ("v2", "stream"):
        out = tmp_path / f"{fmt}.ndjson"
        at.run(lines, options=at.RunOptions(format=fmt, out=out, read=small))
        calls = [json.loads(x) for x in out.read_text().splitlines()]
        kinds = [c["url"].rsplit("/", 1)[-1] for c in calls]
        tracks = [c["body"] for c in calls if c["url"].endswith(("/track", "/stream"))]
        assert kinds == sorted(kinds, key=["identify", "group", "track", "stream"].index)
        times = [b["timestamp"] for b in tracks]
        assert len(times) == len(events) and times == sorted(times, reverse=True)


def test_a_stream_dry_run_writes_each_chunk_as_it_is_transformed(
    tmp_path: Path, write_lines: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls reach the file while the input is still being transformed: by the time a
    third chunk is encoded, the first one's calls are written."""
    events = write_lines(tmp_path, list(make_events(T0, hours=2, per_hour=20)))
    out = tmp_path / "calls.ndjson"
    written: list[int] = []
    encode = jobs_run.track_calls

    def partial_size() -> int:
        return sum(p.stat().st_size for p in tmp_path.glob(".calls.ndjson.*.partial"))

    def track_calls(*args: Any, **kwargs: Any) -> pl.DataFrame:
        calls = encode(*args, **kwargs)
        if len(written) == 2:
            deadline = time.monotonic() + 20
            while partial_size() == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        written.append(partial_size())
        return calls

    monkeypatch.setattr(jobs_run, "track_calls", track_calls)
    small = at.ReadOptions(chunk_bytes=2_000, read_bytes=1_000, decode_bytes=1_000)
    result = at.run(events, options=at.RunOptions(format="stream", out=out, read=small))
    assert len(written) > 3 and written[2] > 0, "no call was written before the input ended"
    assert len(out.read_text().splitlines()) == result.report.calls["track"] == 40
    assert not list(tmp_path.glob(".*"))  # the partial file became calls.ndjson


@pytest.mark.parametrize("fmt", ["v2", "stream"])
def test_a_failed_run_leaves_the_calls_file_it_would_have_replaced(
    tmp_path: Path, write_lines: Callable[..., Path], fmt: str
) -> None:
    """Output files appear whole or not at all: a run that fails keeps the last one."""
    good = write_lines(tmp_path, list(make_events(T0, hours=1)), name="good.json")
    out = tmp_path / "calls.ndjson"
    out.write_text("yesterday's calls\n")
    with pytest.raises(at.InputError, match=r"bad\.json.*line 2"):
        at.run(
            [
                good,
                write_lines(tmp_path, [*list(make_events(T0, hours=1))[:1], "{"], name="bad.json"),
            ],
            options=at.RunOptions(format=fmt, out=out, strict=True),
        )
    assert out.read_text() == "yesterday's calls\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "calls.ndjson", "good.json"]


def test_a_dry_run_can_write_to_a_device(tmp_path: Path, export: Path) -> None:
    """A path that is not a regular file (``/dev/null``) is written in place, not replaced."""
    result = at.run(export, options=at.RunOptions(format="stream", out=Path("/dev/null")))
    assert Path("/dev/null").is_char_device() and result.outputs["calls"] == Path("/dev/null")
