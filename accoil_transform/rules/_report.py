"""The run report: where every input row went, and what was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Drop reasons in precedence order: the first that applies counts.
DROP_REASONS: tuple[str, ...] = (
    "malformed",
    "duplicate",
    "no_user_id",
    "identify_call",
    "event_type",
)


@dataclass
class TransformReport:
    """Counts of rows read, kept and dropped by reason, and calls made per endpoint.

    Every row read is either kept (one track call) or counted under one drop reason,
    so ``rows_read == kept + sum(dropped.values())``.
    """

    rows_read: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.kept + sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "kept": self.kept,
            "dropped": {r: self.dropped.get(r, 0) for r in DROP_REASONS},
            "calls": dict(self.calls),
        }
