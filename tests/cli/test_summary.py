"""The run summary a person reads: aligned, in plain words, every file written."""

from __future__ import annotations

from accoil_transform.cli._summary import format_report

BASE = {
    "rows_read": 12_000,
    "kept": 11_000,
    "trait_rows": 10,
    "dropped": {"malformed": 1, "duplicate": 0, "no_user_id": 989, "event_type": 0},
    "calls": {"identify": 40, "group": 50, "track": 11_000},
}


def stats(sent: int = 0, skipped: int = 0, failed: int = 0) -> dict[str, int]:
    return {"sent": sent, "skipped": skipped, "failed": failed, "rejected": failed, "retried": 3}


def test_drop_reasons_in_plain_words_and_numbers_aligned() -> None:
    text = format_report(BASE | {"outputs": {"calls": "-", "report": "r.json"}})
    lines = text.splitlines()
    assert "dropped: no user id" in text and "dropped: malformed line" in text
    assert "duplicate" not in text  # a reason with no row is left out
    numbers = [line for line in lines[:7] if line[-1].isdigit()]
    assert len({len(line) for line in numbers}) == 1  # right-aligned in one column
    assert "calls   standard output" in text and "report  r.json" in text


def test_a_delivery_is_a_small_table() -> None:
    delivery = {
        "calls": {"identify": stats(40), "track": stats(10_990, skipped=5, failed=5)},
        "total": stats(11_030, skipped=5, failed=5),
        "duration_s": 2.5,
        "calls_per_s": 4412.0,
        "stopped": None,
    }
    text = format_report(BASE | {"delivery": delivery})
    header = next(line for line in text.splitlines() if "already sent" in line)
    assert header.split() == [
        "sent",
        "already",
        "sent",
        "failed",
        "of",
        "which",
        "rejected",
        "retries",
    ]
    assert any(line.split()[:3] == ["track", "10,990", "5"] for line in text.splitlines())
    assert any(line.startswith("total") for line in text.splitlines())
    assert "delivered 11,030 calls in 2.5 s (4,412 calls/s)" in text


def test_a_rerun_with_nothing_to_send_says_so_without_a_rate() -> None:
    delivery = {
        "calls": {"track": stats(skipped=11_000)},
        "total": stats(skipped=11_000),
        "duration_s": 0.0,
        "calls_per_s": 0.0,
        "stopped": None,
    }
    text = format_report(BASE | {"delivery": delivery})
    assert "nothing new was sent" in text
    assert "calls/s" not in text and "0.0 s" not in text
