"""RetryPolicy: which failures are retried, backoff bounds, Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accoil_transform.delivery import RETRY_STATUSES, RetryPolicy, parse_retry_after


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, None])
def test_transient_failures_are_retried(status: int | None) -> None:
    assert RetryPolicy().is_retryable(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422, 501])
def test_other_statuses_are_final(status: int) -> None:
    assert not RetryPolicy().is_retryable(status)


def test_retry_statuses_match_the_spec() -> None:
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRY_STATUSES


@given(attempt=st.integers(1, 10_000), base=st.floats(0, 10), cap=st.floats(0, 100))
def test_full_jitter_backoff_stays_in_its_range(attempt: int, base: float, cap: float) -> None:
    policy = RetryPolicy(backoff_base=base, backoff_cap=cap)
    delay = policy.backoff(attempt, random.Random(attempt))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(attempt - 1, 62))


def test_backoff_grows_exponentially_and_uses_the_whole_range() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_cap=1000.0)
    rng = random.Random(7)
    for attempt in (1, 3, 6):
        ceiling = 2.0 ** (attempt - 1)
        draws = [policy.backoff(attempt, rng) for _ in range(2000)]
        assert max(draws) <= ceiling
        assert min(draws) < 0.05 * ceiling  # full jitter reaches down to zero
        assert max(draws) > 0.95 * ceiling


def test_retry_after_is_never_undercut_and_is_clamped() -> None:
    policy = RetryPolicy(backoff_base=0.5, max_retry_after=60)
    rng = random.Random(1)
    for _ in range(200):
        assert 3.0 <= policy.delay(1, 3.0, rng) <= 3.5
        assert 60.0 <= policy.delay(1, 3600.0, rng) <= 60.5
    assert policy.delay(5, None, rng) <= 0.5 * 16


def test_attempts_and_total_time_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3, max_total_seconds=10)
    assert policy.allows(1, 0.0, 1.0)
    assert policy.allows(2, 5.0, 5.0)
    assert not policy.allows(3, 0.0, 0.0)  # the third try was the last
    assert not policy.allows(1, 9.5, 1.0)  # would start after 10 s


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=-1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("-1", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_http_date() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2025, 3, 1, 12, 0, 45, tzinfo=UTC), usegmt=True)
    assert later == "Sat, 01 Mar 2025 12:00:45 GMT"
    assert parse_retry_after(later, now=now) == pytest.approx(45.0)
    assert parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:10 -0000", now=now) == pytest.approx(10.0)
    assert parse_retry_after("Someday, 99 Foo 2025", now=now) is None
