"""The situations that once lost data silently, sent duplicates or printed the key, tried
as a user meets them: the CLI in a subprocess against a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from accoil_transform.testing import FaultPlan, LocalAccoil

from .helpers import cli as run_cli

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "amplitude_export_sample.zip"
KEY = "live-key-0123456789"


def cli(
    *args: str, key: str | None = KEY, timeout: float = 180, **kw: object
) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={} if key is None else {"ACCOIL_API_KEY": key}, timeout=timeout, **kw)


def start(*args: str, key: str = KEY) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCOIL_", "AMPLITUDE_"))}
    env["ACCOIL_API_KEY"] = key
    return subprocess.Popen(
        [sys.executable, "-m", "accoil_transform", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def send_args(server: LocalAccoil | str, tmp_path: Path, *more: str) -> list[str]:
    base = server if isinstance(server, str) else server.base_url
    return [
        "run", str(SAMPLE), "--base-url", base,
        "--ledger", str(tmp_path / "ledger.sqlite"),
        "--dead-letter", str(tmp_path / "dead.ndjson"),
        "--out", str(tmp_path / "out.ndjson"),
        "--report", str(tmp_path / "report.json"),
        *more,
    ]  # fmt: skip


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "report.json").read_text())


def sent(tmp_path: Path) -> int:
    return report(tmp_path)["delivery"]["total"]["sent"]


def waited(condition: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def server() -> Iterator[LocalAccoil]:
    with LocalAccoil(api_key=None) as srv:  # any key: two "workspaces" on one server
        yield srv


def test_a_second_workspace_on_one_ledger_gets_every_call(
    server: LocalAccoil, tmp_path: Path
) -> None:
    first = cli(*send_args(server, tmp_path))
    assert first.returncode == 0, first.stderr
    calls = sent(tmp_path)
    assert calls > 2000
    second = cli(*send_args(server, tmp_path), key="another-workspace-key")
    assert second.returncode == 0, second.stderr
    assert sent(tmp_path) == calls  # not "skipped": another destination
    again = cli(*send_args(server, tmp_path))
    assert again.returncode == 0 and sent(tmp_path) == 0
    assert report(tmp_path)["delivery"]["total"]["skipped"] == calls
    assert KEY not in again.stdout + again.stderr


def test_overlapping_runs_one_waits_out_the_other_exits(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with LocalAccoil(api_key=KEY, faults=FaultPlan(latency_ms=30)) as srv:
        first = start(*send_args(srv, tmp_path, "--concurrency", "4"))
        waited(lambda: srv.stats()["accepted"] > 10)
        second = cli(*send_args(srv, tmp_path / "x"), "--ledger", str(tmp_path / "ledger.sqlite"))
        first.terminate()
        first.communicate(timeout=60)
    assert second.returncode == 6, second.stderr
    assert "another run is using the ledger" in second.stderr
    assert "Traceback" not in second.stderr


def test_a_closed_port_stops_the_run_and_sends_nothing_twice(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once it is closed
    started = time.monotonic()
    down = cli(*send_args(f"http://127.0.0.1:{port}", tmp_path, "--circuit-seconds", "2"))
    assert down.returncode == 7, down.stderr
    assert time.monotonic() - started < 60
    assert "Accoil is down or unreachable" in down.stderr
    assert not (tmp_path / "dead.ndjson").exists()  # nothing dead-lettered
    assert report(tmp_path)["delivery"]["stopped"]
    with LocalAccoil(api_key=KEY) as srv:  # back up: a re-run sends everything
        assert cli(*send_args(srv, tmp_path)).returncode == 0
        accepted = srv.stats()["accepted"]
    assert accepted == sum(report(tmp_path)["calls"].values())


def test_a_host_that_never_answers_stops_the_run(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])  # accepted, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        silent = cli(*send_args(url, tmp_path, "--circuit-seconds", "2"), timeout=120)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
    assert silent.returncode == 7, silent.stderr


def expected_bodies(tmp_path: Path) -> Counter[str]:
    """The bodies of every call of the sample (several calls can have equal bodies)."""
    out = tmp_path / "expected.ndjson"
    assert cli("run", str(SAMPLE), "--dry-run", "--out", str(out)).returncode == 0
    return Counter(json.dumps(json.loads(line)["body"], sort_keys=True) for line in out.open())


def accepted_bodies(server: LocalAccoil) -> Counter[str]:
    return Counter(json.dumps(c.body, sort_keys=True) for c in server.accepted)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_send_stops_cleanly_and_a_rerun_finishes(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    with LocalAccoil(api_key=KEY, faults=FaultPlan(latency_ms=20)) as srv:
        proc = start(*send_args(srv, tmp_path, "--concurrency", "8"))
        waited(lambda: srv.stats()["accepted"] > 300)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        assert "Traceback" not in err and f"stopped by {sig.name}" in err
        assert len([line for line in err.splitlines() if line.strip()]) == 1
        interrupted = report(tmp_path)
        assert interrupted["interrupted"] == sig.name
        assert 0 < interrupted["delivery"]["total"]["sent"] < sum(interrupted["calls"].values())
        rerun = cli(*send_args(srv, tmp_path))
        assert rerun.returncode == 0, rerun.stderr
        got = accepted_bodies(srv)
    want = expected_bodies(tmp_path)
    assert not want - got  # every call arrived
    assert sum((got - want).values()) <= 8  # twice at most: those in flight at the signal


@pytest.mark.parametrize("key", ["abc\r", "abc\ndef", "kéy€"])
def test_a_key_with_a_stray_character_is_refused_without_being_shown(
    tmp_path: Path, key: str
) -> None:
    done = cli(*send_args("http://127.0.0.1:9", tmp_path), key=key)
    assert done.returncode == 2
    assert "API key" in done.stderr
    assert key.strip() not in done.stderr and key.strip() not in done.stdout


def test_surrounding_white_space_of_a_key_is_ignored(tmp_path: Path) -> None:
    with LocalAccoil(api_key=KEY) as srv:
        done = cli(*send_args(srv, tmp_path), key=f"  {KEY}\n")
        assert done.returncode == 0, done.stderr


def test_a_2xx_whose_connection_breaks_is_an_acknowledgement(tmp_path: Path) -> None:
    faults = FaultPlan()
    faults.script("cut-after-status", 40)
    with LocalAccoil(api_key=KEY, faults=faults) as srv:
        done = cli(*send_args(srv, tmp_path))
        assert done.returncode == 0, done.stderr
        got = accepted_bodies(srv)
    assert got == expected_bodies(tmp_path)  # every call once: none sent twice
    assert report(tmp_path)["delivery"]["total"]["retried"] == 0


def test_final_rejections_are_not_sent_again_unless_asked(tmp_path: Path) -> None:
    faults = FaultPlan()
    faults.script(422, 7)
    with LocalAccoil(api_key=KEY, faults=faults) as srv:
        first = cli(*send_args(srv, tmp_path))
        assert first.returncode == 1  # some calls failed for good
        assert report(tmp_path)["delivery"]["total"]["rejected"] == 7
        dead = (tmp_path / "dead.ndjson").read_text().splitlines()
        assert len(dead) == 7 and {json.loads(d)["reason"] for d in dead} == {"rejected"}
        again = cli(*send_args(srv, tmp_path))
        assert again.returncode == 0, again.stderr
        total = report(tmp_path)["delivery"]["total"]
        assert total["sent"] == 0 and total["skipped_rejected"] == 7
        assert len((tmp_path / "dead.ndjson").read_text().splitlines()) == 7  # not grown
        retry = cli(*send_args(srv, tmp_path, "--retry-rejected"))
        assert retry.returncode == 0, retry.stderr
        assert report(tmp_path)["delivery"]["total"]["sent"] == 7


def test_a_body_over_the_size_limit_is_never_sent(tmp_path: Path) -> None:
    with LocalAccoil(api_key=KEY) as srv:
        done = cli(*send_args(srv, tmp_path, "--max-body-bytes", "120"))
        big = report(tmp_path)["delivery"]["total"]["too_large"]
        assert big > 0 and srv.stats()["accepted"] == report(tmp_path)["delivery"]["total"]["sent"]
    dead = [json.loads(line) for line in (tmp_path / "dead.ndjson").open()]
    assert len(dead) == big and all(d["reason"] == "too_large" for d in dead)
    assert all(len(json.dumps(d["body"], separators=(",", ":"))) > 120 for d in dead)
    assert done.returncode == 1


def test_staging_keys_go_to_staging_without_their_prefix(tmp_path: Path) -> None:
    dry = cli(
        "run", str(SAMPLE), "--dry-run", "--out", str(tmp_path / "dry.ndjson"), key="STG_secret"
    )
    assert dry.returncode == 0, dry.stderr
    urls = {
        json.loads(line)["url"].rsplit("/v2/", 1)[0] for line in (tmp_path / "dry.ndjson").open()
    }
    assert urls == {"https://instaging.accoil.com"}
    with LocalAccoil(api_key="secret") as srv:  # an explicit base URL wins; prefix stripped
        done = cli(*send_args(srv, tmp_path), key="stg_secret")
        assert done.returncode == 0, done.stderr
        assert srv.stats()["accepted"] > 0
    not_staging = cli(
        "run", str(SAMPLE), "--dry-run", "--out", str(tmp_path / "p.ndjson"), key="my_stg_key"
    )
    assert not_staging.returncode == 0
    assert "https://in.accoil.com/v2/" in (tmp_path / "p.ndjson").read_text()
