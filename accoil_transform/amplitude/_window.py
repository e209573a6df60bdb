"""Export windows: inclusive ranges of UTC hours, ``YYYYMMDDTHH`` to ``YYYYMMDDTHH``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import ConfigError

HOUR_FORMAT = "%Y%m%dT%H"
#: The API takes at most 365 days per request; both end hours count.
MAX_RANGE_HOURS = 365 * 24

_HOUR_RE = re.compile(r"^\d{8}T\d{2}$")
_ONE_HOUR = timedelta(hours=1)


def parse_hour(value: str | datetime) -> datetime:
    """Parse ``YYYYMMDDTHH`` (or take a datetime on the hour) into an aware UTC datetime.

    A naive datetime is taken as UTC.
    """
    if isinstance(value, datetime):
        dt = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dt.minute or dt.second or dt.microsecond:
            raise ConfigError(f"export hour must be on the hour, got {value.isoformat()}")
        return dt
    text = str(value).strip()
    if not _HOUR_RE.match(text):
        raise ConfigError(
            f"export hour must look like YYYYMMDDTHH (e.g. 20240131T05), got {value!r}"
        )
    try:
        return datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"invalid export hour {value!r}: not a real date and hour") from None


def format_hour(dt: datetime) -> str:
    """Format a datetime as ``YYYYMMDDTHH`` (UTC)."""
    return parse_hour(dt).strftime(HOUR_FORMAT)


@dataclass(frozen=True, slots=True)
class ExportWindow:
    """An inclusive range of UTC hours, ``start`` to ``end``, by ``server_upload_time``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start, end = parse_hour(self.start), parse_hour(self.end)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        if start > end:
            raise ConfigError(f"export start {self.start_str} is after end {self.end_str}")
        if self.hours > MAX_RANGE_HOURS:
            raise ConfigError(
                f"export range {self.start_str}..{self.end_str} is {self.hours} hours; "
                f"the Export API takes at most 365 days ({MAX_RANGE_HOURS} hours) per request"
            )

    @classmethod
    def parse(cls, start: str | datetime, end: str | datetime) -> ExportWindow:
        """Build a window from two ``YYYYMMDDTHH`` strings or datetimes."""
        return cls(parse_hour(start), parse_hour(end))

    @property
    def start_str(self) -> str:
        return self.start.strftime(HOUR_FORMAT)

    @property
    def end_str(self) -> str:
        return self.end.strftime(HOUR_FORMAT)

    @property
    def hours(self) -> int:
        """Number of hours covered, both ends included."""
        return int((self.end - self.start) / _ONE_HOUR) + 1

    @property
    def params(self) -> dict[str, str]:
        """The query parameters of the Export API request."""
        return {"start": self.start_str, "end": self.end_str}

    @property
    def filename(self) -> str:
        """The output file name, ``<start>-<end>.zip``."""
        return f"{self.start_str}-{self.end_str}.zip"

    def split(self) -> tuple[ExportWindow, ExportWindow]:
        """Split into two halves by hour (the first half takes the odd hour)."""
        if self.hours < 2:
            raise ConfigError(f"cannot split the one-hour window {self}")
        first_hours = (self.hours + 1) // 2
        mid = self.start + first_hours * _ONE_HOUR
        return ExportWindow(self.start, mid - _ONE_HOUR), ExportWindow(mid, self.end)

    def __str__(self) -> str:
        return f"{self.start_str}..{self.end_str}"
