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
