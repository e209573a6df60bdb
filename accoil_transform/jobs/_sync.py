"""The scheduled job: export the hours since the last successful run and send them.

State lives in the ledger's SQLite file, beside the ids of acknowledged calls:
``sync.last_hour`` is the last hour (``YYYYMMDDTHH``, by ``server_upload_time``) whose
calls were all accepted or dead-lettered. A run only moves it forward when it ends that
way, so a failed run is simply repeated: the ledger skips what was already
acknowledged, and no hour is skipped. :func:`sync_status` reads the state and the
ledger's counts without locking the file; :func:`rewind` moves the state back on purpose.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RunOptions, TransformConfig
from ..errors import ConfigError, InputError, LedgerError
from ._run import RunResult, run

if TYPE_CHECKING:  # the Export API client pulls in requests; a dry run never needs it
    from ..amplitude import AmplitudeExportClient, ExportWindow
    from ..read import DatabaseSource

STATE_KEY = "sync.last_hour"
#: Amplitude makes an hour exportable about two hours after it ends.
EXPORT_LAG = timedelta(hours=3)


@dataclass(frozen=True)
class SyncResult:
    """What a sync did: the window, the files exported, the run and the new state."""

    window: ExportWindow | None
    files: tuple[Path, ...] = ()
    run: RunResult | None = None
    last_hour: str | None = None
    advanced: bool = False
    empty: bool = False
    """Every hour of the window answered 404: no data yet, or a wrong host or region."""

    @property
    def complete(self) -> bool:
        """Every call was accepted, or rejected by Accoil and dead-lettered by policy.

        Calls that ran out of retries (timeouts, 5xx) leave the window incomplete, so
        the next run repeats it.
        """
        if self.run is None or self.run.delivery is None:
            return True
        stats = self.run.delivery.endpoints.values()
        return all(s.failed == s.rejected for s in stats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": None if self.window is None else str(self.window),
            "files": [str(f) for f in self.files],
            "run": None if self.run is None else self.run.to_dict(),
            "last_hour": self.last_hour,
            "advanced": self.advanced,
            "empty": self.empty,
        }


def latest_exportable_hour(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return (now - EXPORT_LAG).replace(minute=0, second=0, microsecond=0)


def next_window(
    last_hour: str | None,
    *,
    start: str | None = None,
    until: str | None = None,
    now: datetime | None = None,
) -> ExportWindow | None:
    """The hours to sync: after ``last_hour`` (or from ``start``) up to ``until``.

    ``None`` when there is nothing new yet.
    """
    from ..amplitude import ExportWindow, format_hour, parse_hour

    if last_hour is not None:
        first = parse_hour(last_hour) + timedelta(hours=1)
    elif start is not None:
        first = parse_hour(start)
    else:
        raise ConfigError(
            "no previous sync is recorded in the ledger; give --start YYYYMMDDTHH for the first run"
        )
    last = parse_hour(until) if until else latest_exportable_hour(now)
    if first > last:
        return None
    return ExportWindow.parse(format_hour(first), format_hour(last))


def sync(
    *,
    config: TransformConfig,
    options: RunOptions,
    export_client: AmplitudeExportClient,
    export_dir: Path,
    ledger_path: Path,
    start: str | None = None,
    until: str | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Export the next window, deliver it, and advance the state if nothing failed."""
    from ..delivery import Ledger

    with Ledger(ledger_path) as ledger:
        last = ledger.get_state(STATE_KEY)
    window = next_window(last, start=start, until=until, now=now)
    if window is None:
        return SyncResult(window=None, last_hour=last)

    exported = export_client.export_range(
        window, out_dir=export_dir / window.filename.removesuffix(".zip")
    )
    files = tuple(exported.paths)
    if not files:  # never move past hours that gave no data: they may be a wrong host's 404s
        return SyncResult(window=window, last_hour=last, empty=True)
    result = SyncResult(window=window, files=files, run=run(files, config, options))
    if result.complete and not options.is_dry_run:
        # Up to the last hour that returned data; empty hours after it are asked again.
        last_with_data = max(_last_hour_with_data(f.path, f.window) for f in exported.files)
        with Ledger(ledger_path) as ledger:
            ledger.set_state(STATE_KEY, last_with_data)
        return replace(result, last_hour=last_with_data, advanced=True)
    return replace(result, last_hour=last)


def _last_hour_with_data(path: Path, window: ExportWindow) -> str:
    """The last upload hour an exported zip holds events of, by its member names
    (``<proj>_<yyyy-mm-dd>_<H>#<n>.json.gz``); the window's end when they don't say."""
    import zipfile

    from ..read import EXPORT_MEMBER

    hours = []
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            m = EXPORT_MEMBER.search(name)
            if m:
                hours.append(f"{m.group(2).replace('-', '')}T{int(m.group(3)):02d}")
    return max(hours, default=window.end_str)


# --------------------------------------------------------------------------- inspect


@dataclass(frozen=True)
class DestinationCounts:
    """Calls the ledger holds for one destination: its base URL and key hash, never the key."""

    base_url: str
    key_hash: str
    sent: int
    """Acknowledged by Accoil (a 2xx): a re-run skips them."""
    rejected: int
    """Rejected for good (and dead-lettered): a re-run skips them unless ``retry_rejected``."""


@dataclass(frozen=True)
class SyncStatus:
    """The sync state and the ledger's counts, as ``accoil-transform sync status`` shows them.

    The ledger holds a call once Accoil has answered it, so calls in flight are in no
    count: a run stopped while they were in flight sends them again.
    """

    ledger: Path
    last_hour: str | None
    next_window: ExportWindow | None
    """What the next sync would export now (``None``: nothing new, or no state yet)."""
    destinations: tuple[DestinationCounts, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ledger": str(self.ledger),
            "last_hour": self.last_hour,
            "next_window": None if self.next_window is None else str(self.next_window),
            "destinations": [
                {
                    "base_url": d.base_url,
                    "key_hash": d.key_hash,
                    "sent": d.sent,
                    "rejected": d.rejected,
                }
                for d in self.destinations
            ],
        }


def sync_status(ledger_path: str | Path, *, now: datetime | None = None) -> SyncStatus:
    """Read the sync state and the ledger's counts, read-only and without its lock, so that
    it works while a run holds the ledger and never stops one from starting.

    Raises:
        InputError: there is no ledger at ``ledger_path``.
        LedgerError: the file is not a ledger.
    """
    path = Path(ledger_path)
    if not path.is_file():
        raise InputError(str(path), "no ledger here: no sync or run has recorded anything yet")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot read the ledger {path}: {exc}") from None
    try:
        row = conn.execute("SELECT value FROM state WHERE key = ?", (STATE_KEY,)).fetchone()
        counts: dict[str, list[int]] = {}
        for table, column in (("acked", 0), ("rejected", 1)):
            # A ledger of an earlier version has ``acked(id)``, ids with no destination.
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            by = "destination" if "destination" in columns else "''"
            for destination, n in conn.execute(
                f"SELECT {by}, count(*) FROM {table} GROUP BY 1"
            ).fetchall():
                counts.setdefault(str(destination), [0, 0])[column] = int(n)
    except sqlite3.Error as exc:
        raise LedgerError(f"{path} is not a usable ledger ({exc})") from None
    finally:
        conn.close()
    last = None if row is None else str(row[0])
    destinations = []
    for destination, (sent, rejected) in sorted(counts.items()):
        base_url, _, key_hash = destination.rpartition("#")
        destinations.append(DestinationCounts(base_url or destination, key_hash, sent, rejected))
    window = None if last is None else next_window(last, now=now)
    return SyncStatus(path, last, window, tuple(destinations))


def rewind(ledger_path: str | Path, first_hour: str) -> tuple[str, str]:
    """Move the state back so that the next sync starts at ``first_hour`` (``YYYYMMDDTHH``).

    The last synced hour becomes the hour before ``first_hour``. Calls the ledger holds
    as acknowledged are still skipped when those hours are synced again. Returns the
    last synced hour before and after; both are the same when the next sync already
    starts at ``first_hour``.

    Raises:
        ConfigError: ``first_hour`` is not ``YYYYMMDDTHH``, no sync state is recorded, or
            it would move the state forward (only a sync does that).
        InputError: there is no ledger at ``ledger_path``.
        LedgerBusyError: a run holds the ledger.
    """
    from ..amplitude import format_hour, parse_hour
    from ..delivery import Ledger

    first = parse_hour(first_hour)
    path = Path(ledger_path)
    if not path.is_file():
        raise InputError(str(path), "no ledger here: there is no sync state to rewind")
    with Ledger(path) as ledger:
        last = ledger.get_state(STATE_KEY)
        if last is None:
            raise ConfigError(
                f"no sync state is recorded in {path}: there is nothing to rewind "
                "(the first sync takes --start YYYYMMDDTHH)"
            )
        next_first = parse_hour(last) + timedelta(hours=1)
        if first > next_first:
            raise ConfigError(
                f"cannot rewind to {format_hour(first)}: it is after {format_hour(next_first)}, "
                f"where the next sync starts (last synced hour {last}); rewinding only moves "
                "the state back, and only a sync moves it forward"
            )
        new_last = format_hour(first - timedelta(hours=1))
        if new_last != last:
            ledger.set_state(STATE_KEY, new_last)
    return last, new_last


# --------------------------------------------------------------------------- from a table


#: The ledger's state key of a table sync: one per source and watermark column.
TABLE_STATE_KEY = "sync.watermark"


@dataclass(frozen=True)
class TableSyncResult:
    """What a sync from a database table did: the rows past the recorded watermark, the
    run, and the watermark before and after (their values as text)."""

    source: str
    """The source, password masked."""
    column: str
    before: str | None
    after: str | None
    rows: int = 0
    run: RunResult | None = None
    advanced: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def nothing_new(self) -> bool:
        """No row was past the watermark: nothing was sent."""
        return self.run is None

    @property
    def complete(self) -> bool:
        """Every call was accepted, or rejected by Accoil and dead-lettered by policy."""
        return SyncResult(window=None, run=self.run).complete

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "watermark_column": self.column,
            "watermark_before": self.before,
            "watermark_after": self.after,
            "rows": self.rows,
            "run": None if self.run is None else self.run.to_dict(),
            "advanced": self.advanced,
            "warnings": list(self.warnings),
        }


def table_state_key(source: DatabaseSource, column: str) -> str:
    """The ledger's state key of ``source`` (without its password) and ``column``."""
    return f"{TABLE_STATE_KEY} {source.identity()} column {column}"


def sync_table(
    source: DatabaseSource,
    *,
    config: TransformConfig,
    options: RunOptions,
    ledger_path: str | Path,
    watermark: str | None = None,
    start: str | None = None,
) -> TableSyncResult:
    """Send the rows of ``source`` whose ``watermark`` column is past the last successful
    run's, and record the largest value read as the new watermark if nothing failed.

    With no recorded watermark the first run takes every row, or those at or past
    ``start``. The watermark is a bound parameter; the new one is the largest value
    among the rows read (not the time now), so rows loaded late, whatever their event
    time, come with the next run. A failed or interrupted run leaves it where it was: the
    next run reads those rows again, and the ledger skips the calls it acknowledged.

    Raises:
        ConfigError: a bad column name or ``start``, or a missing driver.
        InputError: the database can't be read.
        DeliveryError: as :func:`run`.
    """
    from ..delivery import Ledger
    from ..read._database import DEFAULT_WATERMARK, Watermark

    column = (watermark or DEFAULT_WATERMARK).strip()
    key = table_state_key(source, column)
    with Ledger(ledger_path) as ledger:
        recorded = ledger.get_state(key)
    last = None if recorded is None else Watermark.loads(recorded)
    before = None if last is None else last.text
    reading = source.incremental(column, last, start=None if last is not None else start)
    try:
        outcome = run(reading, config, options)
    except InputError:
        if reading.progress.finished and reading.progress.rows == 0:  # no row past it
            return TableSyncResult(source.name, column, before, before)
        raise
    result = TableSyncResult(
        source.name, column, before, before, rows=reading.progress.rows, run=outcome
    )
    new = reading.progress.watermark
    if new is None:
        warning = (
            f"no row read has a value in the watermark column {column}: the watermark "
            "did not move, so the next run reads these rows again (the ledger skips "
            "what was sent)"
        )
        return replace(result, warnings=(warning,))
    if reading.progress.finished and result.complete and not options.is_dry_run:
        with Ledger(ledger_path) as ledger:
            ledger.set_state(key, new.dumps())
        return replace(result, after=new.text, advanced=True)
    return result
