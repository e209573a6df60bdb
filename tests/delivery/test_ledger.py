"""Ledger: acknowledged ids survive reopening, lookups keep order, writes group-commit."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from accoil_transform.delivery import Ledger, LedgerError


def test_filter_unsent_keeps_input_order(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.record(["b", "d"], wait=True)
        assert ledger.filter_unsent(["a", "b", "c", "d", "e"]) == ["a", "c", "e"]
        assert ledger.filter_unsent([]) == []
        assert "b" in ledger
        assert "a" not in ledger


def test_records_survive_reopening_and_duplicates_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.record(["x", "y"])
        ledger.record(["y", "z"])  # close() commits what is pending
    with Ledger(path) as ledger:
        assert len(ledger) == 3
        assert ledger.filter_unsent(["w", "x", "y", "z"]) == ["w"]


def test_lookups_larger_than_one_sql_chunk(tmp_path: Path) -> None:
    ids = [f"call-{i:05d}" for i in range(5_000)]
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.record(ids[::2], wait=True)
        assert ledger.filter_unsent(ids) == ids[1::2]


def test_records_are_committed_in_batches(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        for i in range(2_000):
            ledger.record([f"id{i}"])
        ledger.flush()
        assert len(ledger) == 2_000
        assert 1 <= ledger.commits < 2_000


def test_waiting_writers_from_many_threads(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:

        def write(t: int) -> None:
            for i in range(200):
                ledger.record([f"{t}-{i}"], wait=True)
                assert f"{t}-{i}" in ledger  # committed before record() returned

        threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(ledger) == 1_600
        assert ledger.commits <= 1_600


def test_state_table(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path) as ledger:
        assert ledger.get_state("cursor") is None
        assert ledger.get_state("cursor", "0") == "0"
        ledger.set_state("cursor", "2025-01-01T00")
        ledger.set_state("cursor", "2025-01-01T01")
    with Ledger(path) as ledger:
        assert ledger.get_state("cursor") == "2025-01-01T01"


def test_the_file_holds_ids_and_state_only(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path) as ledger:
        ledger.record(["abc"], wait=True)
    conn = sqlite3.connect(path)
    tables = {
        r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")
    }
    assert set(tables) == {"acked", "state"}
    assert conn.execute("SELECT * FROM acked").fetchall() == [("abc",)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_recording_after_close_fails(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.close()
    ledger.close()  # idempotent
    with pytest.raises(LedgerError):
        ledger.record(["a"])


def test_a_failing_writer_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path)
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute(
        "CREATE TRIGGER no_ids BEFORE INSERT ON acked BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    blocker.commit()
    blocker.close()
    with pytest.raises(LedgerError, match="disk says no"):
        ledger.record(["a"], wait=True)
    with pytest.raises(LedgerError):
        ledger.close()
