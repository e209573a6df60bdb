"""Spark sending with an acknowledgements table (issue #17): each call once, across re-runs.

Local Spark (``local[2]``) sends a small calls DataFrame to the loopback stand-in
(:class:`LocalAccoil`); the stand-in's accepted calls are counted per body.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import polars as pl
import pytest

from accoil_transform import DeliveryOptions
from accoil_transform.cli.ledger import export_ledger
from accoil_transform.delivery import Destination, Ledger
from accoil_transform.integrations._spark_acks import TableSink, filesystem, read_ids
from accoil_transform.integrations.spark import CALLS_DDL, compact_acks, send_partitions
from accoil_transform.testing import Fault, FaultPlan, LocalAccoil

pytestmark = pytest.mark.spark

KEY = "sk-acks-test-9f3e1c"
TS = "2025-07-01T10:00:00+00:00"
FAST = DeliveryOptions(concurrency=4, auth_failure_threshold=3, circuit_seconds=5)


def make_calls(users: int = 30, tracks: int = 3, *, bad: int = 0) -> list[tuple[str, ...]]:
    """Identify and track calls (v2) of ``users`` users; ``bad`` tracks Accoil rejects."""
    rows: list[tuple[str, ...]] = []
    for u in range(users):
        uid = f"usr_{u:03d}"
        body = {"userId": uid, "traits": {"name": uid}, "timestamp": TS}
        rows.append(("identify", f"v2:identify:{uid}:x", uid, orjson.dumps(body).decode()))
        for t in range(tracks):
            body = {
                "userId": uid,
                "event": "Report Created",
                "timestamp": TS,
                "properties": {"n": t},
            }
            rows.append(("track", f"v2:track:u:{uid}-{t}:x", uid, orjson.dumps(body).decode()))
    for b in range(bad):  # no "event": a 400
        body = {"userId": "usr_000", "timestamp": TS, "properties": {"bad": b}}
        rows.append(("track", f"v2:track:u:bad-{b}:x", "usr_000", orjson.dumps(body).decode()))
    return rows


def frame(spark, rows, partitions: int):
    return spark.createDataFrame(rows, CALLS_DDL).repartition(partitions, "user_id")


def bodies(rows) -> Counter[bytes]:
    return Counter(orjson.dumps(orjson.loads(r[3]), option=orjson.OPT_SORT_KEYS) for r in rows)


def accepted(server: LocalAccoil) -> Counter[bytes]:
    return Counter(orjson.dumps(c.body, option=orjson.OPT_SORT_KEYS) for c in server.accepted)


def table(path: Path, sub: str = "") -> pl.DataFrame:
    files = sorted((path / sub).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def test_a_rerun_with_other_partitions_sends_nothing(spark, tmp_path):
    rows = make_calls(bad=1)
    good = [r for r in rows if "bad" not in r[1]]
    acks = tmp_path / "acks"
    with LocalAccoil(api_key=KEY) as server:
        first = send_partitions(
            frame(spark, rows, 3), api_key=KEY, base_url=server.base_url, acks=str(acks),
            options=FAST, ack_group=10,
        )  # fmt: skip
        assert first.total.sent == len(good) and first.total.rejected == 1
        assert accepted(server) == bodies(good)  # every call once
        # Each user's identify was accepted before their tracks.
        identified: set[str] = set()
        for call in server.accepted:
            if call.kind == "identify":
                identified.add(call.body["userId"])
            else:
                assert call.body["userId"] in identified

        again = send_partitions(
            frame(spark, rows, 5), api_key=KEY, base_url=server.base_url, acks=str(acks),
            options=FAST,
        )  # fmt: skip
        assert again.total.sent == 0 and again.total.failed == 0
        assert len(server.accepted) == len(good)
        assert len(server.requests) == len(rows)  # the rejected call was not sent again
        destination = Destination.resolve(KEY, server.base_url).id

    acked = table(acks)
    assert acked.columns == ["destination", "call_id", "kind", "acked_at"]
    assert acked["destination"].unique().to_list() == [destination]
    assert sorted(acked["call_id"]) == sorted(r[1] for r in good)
    assert Counter(acked["kind"]) == Counter(r[0] for r in good)
    assert acked["acked_at"].null_count() == 0
    rejected = table(acks, "_rejected")
    assert rejected["call_id"].to_list() == ["v2:track:u:bad-0:x"]
    assert rejected["status"].to_list() == [400]
    assert len(list(acks.glob("*.parquet"))) > 3  # small groups, as it went
    for f in [*acks.rglob("*")]:  # the key is in no file (only its hash)
        assert not f.is_file() or KEY.encode() not in f.read_bytes()


class FailAfter(FaultPlan):
    """401 for every request after the first ``after`` (``0``: no fault)."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.seen = after, 0

    def draw(self) -> Fault | None:
        with self._lock:
            self.seen += 1
            if self.after and self.seen > self.after:
                return Fault(401)
        return super().draw()


def test_a_task_that_fails_midway_loses_no_acknowledgement(spark, tmp_path):
    rows = make_calls(users=40)
    acks = str(tmp_path / "acks")
    plan = FailAfter(50)
    with LocalAccoil(api_key=KEY, faults=plan) as server:
        with pytest.raises(Exception, match="refused the API key") as failed:
            send_partitions(
                frame(spark, rows, 1), api_key=KEY, base_url=server.base_url, acks=acks,
                options=FAST, ack_group=1000, ack_seconds=60,
            )  # fmt: skip
        assert KEY not in str(failed.value)
        sent_before = len(server.accepted)
        assert 0 < sent_before <= 50
        # What the failed task got acknowledged is in the table (committed at its end).
        assert table(Path(acks)).height == sent_before

        plan.after = 0
        report = send_partitions(
            frame(spark, rows, 4), api_key=KEY, base_url=server.base_url, acks=acks,
            options=FAST,
        )  # fmt: skip
        assert report.total.sent == len(rows) - sent_before
        assert accepted(server) == bodies(rows)  # every call exactly once


def test_two_destinations_on_one_table_and_compaction(spark, tmp_path, capsys):
    rows = make_calls(users=20, tracks=2)
    acks = str(tmp_path / "acks")
    other_key = "sk-acks-other-41d2"
    with LocalAccoil(api_key=KEY) as one, LocalAccoil(api_key=other_key) as two:
        for server, key in ((one, KEY), (two, other_key)):
            report = send_partitions(
                frame(spark, rows, 2), api_key=key, base_url=server.base_url, acks=acks,
                options=FAST, ack_group=5, max_rate_total=150,
            )  # fmt: skip
            assert report.total.sent == len(rows)
            assert accepted(server) == bodies(rows)
            # 150 calls/s over all tasks: the stand-in saw no faster rate.
            times = sorted(c.mono for c in server.accepted)
            assert (len(times) - 1) / (times[-1] - times[0]) <= 150 * 1.25

        counts = compact_acks(spark, acks)
        printed = capsys.readouterr().out
        for server, key in ((one, KEY), (two, other_key)):
            destination = Destination.resolve(key, server.base_url).id
            assert counts[destination] == {"identify": 20, "track": 40}
            assert f"{destination}: identify 20, track 40" in printed
            again = send_partitions(
                frame(spark, rows, 3), api_key=key, base_url=server.base_url, acks=acks,
                options=FAST,
            )  # fmt: skip
            assert again.total.sent == 0 and len(server.accepted) == len(rows)
    assert len(list(Path(acks).glob("*.parquet"))) == 1
    assert table(Path(acks)).height == 2 * len(rows)


def test_a_backfill_started_on_one_machine_continues_on_spark(spark, tmp_path):
    rows = make_calls(users=10, tracks=2)
    with LocalAccoil(api_key=KEY) as server:
        destination = Destination.resolve(KEY, server.base_url).id
        done = [r[1] for r in rows[: len(rows) // 2]]
        with Ledger(tmp_path / "ledger.sqlite", destination) as ledger:
            ledger.record(done, wait=True)
        assert export_ledger(tmp_path / "ledger.sqlite", str(tmp_path / "acks")) == (len(done), 0)
        report = send_partitions(
            frame(spark, rows, 2), api_key=KEY, base_url=server.base_url,
            acks=str(tmp_path / "acks"), options=FAST,
        )  # fmt: skip
        assert report.total.sent == len(rows) - len(done)
        assert accepted(server) == bodies(rows[len(done) :])


# --------------------------------------------------------------------------- one task's sink


def test_a_killed_attempt_loses_only_its_pending_group_and_a_retry_skips_the_rest(tmp_path):
    uri = str(tmp_path / "acks")
    sink = TableSink(uri, "dest#1", "acks-run1-p00000-a0-", group=10, seconds=60)
    released = []
    for i in range(25):
        sink.record([f"id-{i}"], on_commit=lambda: released.append(1))
    assert len(released) == 25  # slots are not held
    # Killed here (no close): the two full groups are committed, the last 5 are lost.
    fs, root = filesystem(uri)
    done = read_ids(fs, root, "acks-run1-", "dest#1")
    assert done == {f"id-{i}" for i in range(20)}
    assert read_ids(fs, root, "acks-run1-", "dest#2") == set()
    assert not list((tmp_path / "acks").glob(".*"))  # no half-written file left visible
    retry = TableSink(uri, "dest#1", "acks-run1-p00000-a1-", skip=done)
    todo, rejected = retry.unsent([f"id-{i}" for i in range(25)])
    assert todo == [f"id-{i}" for i in range(20, 25)] and rejected == 0
    retry.close()
    sink.close()


def test_a_quiet_sink_commits_after_its_seconds(tmp_path):
    sink = TableSink(str(tmp_path), "dest#1", "acks-run2-p00000-a0-", group=1000, seconds=0.2)
    sink.record(["a", "b"])
    deadline = time.monotonic() + 5
    while not list(tmp_path.glob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.close()
    assert table(tmp_path)["call_id"].to_list() == ["a", "b"]


# --------------------------------------------------------------------------- Spark's own retry

RETRY_SCRIPT = """
import json, sys
from collections import Counter
from pyspark.sql import SparkSession
from accoil_transform import DeliveryOptions
from accoil_transform.integrations.spark import CALLS_DDL, send_partitions
from accoil_transform.testing import Fault, FaultPlan, LocalAccoil
from tests.integrations.test_spark_acks import KEY, make_calls

class FailOnce(FaultPlan):  # 401 for requests 41-44: the first attempt stops midway
    seen = 0
    def draw(self):
        with self._lock:
            self.seen += 1
            return Fault(401) if 40 < self.seen <= 44 else None

spark = (SparkSession.builder.master("local[2,2]")  # a failed task is tried twice
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .getOrCreate())
spark.sparkContext.setLogLevel("OFF")
rows = make_calls(users=30)
calls = spark.createDataFrame(rows, CALLS_DDL).repartition(1, "user_id")
options = DeliveryOptions(concurrency=4, auth_failure_threshold=3)
with LocalAccoil(api_key=KEY, faults=FailOnce()) as server:
    report = send_partitions(calls, api_key=KEY, base_url=server.base_url,
                             acks=sys.argv[1], options=options, ack_group=1000)
    seen = Counter(json.dumps(c.body, sort_keys=True) for c in server.accepted)
print(json.dumps({"calls": len(rows), "sent": report.total.sent,
                  "skipped": report.total.skipped, "distinct": len(seen),
                  "max": max(seen.values()), "requests": len(server.requests)}))
spark.stop()
"""


def test_a_task_retried_by_spark_sends_only_the_rest(tmp_path):
    """Spark retries the failed task itself (``local[2,2]``): its second attempt skips
    what the first got acknowledged. A session of its own, in a subprocess."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(repo)}
    proc = subprocess.run(
        [sys.executable, "-c", RETRY_SCRIPT, str(tmp_path / "acks")],
        capture_output=True, text=True, timeout=300, env=env, cwd=repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = orjson.loads(proc.stdout.strip().splitlines()[-1])
    # Each call accepted once, plus the 401s: the first attempt stops after 3 of them, and a
    # 4th may already be in flight (4 slots), so 3 or 4.
    assert out["calls"] + 3 <= out["requests"] <= out["calls"] + 4
    assert out["distinct"] == out["calls"] and out["max"] == 1
    # The second attempt's report: it skipped what the first got acknowledged (~40).
    assert out["skipped"] >= 40 and out["sent"] + out["skipped"] == out["calls"]
