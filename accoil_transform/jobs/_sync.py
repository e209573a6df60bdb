"""The scheduled job: export the hours since the last successful run and send them.

State lives in the ledger's SQLite file, beside the ids of acknowledged calls:
``sync.last_hour`` is the last hour (``YYYYMMDDTHH``, by ``server_upload_time``) whose
calls were all accepted or dead-lettered. A run only moves it forward when it ends that
way, so a failed run is simply repeated: the ledger skips what was already
acknowledged, and no hour is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import RunOptions, TransformConfig
from ..errors import ConfigError
from ._run import RunResult, run

if TYPE_CHECKING:  # the Export API client pulls in requests; a dry run never needs it
    from ..amplitude import AmplitudeExportClient, ExportWindow

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
    result = SyncResult(
        window=window, files=files, run=run(files, config, options) if files else None
    )
    if result.complete and not options.is_dry_run:
        with Ledger(ledger_path) as ledger:
            ledger.set_state(STATE_KEY, window.end_str)
        return replace(result, last_hour=window.end_str, advanced=True)
    return replace(result, last_hour=last)
