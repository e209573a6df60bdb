"""Ledger: acknowledged ids per destination survive reopening, lookups keep order, writes
group-commit; rejections are kept; one run at a time; a bad file is a clear error."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from accoil_transform.delivery import Ledger, LedgerBusyError, LedgerError

D = "https://in.accoil.com#0123456789abcdef"


def unsent(ledger: Ledger, ids: list[str]) -> list[str]:
    return ledger.unsent(ids)[0]


def test_filter_unsent_keeps_input_order(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", D) as ledger:
        ledger.record(["b", "d"], wait=True)
        assert unsent(ledger, ["a", "b", "c", "d", "e"]) == ["a", "c", "e"]
        assert unsent(ledger, []) == []
        assert "b" in ledger
        assert "a" not in ledger


def test_records_survive_reopening_and_duplicates_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.sqlite"
    with Ledger(path, D) as ledger:
        ledger.record(["x", "y"])
        ledger.record(["y", "z"])  # close() commits what is pending
    with Ledger(path, D) as ledger:
        assert len(ledger) == 3
        assert unsent(ledger, ["w", "x", "y", "z"]) == ["w"]


def test_lookups_larger_than_one_sql_chunk(tmp_path: Path) -> None:
    ids = [f"call-{i:05d}" for i in range(5_000)]
    with Ledger(tmp_path / "l.sqlite", D) as ledger:
        ledger.record(ids[::2], wait=True)
        assert unsent(ledger, ids) == ids[1::2]


def test_records_are_committed_in_batches(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", D) as ledger:
        for i in range(2_000):
            ledger.record([f"id{i}"])
        ledger.flush()
        assert len(ledger) == 2_000
        assert 1 <= ledger.commits < 2_000


def test_waiting_writers_from_many_threads(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", D) as ledger:

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
    with Ledger(path, D) as ledger:
        assert ledger.get_state("cursor") is None
        assert ledger.get_state("cursor", "0") == "0"
        ledger.set_state("cursor", "2025-01-01T00")
        ledger.set_state("cursor", "2025-01-01T01")
    with Ledger(path, D) as ledger:
        assert ledger.get_state("cursor") == "2025-01-01T01"


def test_the_file_holds_ids_and_state_only(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path, D) as ledger:
        ledger.record(["abc"], wait=True)
    conn = sqlite3.connect(path)
    tables = {
        r[0]: r[1] for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'")
    }
    assert set(tables) == {"acked", "rejected", "state"}
    assert conn.execute("SELECT * FROM acked").fetchall() == [(D, "abc")]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_recording_after_close_fails(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", D)
    ledger.close()
    ledger.close()  # idempotent
    with pytest.raises(LedgerError):
        ledger.record(["a"])


def test_a_failing_writer_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, D)
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


def test_acknowledgements_belong_to_their_destination(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path, D) as ledger:
        ledger.record(["a", "b"], wait=True)
    with Ledger(path, "https://in.accoil.com#ffffffffffffffff") as other:
        assert unsent(other, ["a", "b"]) == ["a", "b"] and len(other) == 0
        assert other.counts()[D] == {"acked": 2, "rejected": 0}


def test_final_rejections_are_skipped_unless_asked(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", D) as ledger:
        ledger.record(["bad"], status=422, wait=True)
        ledger.record(["ok"], wait=True)
        assert ledger.unsent(["bad", "ok", "new"]) == (["new"], 1)
        assert ledger.unsent(["bad", "ok", "new"], retry_rejected=True) == (["bad", "new"], 0)


def test_one_run_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path, D), pytest.raises(LedgerBusyError, match="another run is using the ledger"):
        Ledger(path, D)
    with Ledger(path, D):  # released on close
        pass


@pytest.mark.parametrize("content", [b"not a database at all" * 100, b"SQLite format 3\x00trunc"])
def test_a_corrupt_or_truncated_ledger_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "l.sqlite"
    path.write_bytes(content)
    with pytest.raises(LedgerError, match=r"is not a usable ledger.*move it aside"):
        Ledger(path, D)
    with Ledger(path.with_name("new.sqlite"), D):  # the lock was released
        pass
    Ledger(path.with_name("x.sqlite"), D).close()


def test_a_ledger_of_the_earlier_version_is_adopted_by_the_first_destination(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE acked (id TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.executemany("INSERT INTO acked VALUES (?)", [("a",), ("b",)])
    conn.commit()
    conn.close()
    with pytest.warns(UserWarning, match="2 acknowledged ids"), Ledger(path, D) as ledger:
        assert unsent(ledger, ["a", "b", "c"]) == ["c"] and len(ledger) == 2
    with Ledger(path, "https://in.accoil.com#ffffffffffffffff") as other:
        assert unsent(other, ["a"]) == ["a"]


def test_the_count_is_kept_not_queried(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite", D) as ledger:
        ledger.record(["a", "b", "b"], wait=True)
        ledger.record(["a", "c"], wait=True)
        assert len(ledger) == 3


def test_a_failing_on_commit_callback_does_not_stop_the_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def fails() -> None:
        raise RuntimeError("Event loop is closed")

    with Ledger(tmp_path / "l.sqlite", D) as ledger:
        ledger.record(["a"], on_commit=fails, wait=True)
        ledger.record(["b"], wait=True)  # committed all the same
        assert len(ledger) == 2
    assert "on_commit callback failed" in caplog.text
