"""Jobs: the whole run (read, transform, write or deliver) and the scheduled sync.

:func:`transform` returns the result frames; :func:`run` writes a dry run or delivers;
:func:`sync` exports the hours since the last run from Amplitude and sends them;
:func:`sync_table` sends the rows of a database table past the last run's watermark.
"""

from ._output import dry_run_lines, write_dry_run, write_quarantine, write_report
from ._run import RunResult, run, transform
from ._spill import TrackSpill
from ._sync import (
    STATE_KEY,
    SyncResult,
    TableSyncResult,
    latest_exportable_hour,
    next_window,
    sync,
    sync_table,
)

__all__ = [
    "STATE_KEY",
    "RunResult",
    "SyncResult",
    "TableSyncResult",
    "TrackSpill",
    "dry_run_lines",
    "latest_exportable_hour",
    "next_window",
    "run",
    "sync",
    "sync_table",
    "transform",
    "write_dry_run",
    "write_quarantine",
    "write_report",
]
