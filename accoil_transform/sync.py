"""The scheduled job: export the hours since the last successful run and send them.

State lives in the ledger's SQLite file, beside the ids of acknowledged calls:
``sync.last_hour`` is the last hour (``YYYYMMDDTHH``, by ``server_upload_time``) whose
calls were all accepted or dead-lettered. A run only moves it forward when it ends that
way, so a failed run is simply repeated: the ledger skips what was already
acknowledged, and no hour is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .amplitude_export import AmplitudeExportClient, ExportWindow, format_hour, parse_hour
from .config import TransformConfig
from .errors import ConfigError
from .pipeline import RunOptions, run

STATE_KEY = "sync.last_hour"
#: Amplitude makes an hour exportable about two hours after it ends.
EXPORT_LAG = timedelta(hours=3)


@dataclass
class SyncResult:
    """What a sync did: the window, the files exported, the run report and the new state."""

    window: ExportWindow | None
    files: list[Path] = field(default_factory=list)
    report: dict[str, Any] | None = None
    last_hour: str | None = None
    advanced: bool = False

    @property
    def complete(self) -> bool:
        """Every call was accepted, or rejected by Accoil and dead-lettered by policy.

        Calls that ran out of retries (timeouts, 5xx) leave the window incomplete, so
        the next run repeats it.
        """
        if self.report is None:
            return True
        calls = self.report.get("delivery", {}).get("calls", {})
        return all(c.get("failed", 0) == c.get("rejected", 0) for c in calls.values())


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
    from .delivery import Ledger

    with Ledger(ledger_path) as ledger:
        last = ledger.get_state(STATE_KEY)
    window = next_window(last, start=start, until=until, now=now)
    if window is None:
        return SyncResult(window=None, last_hour=last)

    exported = export_client.export_range(
        window, out_dir=export_dir / window.filename.removesuffix(".zip")
    )
    result = SyncResult(window=window, files=list(exported.paths), last_hour=last)
    if result.files:
        result.report = run(result.files, config, options).report
    if result.complete and not options.is_dry_run:
        with Ledger(ledger_path) as ledger:
            ledger.set_state(STATE_KEY, window.end_str)
        result.last_hour = window.end_str
        result.advanced = True
    return result
