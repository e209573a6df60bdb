"""The whole run as a library call: read, transform, then a dry run or a delivery, and
the RunResult that says what it did (the ``run`` subcommand is tested in ``tests/cli``)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

import accoil_transform as at
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
