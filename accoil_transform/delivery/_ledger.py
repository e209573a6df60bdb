"""The ledger: a SQLite file of the calls each destination acknowledged or finally rejected.

A re-run or a resumed run asks :meth:`Ledger.unsent` and sends only the rest, so an
acknowledged call is never sent twice, and a call Accoil rejected for good is not sent
again unless asked to. Everything is kept per destination (base URL and a hash of the
key: :class:`~accoil_transform.delivery.Destination`), so a run to another workspace
sends everything.

Ids are recorded by one writer thread with *group commit*: whatever was recorded while
the previous commit ran goes into the next transaction, so a busy run makes few, large
commits and a quiet one commits at once. :meth:`record` calls back once its ids are
committed; the delivery engine uses that to hold a slot until then, so that no more calls
than it has slots are ever "sent but not yet in the ledger".

A run holds the ledger alone: an exclusive lock on ``<ledger>.lock`` for the ledger's
life, so two overlapping runs (a cron that starts before the last one ended) cannot both
send. The file holds call ids, statuses and a small key/value ``state`` table, never
bodies or keys. It is in WAL mode with ``synchronous=NORMAL``: a commit survives the
process being killed; only a power loss can lose the last commits.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from ..errors import LedgerBusyError, LedgerError

_log = logging.getLogger(__name__)

#: Ids per ``IN (...)`` lookup; well below SQLite's parameter limit.
_LOOKUP_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS acked (
    destination TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (destination, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (
    destination TEXT NOT NULL, id TEXT NOT NULL, status INTEGER,
    PRIMARY KEY (destination, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

#: What to do about a ledger that can't be used (said in every such error).
_ADVICE = (
    "move it aside (or pass --ledger with a new path) to start a fresh one; calls it "
    "recorded as acknowledged would then be sent again"
)


class AckSink(Protocol):
    """What :func:`~accoil_transform.delivery.send` needs of a ledger: :class:`Ledger`, or
    any other store of acknowledgements (the Spark path's acknowledgements table)."""

    def unsent(
        self, ids: Sequence[str], *, retry_rejected: bool = False
    ) -> tuple[list[str], int]: ...

    def record(
        self,
        ids: Iterable[str],
        *,
        status: int | None = None,
        wait: bool = False,
        on_commit: Callable[[], object] | None = None,
    ) -> None: ...

    def flush(self) -> None: ...


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class Ledger:
    """Acknowledged and rejected call ids of one destination, in a SQLite file.

    ``destination`` is a :attr:`Destination.id`; a ledger opened without one can read and
    write the ``state`` table only. Use as a context manager; :meth:`close` commits what
    is pending and releases the lock.

    Raises:
        LedgerBusyError: another run holds the ledger.
        LedgerError: the file is not a ledger (corrupt, truncated) or can't be written.
    """

    def __init__(self, path: str | Path, destination: str | None = None) -> None:
        self.path = Path(path)
        self.destination = destination
        self._lock_file = self._lock()
        try:
            self._reader = self._open()
        except BaseException:
            self._unlock()
            raise
        self._read_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: list[tuple[str, int | None]] = []  # (id, status): None = acked
        self._callbacks: list[Callable[[], object]] = []
        self._recorded = 0  # record() calls so far
        self._committed = 0  # record() calls whose ids are committed
        self._commits = 0
        self._count = self._count_acked()
        self._error: BaseException | None = None
        self._closing = False
        self._writer = threading.Thread(target=self._write_loop, name="ledger-writer", daemon=True)
        self._writer.start()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    # ------------------------------------------------------------------ opening

    def _lock(self) -> int:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LedgerError(
                f"cannot use the ledger {self.path}: {exc.strerror or exc} "
                "(the folder must be writable)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LedgerBusyError(
                f"another run is using the ledger {self.path} (it holds {lock_path}); "
                "wait for it to finish, or give this run its own --ledger"
            ) from None
        return fd

    def _unlock(self) -> None:
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        os.close(self._lock_file)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = _connect(self.path)
            legacy = _legacy_ids(conn)
            conn.executescript(_SCHEMA)
            if legacy and self.destination is not None:
                self._adopt(conn)
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path} is not a usable ledger ({exc}); {_ADVICE}") from None
        return conn

    def _adopt(self, conn: sqlite3.Connection) -> None:
        """Give a ledger of the previous version (ids with no destination) to this one."""
        conn.execute("BEGIN")
        conn.execute(
            "INSERT OR IGNORE INTO acked (destination, id) SELECT ?, id FROM acked_v1",
            (self.destination,),
        )
        adopted = conn.execute("SELECT count(*) FROM acked_v1").fetchone()[0]
        conn.execute("DROP TABLE acked_v1")
        conn.execute("COMMIT")
        warnings.warn(
            f"{self.path} is a ledger of an earlier version, whose {adopted:,} acknowledged "
            f"ids name no destination: they are now this run's ({self.destination})",
            stacklevel=3,
        )

    def _count_acked(self) -> int:
        if self.destination is None:
            return 0
        row = self._reader.execute(
            "SELECT count(*) FROM acked WHERE destination = ?", (self.destination,)
        ).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ reads

    def unsent(self, ids: Sequence[str], *, retry_rejected: bool = False) -> tuple[list[str], int]:
        """The ids neither acknowledged nor (unless ``retry_rejected``) finally rejected,
        in their input order, and how many of the others were rejected ones."""
        if not ids:
            return [], 0
        acked = self._known("acked", ids)
        rejected = self._known("rejected", ids) - acked
        skip = acked if retry_rejected else acked | rejected
        return [i for i in ids if i not in skip], 0 if retry_rejected else len(rejected)

    def _known(self, table: str, ids: Sequence[str]) -> set[str]:
        seen: set[str] = set()
        with self._read_lock:
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[i : i + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._reader.execute(
                    f"SELECT id FROM {table} WHERE destination = ? AND id IN ({marks})",
                    (self.destination, *chunk),
                )
                seen.update(row[0] for row in rows)
        return seen

    def __contains__(self, call_id: object) -> bool:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT 1 FROM acked WHERE destination = ? AND id = ?",
                (self.destination, call_id),
            ).fetchone()
        return row is not None

    def __len__(self) -> int:
        """Calls acknowledged to this destination (counted once, then kept up to date)."""
        return self._count

    def counts(self) -> dict[str, dict[str, int]]:
        """Acknowledged and rejected calls per destination, for people (``sync status``)."""
        out: dict[str, dict[str, int]] = {}
        with self._read_lock:
            for table in ("acked", "rejected"):
                rows = self._reader.execute(
                    f"SELECT destination, count(*) FROM {table} GROUP BY destination"
                )
                for destination, n in rows:
                    out.setdefault(destination, {"acked": 0, "rejected": 0})[table] = n
        return out

    @property
    def commits(self) -> int:
        """Transactions committed by the writer so far (for tests and benchmarks)."""
        return self._commits

    # ------------------------------------------------------------------ writes

    def record(
        self,
        ids: Iterable[str],
        *,
        status: int | None = None,
        wait: bool = False,
        on_commit: Callable[[], object] | None = None,
    ) -> None:
        """Queue ``ids`` as acknowledged (or, with ``status``, as finally rejected with it).

        With ``wait``, return once they are committed. ``on_commit`` runs on the writer
        thread once they are committed, or once the ledger has failed (then every later
        call raises :class:`LedgerError`).
        """
        if self.destination is None:
            raise LedgerError("this ledger was opened without a destination")
        with self._cond:
            self._raise_if_failed()
            if self._closing:
                raise LedgerError("the ledger is closed")
            self._pending.extend((i, status) for i in ids)
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
            raise LedgerError(f"cannot write the ledger {self.path}: {self._error}; {_ADVICE}")

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
                acked = [(self.destination, i) for i, status in batch if status is None]
                rejected = [(self.destination, i, s) for i, s in batch if s is not None]
                conn.execute("BEGIN")
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO acked VALUES (?, ?)", acked)
                added = conn.total_changes - before
                conn.executemany("INSERT OR REPLACE INTO rejected VALUES (?, ?, ?)", rejected)
                conn.execute("COMMIT")
                with self._cond:
                    self._count += added
                    self._committed = ticket
                    self._commits += 1
                    self._cond.notify_all()
                _notify(callbacks)
        except sqlite3.Error as exc:
            self._fail(exc)
            _notify(callbacks)
        finally:
            conn.close()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self._error = exc
            callbacks, self._callbacks = self._callbacks, []
            self._cond.notify_all()
        _notify(callbacks)

    # ------------------------------------------------------------------ state

    def get_state(self, key: str, default: str | None = None) -> str | None:
        """A value of the key/value ``state`` table (e.g. the ``sync`` job's cursor)."""
        with self._read_lock:
            row = self._reader.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        """Set a ``state`` value; committed before this returns."""
        with self._read_lock:
            try:
                self._reader.execute(
                    "INSERT INTO state (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            except sqlite3.Error as exc:
                raise LedgerError(
                    f"cannot write the ledger {self.path}: {exc}; {_ADVICE}"
                ) from None

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Commit what is pending, stop the writer, close the file and release the lock."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._writer.join()
        with self._read_lock:
            self._reader.close()
        self._unlock()
        with self._cond:
            self._raise_if_failed()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _notify(callbacks: Iterable[Callable[[], object]]) -> None:
    """Run the ``on_commit`` callbacks; one that raises is logged and stops nothing else
    (the writer must go on committing what is recorded)."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            _log.exception("a ledger on_commit callback failed")


def _legacy_ids(conn: sqlite3.Connection) -> bool:
    """Set aside the ``acked(id)`` table of the previous version, if there is one."""
    columns = [row[1] for row in conn.execute("PRAGMA table_info(acked)")]
    if columns != ["id"]:
        return bool(
            conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'acked_v1'"
            ).fetchone()
        )
    conn.execute("ALTER TABLE acked RENAME TO acked_v1")
    return True
