"""The run report: where every input row went, and what was made of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Drop reasons in precedence order (see :data:`PLACES` for the whole order).
DROP_REASONS: tuple[str, ...] = ("malformed", "duplicate", "no_user_id", "event_type")
#: Each drop reason in plain words, as the command line's summary and the notebook say it.
DROP_REASON_WORDS: dict[str, str] = {
    "malformed": "malformed line",
    "duplicate": "duplicate",
    "no_user_id": "no user id",
    "event_type": "filtered out by event type",
}

#: Where a row can end, the first that applies: a drop reason, or ``trait_rows`` for the
#: ``$groupidentify`` and ``$identify`` rows that carry account and user data. A row to
#: which none applies is kept (one track call).
PLACES: tuple[str, ...] = (
    "malformed",
    "duplicate",
    "trait_rows",  # $groupidentify: needs no user id
    "no_user_id",
    "trait_rows",  # $identify: needs a user id
    "event_type",
)

#: Odd values the rules met and set aside, by heading.
ODD_VALUES: tuple[str, ...] = ("groups_not_object", "group_id_not_scalar")


@dataclass
class TransformReport:
    """Where every row went and what was made of it.

    Every row read is kept (one track call), a trait row, or counted under one drop
    reason, so ``rows_read == kept + trait_rows + sum(dropped.values())``. ``calls``
    counts the calls made per kind; ``skipped`` the calls a format can't make
    (``account_group_calls``: account-only group calls outside ``v2``); ``odd_values``
    the values the rules set aside (a ``groups`` that is not an object, a group id that
    is an object or a list).
    """

    rows_read: int = 0
    kept: int = 0
    trait_rows: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    odd_values: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.kept + self.trait_rows + sum(self.dropped.values())

    def count_odd(self, heading: str, n: int) -> None:
        self.odd_values[heading] = self.odd_values.get(heading, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "kept": self.kept,
            "trait_rows": self.trait_rows,
            "dropped": {r: self.dropped.get(r, 0) for r in DROP_REASONS},
            "calls": dict(self.calls),
            "skipped": {"account_group_calls": self.skipped.get("account_group_calls", 0)},
            "odd_values": {h: self.odd_values.get(h, 0) for h in ODD_VALUES},
        }
