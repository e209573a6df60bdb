"""The delivery engine against the local stand-in: exactly once, in order, retried,
dead-lettered; flow control is in ``test_flow.py``, the HTTP client in ``test_client.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from accoil_transform.calls import AuthScheme
from accoil_transform.delivery import AuthenticationError, DeliveryOptions, RetryPolicy, send
from accoil_transform.delivery._sender import _call_soon
from accoil_transform.testing import FaultPlan, LocalAccoil
from tests.delivery.helpers import (
    KEY,
    accepted_counts,
    assert_adds_up,
    assert_delivery_order,
    body_key,
    deliver,
    workload,
)


@pytest.mark.parametrize("fmt", ["v2", "segment", "v1"])
def test_every_call_arrives_once_in_order(accoil_server: LocalAccoil, fmt: str) -> None:
    calls = workload(users=12, groups=5, tracks=300, fmt=fmt)
    report = deliver(accoil_server, calls, fmt, concurrency=8)
    accepted = accoil_server.accepted
    assert accepted_counts(accepted) == {body_key(c.body): 1 for c in calls}
    assert_delivery_order(accepted, fmt)
    assert report.endpoints["identify"].sent == 12
    assert report.endpoints["group"].sent == 5
    assert report.endpoints["track"].sent == 300
    assert report.total.retried == 0
    assert_adds_up(report, calls)


def test_random_faults_every_call_accepted_exactly_once(
    accoil_server_factory: Any, tmp_path: Path
) -> None:
    faults = FaultPlan(rate_limit=0.04, retry_after="0", unavailable=0.03, drop=0.03, seed=11)
    srv = accoil_server_factory(faults=faults)
    calls = workload(users=40, groups=10, tracks=1500)
    report = deliver(
        srv,
        calls,
        concurrency=12,
        ledger_path=tmp_path / "l.sqlite",
        dead_letter_path=tmp_path / "dead.ndjson",
    )
    accepted = srv.accepted
    assert accepted_counts(accepted) == {body_key(c.body): 1 for c in calls}
    assert_delivery_order(accepted)
    faulted = [r for r in srv.requests if r.fault is not None]
    assert len(faulted) > 100  # the faults really happened (~10% of requests)
    assert report.total.sent == len(calls) == srv.stats()["accepted"]
    assert report.total.failed == report.total.dead_lettered == 0
    assert report.total.retried == len(faulted)  # one retry per faulted request
    assert report.total.throttled == sum(r.fault == "429" for r in faulted)
    assert report.total.sent + report.total.retried == len(srv.requests)
    assert_adds_up(report, calls)
    assert not (tmp_path / "dead.ndjson").exists()


def test_second_run_sends_nothing(accoil_server: LocalAccoil, tmp_path: Path) -> None:
    calls = workload(users=5, tracks=120)
    ledger = tmp_path / "ledger.sqlite"
    first = deliver(accoil_server, calls, concurrency=4, ledger_path=ledger)
    assert first.total.sent == len(calls)
    requests_before = len(accoil_server.requests)
    second = deliver(accoil_server, calls, concurrency=4, ledger_path=ledger)
    assert len(accoil_server.requests) == requests_before
    assert second.total.sent == 0
    assert second.total.skipped == len(calls)
    assert second.endpoints["track"].skipped == 120
    assert_adds_up(second, calls)


def test_rejected_calls_go_to_the_dead_letter_file(
    accoil_server: LocalAccoil, tmp_path: Path
) -> None:
    calls = workload(users=3, tracks=30)
    for i in (5, 17):  # break the contract: no event name
        del calls[3 + i].body["event"]
    dead = tmp_path / "out" / "dead.ndjson"
    report = deliver(accoil_server, calls, concurrency=4, dead_letter_path=dead)
    lines = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert sorted(d["call_id"] for d in lines) == ["tr-17", "tr-5"]
    for d in lines:
        assert d["status"] == 400
        assert d["kind"] == "track"
        assert d["url"] == accoil_server.base_url + "/v2/track"
        assert "'event' is required" in d["response_start"]
        assert d["body"] == calls[3 + int(d["call_id"][3:])].body
    track = report.endpoints["track"]
    assert (track.sent, track.failed, track.dead_lettered, track.retried) == (28, 2, 2, 0)
    assert len(accoil_server.requests) == len(calls)  # a 400 is never retried
    assert_adds_up(report, calls)


def test_wrong_key_stops_the_run_early(accoil_server: LocalAccoil, tmp_path: Path) -> None:
    calls = workload(users=50, tracks=2000)
    dead = tmp_path / "dead.ndjson"
    with pytest.raises(AuthenticationError) as info:
        deliver(
            accoil_server,
            calls,
            key="wrong-key-123",
            concurrency=4,
            auth_failure_threshold=10,
            dead_letter_path=dead,
        )
    assert len(accoil_server.requests) <= 10 + 4
    assert accoil_server.accepted == []
    message = str(info.value)
    assert "401" in message and "API key" in message
    assert "wrong-key-123" not in message
    assert not dead.exists()  # the calls are fine; the key is not
    report = info.value.report
    assert report.stopped == message
    assert report.total.failed == len(accoil_server.requests)


def test_early_auth_failures_are_dead_lettered_once_the_key_works(
    accoil_server: LocalAccoil, tmp_path: Path
) -> None:
    accoil_server.faults.script(403, count=3)
    calls = workload(users=2, tracks=10)
    dead = tmp_path / "dead.ndjson"
    report = deliver(
        accoil_server, calls, concurrency=1, auth_failure_threshold=5, dead_letter_path=dead
    )
    lines = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [d["call_id"] for d in lines] == ["id-0", "id-1", "tr-0"]
    assert {d["status"] for d in lines} == {403}
    assert report.total.sent == len(calls) - 3
    assert_adds_up(report, calls)


def test_retry_after_is_obeyed(accoil_server: LocalAccoil) -> None:
    accoil_server.faults.script(429, retry_after="1")
    calls = workload(users=1, tracks=3)
    report = deliver(accoil_server, calls, concurrency=1)
    reqs = accoil_server.requests
    assert [r.status for r in reqs] == [429, 202, 202, 202, 202]
    throttled, retry = reqs[0], reqs[1]
    assert retry.body == throttled.body
    assert retry.mono - throttled.mono >= 1.0  # measured on the server's clock
    assert report.total.throttled == 1


def test_attempts_are_bounded(accoil_server: LocalAccoil, tmp_path: Path) -> None:
    accoil_server.faults.script(503, count=6)
    dead = tmp_path / "dead.ndjson"
    calls = workload(users=2, tracks=0)
    policy = RetryPolicy(max_attempts=3, backoff_base=0.001)
    report = deliver(accoil_server, calls, concurrency=1, retry=policy, dead_letter_path=dead)
    assert len(accoil_server.requests) == 6
    assert accoil_server.accepted == []
    stats = report.endpoints["identify"]
    assert (stats.sent, stats.failed, stats.retried, stats.dead_lettered) == (0, 2, 4, 2)
    assert [orjson.loads(x)["status"] for x in dead.read_bytes().splitlines()] == [503, 503]


def test_dropped_connections_exhaust_into_the_dead_letter_file(
    accoil_server: LocalAccoil, tmp_path: Path
) -> None:
    accoil_server.faults.script("drop", count=2)
    dead = tmp_path / "dead.ndjson"
    policy = RetryPolicy(max_attempts=2, backoff_base=0.001)
    report = deliver(
        accoil_server,
        workload(users=1, tracks=0),
        concurrency=1,
        retry=policy,
        dead_letter_path=dead,
    )
    [line] = [orjson.loads(x) for x in dead.read_bytes().splitlines()]
    assert line["status"] is None
    assert "no response" in line["response_start"]
    assert report.total.failed == 1


def test_options_are_validated() -> None:
    for bad in (
        {"concurrency": 0},
        {"max_rate": 0},
        {"auth_failure_threshold": 0},
        {"max_body_bytes": 0},
        {"circuit_seconds": 0},
    ):
        with pytest.raises(ValueError):
            DeliveryOptions(**bad)
    with pytest.raises(ValueError, match="API key is empty"):
        send([], api_key="", auth=AuthScheme.RAW_BASIC)


def test_empty_input() -> None:
    report = send([], api_key=KEY, auth=AuthScheme.RAW_BASIC)
    assert report.total.sent == 0
    assert report.to_dict()["calls"] == {}


def test_a_commit_after_the_send_stopped_finds_its_loop_closed_and_does_nothing() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    _call_soon(loop, pytest.fail, "must not run")  # no "Event loop is closed" raised
