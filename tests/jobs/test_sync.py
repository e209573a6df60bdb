"""The sync job as a library call: which window comes next, what one sync returns, and
the state it keeps in the ledger (the ``sync`` subcommand is tested in ``tests/cli``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import accoil_transform as at
from accoil_transform.amplitude import AmplitudeExportClient
from accoil_transform.delivery import Ledger
from accoil_transform.errors import ConfigError, InputError, LedgerBusyError, LedgerError
from accoil_transform.jobs import STATE_KEY, latest_exportable_hour, next_window
from accoil_transform.jobs._sync import rewind, sync_status
from accoil_transform.testing import LocalAccoil, LocalAmplitudeExport, make_events

KEY = "jobs-sync-accoil-key"
START = datetime(2026, 11, 20, 0, tzinfo=UTC)


def test_next_window_waits_for_amplitude_to_finish_the_hour():
    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    window = next_window("20261128T05", now=now)
    assert (window.start_str, window.end_str) == ("20261128T06", "20261128T09")
    assert next_window("20261128T09", now=now) is None


def test_the_latest_exportable_hour_is_three_hours_back() -> None:
    now = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    assert latest_exportable_hour(now) == datetime(2026, 11, 28, 9, tzinfo=UTC)


def test_sync_sends_the_window_once_and_moves_the_state(tmp_path: Path) -> None:
    events = list(make_events(START, hours=3))
    ledger = tmp_path / "ledger.sqlite"
    with (
        LocalAmplitudeExport(events, api_key="amp-key", secret_key="amp-secret") as amp,
        LocalAccoil(api_key=KEY) as accoil,
        AmplitudeExportClient("amp-key", "amp-secret", base_url=amp.url) as client,
    ):

        def sync(options: at.RunOptions, **window: str) -> at.SyncResult:
            return at.sync(
                config=at.TransformConfig(),
                options=options,
                export_client=client,
                export_dir=tmp_path / "export",
                ledger_path=ledger,
                **window,
            )

        send = at.RunOptions(
            api_key=KEY,
            base_url=accoil.base_url,
            delivery=at.DeliveryOptions(ledger_path=ledger),
        )
        # A dry run writes the calls and never moves the state.
        dry = sync(
            send.replace(dry_run=True, out=tmp_path / "calls.ndjson"),
            start="20261120T00",
            until="20261120T02",
        )
        assert dry.run is not None and dry.run.dry_run and not dry.advanced
        assert dry.last_hour is None and accoil.accepted == []
        lines = (tmp_path / "calls.ndjson").read_text().count("\n")
        assert lines == sum(dry.run.report.calls.values()) > len(events)

        result = sync(send, start="20261120T00", until="20261120T02")
        assert str(result.window) == "20261120T00..20261120T02"
        assert len(result.files) == 1 and result.files[0].exists()
        assert result.run is not None and result.run.delivery is not None
        assert not result.run.dry_run and result.run.failed == 0
        assert result.run.delivery.total.sent == len(accoil.accepted) > len(events)
        assert (result.complete, result.advanced, result.empty) == (True, True, False)
        assert result.last_hour == "20261120T02"
        report = result.to_dict()
        assert report["window"] == "20261120T00..20261120T02"
        assert report["files"] == [str(result.files[0])]
        assert report["run"] == result.run.to_dict()
        assert (report["last_hour"], report["advanced"]) == ("20261120T02", True)
        with Ledger(ledger) as state:
            assert state.get_state(STATE_KEY) == "20261120T02"

        # Nothing new: no request, no run, the state stays.
        asked = len(amp.requests)
        again = sync(send, until="20261120T02")
        assert (again.window, again.run, again.advanced) == (None, None, False)
        assert again.last_hour == "20261120T02" and again.complete
        assert again.to_dict()["window"] is None
        assert len(amp.requests) == asked


def test_sync_status_reads_the_state_and_counts_per_destination(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with pytest.raises(InputError, match="no ledger here"):
        sync_status(ledger)
    with Ledger(ledger, destination="https://in.accoil.com#aaaa") as a:
        a.record(["1", "2", "3"], wait=True)
    with Ledger(ledger, destination="http://127.0.0.1:8765#bbbb") as b:
        b.record(["1"], wait=True)
        b.record(["9"], status=422, wait=True)
    now = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
    status = sync_status(ledger, now=now)
    assert (status.last_hour, status.next_window) == (None, None)
    assert [(d.base_url, d.key_hash, d.sent, d.rejected) for d in status.destinations] == [
        ("http://127.0.0.1:8765", "bbbb", 1, 1),
        ("https://in.accoil.com", "aaaa", 3, 0),
    ]
    with Ledger(ledger) as state:
        state.set_state(STATE_KEY, "20261120T05")
    status = sync_status(ledger, now=now)
    assert status.last_hour == "20261120T05"
    assert str(status.next_window) == "20261120T06..20261120T09"
    assert status.to_dict()["next_window"] == "20261120T06..20261120T09"
    assert sync_status(ledger, now=datetime(2026, 11, 20, 8, tzinfo=UTC)).next_window is None

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database, not even close" * 10)
    with pytest.raises(LedgerError, match="not a usable ledger"):
        sync_status(junk)


def test_rewind_moves_the_state_back_only(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with pytest.raises(InputError, match="no ledger here"):
        rewind(ledger, "20261120T00")
    with Ledger(ledger):
        pass
    with pytest.raises(ConfigError, match="nothing to rewind"):
        rewind(ledger, "20261120T00")
    with Ledger(ledger) as state:
        state.set_state(STATE_KEY, "20261120T05")
    for bad in ("2026112005", "20261120T24", "20261120t05 x"):
        with pytest.raises(ConfigError):
            rewind(ledger, bad)
    with pytest.raises(ConfigError, match="only moves the state back"):
        rewind(ledger, "20261120T07")
    assert rewind(ledger, "20261120T06") == ("20261120T05", "20261120T05")  # already next
    assert rewind(ledger, "20261119T23") == ("20261120T05", "20261119T22")
    with Ledger(ledger) as state:
        assert state.get_state(STATE_KEY) == "20261119T22"
    with Ledger(ledger), pytest.raises(LedgerBusyError):
        rewind(ledger, "20261119T00")
