"""What a delivery did: counts per endpoint (call kind) and in total."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """Counts for one endpoint (call kind). ``sent + skipped + failed`` = calls seen."""

    sent: int = 0
    """Acknowledged by Accoil in this run."""
    skipped: int = 0
    """Already in the ledger: acknowledged by an earlier run."""
    skipped_rejected: int = 0
    """Already in the ledger as finally rejected by an earlier run (not sent again
    unless asked: ``retry_rejected``)."""
    failed: int = 0
    """Finally not acknowledged: rejected (4xx, too large) or out of retries."""
    rejected: int = 0
    """Of ``failed``: final answers (a 4xx, or a body over ``max_body_bytes``), which
    re-runs skip."""
    too_large: int = 0
    """Of ``rejected``: bodies over ``max_body_bytes``, never sent."""
    retried: int = 0
    """Extra tries (requests beyond the first of each call)."""
    dead_lettered: int = 0
    """Failed calls written to the dead-letter file."""
    throttled: int = 0
    """429 responses received."""
    duration_s: float = 0.0

    @property
    def calls_per_s(self) -> float:
        return self.sent / self.duration_s if self.duration_s > 0 else 0.0

    def __add__(self, other: EndpointStats) -> EndpointStats:
        return EndpointStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "duration_s": round(self.duration_s, 3),
            "calls_per_s": round(self.calls_per_s, 1),
        }


#: The counters of :class:`EndpointStats` (all but the duration).
COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(EndpointStats) if f.name != "duration_s")


@dataclass(frozen=True)
class DeliveryReport:
    """What :func:`accoil_transform.send` did, per endpoint and in total."""

    endpoints: Mapping[str, EndpointStats] = field(default_factory=dict)
    duration_s: float = 0.0
    stopped: str | None = None
    """Why the delivery stopped early, if it did."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", dict(self.endpoints))

    @property
    def total(self) -> EndpointStats:
        total = sum(self.endpoints.values(), EndpointStats())
        return EndpointStats(
            **{name: getattr(total, name) for name in COUNTERS}, duration_s=self.duration_s
        )

    @property
    def calls_per_s(self) -> float:
        return self.total.calls_per_s

    @classmethod
    def combine(cls, reports: Iterable[DeliveryReport], duration_s: float) -> DeliveryReport:
        """The sum of several reports (e.g. one per Spark task), over ``duration_s``."""
        endpoints: dict[str, EndpointStats] = {}
        stopped = None
        for report in reports:
            for kind, stats in report.endpoints.items():
                endpoints[kind] = endpoints.get(kind, EndpointStats()) + stats
            stopped = stopped or report.stopped
        return cls(endpoints, duration_s, stopped)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryReport:
        """The report :meth:`to_dict` gave (derived fields are ignored)."""
        names = {f.name for f in fields(EndpointStats)}
        endpoints = {
            kind: EndpointStats(**{k: v for k, v in stats.items() if k in names})
            for kind, stats in data["calls"].items()
        }
        return cls(endpoints, data["duration_s"], data["stopped"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": {kind: s.to_dict() for kind, s in self.endpoints.items()},
            "total": self.total.to_dict(),
            "duration_s": round(self.duration_s, 3),
            "calls_per_s": round(self.calls_per_s, 1),
            "stopped": self.stopped,
        }


class Tally:
    """The counts of a delivery in progress; the caller serialises access."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._durations: dict[str, float] = {}  # also the kinds, in the order they came

    def count(self, kind: str, counter: str, n: int = 1) -> None:
        self._durations.setdefault(kind, 0.0)
        self._counts[kind, counter] += n

    def add_time(self, kind: str, seconds: float) -> None:
        self._durations[kind] = self._durations.get(kind, 0.0) + seconds

    def report(self, duration_s: float, stopped: str | None) -> DeliveryReport:
        endpoints = {
            kind: EndpointStats(
                **{name: self._counts[kind, name] for name in COUNTERS}, duration_s=seconds
            )
            for kind, seconds in self._durations.items()
        }
        return DeliveryReport(endpoints, duration_s, stopped)
