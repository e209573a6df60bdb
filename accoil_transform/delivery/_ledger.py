"""The ledger: a SQLite file of the ids of every call Accoil acknowledged.

A re-run or a resumed run asks :meth:`Ledger.filter_unsent` and sends only the rest,
so an acknowledged call is never sent twice. Ids are recorded by one
writer thread with *group commit*: whatever was recorded while the previous commit
ran goes into the next transaction, so a busy run makes few, large commits and a
quiet one commits at once. :meth:`record` can wait for the commit, or call back once
it is done; the delivery engine uses the callback to hold a worker slot until then,
so that no more calls than it has workers are ever "sent but not yet in the ledger".

The file holds call ids and a small key/value ``state`` table, never bodies or keys.
It is in WAL mode with ``synchronous=NORMAL``: a commit survives the process being
killed (SIGKILL); only a power loss can lose the last commits.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..errors import LedgerError

#: Ids per ``IN (...)`` lookup; well below SQLite's parameter limit.
_LOOKUP_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS acked (id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class Ledger:
    """Acknowledged call ids in a SQLite file, written from one background thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reader = _connect(self.path)
        self._reader.executescript(_SCHEMA)
        self._read_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: list[str] = []
        self._callbacks: list[Callable[[], object]] = []
        self._recorded = 0  # record() calls so far
        self._committed = 0  # record() calls whose ids are committed
        self._commits = 0
        self._error: BaseException | None = None
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, name="ledger-writer", daemon=True)
        self._writer.start()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # ------------------------------------------------------------------ reads

    def filter_unsent(self, ids: Sequence[str]) -> list[str]:
        """The ids not yet acknowledged, in their input order."""
        if not ids:
            return []
        seen: set[str] = set()
        with self._read_lock:
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[i : i + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._reader.execute(f"SELECT id FROM acked WHERE id IN ({marks})", chunk)
                seen.update(row[0] for row in rows)
        return [i for i in ids if i not in seen]

    def __contains__(self, call_id: object) -> bool:
        with self._read_lock:
            row = self._reader.execute("SELECT 1 FROM acked WHERE id = ?", (call_id,)).fetchone()
        return row is not None

    def __len__(self) -> int:
        with self._read_lock:
            return int(self._reader.execute("SELECT count(*) FROM acked").fetchone()[0])

    @property
    def commits(self) -> int:
        """Transactions committed by the writer so far (for tests and benchmarks)."""
        return self._commits

    # ------------------------------------------------------------------ writes

    def record(
        self,
        ids: Iterable[str],
        *,
        wait: bool = False,
        on_commit: Callable[[], object] | None = None,
    ) -> None:
        """Queue ``ids`` as acknowledged; with ``wait``, return once they are committed.

        ``on_commit`` runs on the writer thread once the ids are committed, or once
        the ledger has failed (then every later call raises :class:`LedgerError`).
        """
        with self._cond:
            self._raise_if_failed()
            if self._closing:
                raise LedgerError("the ledger is closed")
            self._pending.extend(ids)
            if on_commit is not None:
                self._callbacks.append(on_commit)
            self._recorded += 1
            ticket = self._recorded
            self._cond.notify_all()
            if wait:
                self._wait_for(ticket)

    def flush(self) -> None:
        """Return once everything recorded so far is committed."""
        with self._cond:
            self._wait_for(self._recorded)

    def _wait_for(self, ticket: int) -> None:
        while self._committed < ticket and self._error is None:
            self._cond.wait()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LedgerError(f"cannot write the ledger {self.path}: {self._error}")

    def _write_loop(self) -> None:
        try:
            conn = _connect(self.path)
        except sqlite3.Error as exc:
            self._fail(exc)
            return
        callbacks: list[Callable[[], object]] = []
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._closing:
                        self._cond.wait()
                    if not self._pending:
                        return
                    batch, self._pending = self._pending, []
                    callbacks, self._callbacks = self._callbacks, []
                    ticket = self._recorded
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT OR IGNORE INTO acked (id) VALUES (?)", ((i,) for i in batch)
                )
                conn.execute("COMMIT")
                with self._cond:
                    self._committed = ticket
                    self._commits += 1
                    self._cond.notify_all()
                for callback in callbacks:
                    callback()
        except sqlite3.Error as exc:
            self._fail(exc)
            for callback in callbacks:
                callback()
        finally:
            conn.close()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self._error = exc
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        for callback in callbacks:
            callback()

    # ------------------------------------------------------------------ state

    def get_state(self, key: str, default: str | None = None) -> str | None:
        """A value of the key/value ``state`` table (e.g. the ``sync`` job's cursor)."""
        with self._read_lock:
            row = self._reader.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        """Set a ``state`` value; committed before this returns."""
        with self._read_lock:
            self._reader.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Commit what is pending, stop the writer and close the file."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._writer.join()
        with self._read_lock:
            self._reader.close()
        with self._cond:
            self._raise_if_failed()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
