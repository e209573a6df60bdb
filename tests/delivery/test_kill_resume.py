"""SIGKILL a delivering process mid-run, resume it, and count what Accoil received."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from accoil_transform.testing import FaultPlan, LocalAccoil
from tests.delivery.helpers import accepted_counts, assert_delivery_order, body_key, workload

CONCURRENCY = 8
USERS, TRACKS = 60, 2500

CHILD = f"""
import sys, orjson
from accoil_transform.delivery import DeliveryOptions, RetryPolicy, send
from accoil_transform.calls import AuthScheme
from tests.delivery.helpers import KEY, batches, workload

base_url, ledger = sys.argv[1], sys.argv[2]
calls = workload(users={USERS}, tracks={TRACKS})
report = send(
    batches(calls, base_url, batch_size=100),
    api_key=KEY,
    auth=AuthScheme.RAW_BASIC,
    options=DeliveryOptions(concurrency={CONCURRENCY}, ledger_path=ledger,
                            retry=RetryPolicy(backoff_base=0.01)),
)
sys.stdout.buffer.write(orjson.dumps(report.to_dict()))
"""


def _child(base_url: str, ledger: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, base_url, str(ledger)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


@pytest.mark.slow
def test_sigkill_then_resume_sends_each_call_once_but_in_flight(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    calls = workload(users=USERS, tracks=TRACKS)
    expected = {body_key(c.body) for c in calls}
    with LocalAccoil(faults=FaultPlan(latency_ms=3)) as srv:
        child = _child(srv.base_url, ledger)
        deadline = time.monotonic() + 60
        while srv.stats()["accepted"] < len(calls) // 3:  # kill about a third of the way
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "the first run made no progress"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        time.sleep(0.2)  # let the server finish reading the requests cut off by the kill
        killed_at = srv.stats()["accepted"]
        assert killed_at < len(calls)

        resumed = _child(srv.base_url, ledger)
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err.decode()
        report = orjson.loads(out)

        counts = accepted_counts(srv.accepted)
        assert set(counts) == expected
        duplicates = sum(n - 1 for n in counts.values())
        assert duplicates <= CONCURRENCY
        print(f"killed after {killed_at} accepted calls; {duplicates} sent twice")
        total = report["total"]
        assert total["sent"] + total["skipped"] == len(calls)
        assert total["sent"] <= len(calls) - killed_at + CONCURRENCY
        assert total["skipped"] >= killed_at - CONCURRENCY
        assert_delivery_order(srv.accepted[killed_at:])  # the resumed run kept the order

        third = _child(srv.base_url, ledger)
        out, err = third.communicate(timeout=60)
        assert third.returncode == 0, err.decode()
        assert orjson.loads(out)["total"]["sent"] == 0
        assert sum(accepted_counts(srv.accepted).values()) == len(calls) + duplicates
