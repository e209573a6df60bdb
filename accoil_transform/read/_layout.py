"""How Amplitude lays out its exports: member and file names, and marker files.

An Export API zip holds ``<proj>/<proj>_<yyyy-mm-dd>_<H>#<n>.json.gz`` members; the
S3/GCS export writes the same names as files, beside ``complete`` marker files. The hour
``H`` is not zero-padded and ``n`` is not dense. The readers, the synthetic generator and
the Export API stand-in all name and order members by this one pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

#: ``<proj>_<yyyy-mm-dd>_<H>#<n>.json.gz`` (``.json`` too), after any folder.
EXPORT_MEMBER = re.compile(r"(?:^|/)(\d+)_(\d{4}-\d{2}-\d{2})_(\d{1,2})#(\d+)\.json(?:\.gz)?$")

#: Files of the S3/GCS layout that mark an hour as exported and hold no events.
MARKER_NAMES = frozenset({"complete", "_success", ".complete"})


def member_name(project_id: int, day: str, hour: int, part: int) -> str:
    """The Export API's name of one member (without its ``<proj>/`` folder)."""
    return f"{project_id}_{day}_{hour}#{part}.json.gz"


def member_order(name: str) -> tuple[int, str, int, int, str]:
    """Sort key of a member or file: Export API names by (date, hour, part), others after."""
    m = EXPORT_MEMBER.search(name)
    if m:
        return (0, m.group(2), int(m.group(3)), int(m.group(4)), name)
    return (1, "", 0, 0, name)


def file_order(path: Path) -> tuple[str, tuple[int, str, int, int, str]]:
    """Folder order: by directory, then as Export API members, then by name."""
    return (str(path.parent), member_order(path.name))


def is_marker(name: str) -> bool:
    """Hidden files and the layout's marker files (``complete``, ``_SUCCESS``)."""
    base = name.rsplit("/", 1)[-1].lower()
    return base.startswith(".") or base in MARKER_NAMES
