"""When and how long to wait before a request is tried again.

Modelled on urllib3's ``Retry`` but reduced to what this package needs: a bound on
attempts and on total time, exponential backoff with full jitter, and ``Retry-After``
(seconds or an HTTP-date) taking precedence over the backoff. Accoil delivery and the
Amplitude Export API client both use it.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from .errors import ConfigError

#: Statuses that mean "try again later" rather than "this call is wrong".
RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter (frozen; see ``replace``)."""

    max_attempts: int = 8
    """Total tries of one call, the first included."""
    backoff_base: float = 0.5
    """The backoff before the second try is drawn from ``[0, backoff_base]``."""
    backoff_cap: float = 30.0
    """No single backoff is drawn from a range wider than this."""
    max_total_seconds: float = 300.0
    """No retry starts later than this after the call's first try."""
    max_retry_after: float = 300.0
    """A ``Retry-After`` longer than this is clamped to it."""
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("backoff_base", "backoff_cap", "max_total_seconds", "max_retry_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be at least 0, got {getattr(self, name)}")

    def is_retryable(self, status: int | None) -> bool:
        """True for a transport error (``None``) or a status in :attr:`retry_statuses`."""
        return status is None or status in self.retry_statuses

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter backoff after failed try number ``attempt`` (1-based)."""
        exp = min(attempt - 1, 62)  # 2**62 * base already exceeds any sane cap
        ceiling = min(self.backoff_cap, self.backoff_base * math.pow(2, exp))
        return (rng or random).uniform(0.0, ceiling)

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before the next try.

        A ``Retry-After`` is obeyed (never undercut, clamped to :attr:`max_retry_after`);
        a little jitter of at most ``backoff_base`` is added so that the calls that all
        got the same ``Retry-After`` do not come back in one burst.
        """
        if retry_after is None:
            return self.backoff(attempt, rng)
        jitter = (rng or random).uniform(0.0, self.backoff_base)
        return min(max(retry_after, 0.0), self.max_retry_after) + jitter

    def allows(self, attempt: int, elapsed: float, next_delay: float) -> bool:
        """May try number ``attempt + 1`` start ``next_delay`` s from now (``elapsed`` in)?"""
        return attempt < self.max_attempts and elapsed + next_delay <= self.max_total_seconds


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` if absent or invalid.

    Accepts delay-seconds (``"120"``, also ``"1.5"``) and an HTTP-date; a date in the
    past gives ``0.0``. ``now`` (epoch seconds) is for tests.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
