"""``accoil-transform sync``: the scheduled job, end to end against local fakes of both
outside systems.

``accoil-transform sync --since-last`` exports the hours after the last successful run
from a local Amplitude Export API and sends them to a local Accoil; its state lives in
the ledger. A failed run moves nothing forward, and the repeat sends nothing twice.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accoil_transform import transform
from accoil_transform.cli import main
from accoil_transform.delivery import Ledger
from accoil_transform.jobs import STATE_KEY
from accoil_transform.testing import FaultPlan, LocalAccoil, LocalAmplitudeExport
from accoil_transform.testing.synthetic import generate_events, write_export_zip

from .helpers import cli

ACCOIL_KEY = "sync-test-accoil-key"
START = datetime(2026, 11, 20, 0, tzinfo=UTC)


@pytest.fixture
def events():
    # 4 hours of uploads; sync covers them in two steps.
    return list(generate_events(400, seed=3, start=START, hours=4, edge_cases=False))


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACCOIL_API_KEY", ACCOIL_KEY)
    monkeypatch.setenv("AMPLITUDE_API_KEY", "amp-key")
    monkeypatch.setenv("AMPLITUDE_SECRET_KEY", "amp-secret")
    monkeypatch.setenv("ACCOIL_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("ACCOIL_EXPORT_DIR", str(tmp_path / "export"))
    monkeypatch.setenv("ACCOIL_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("ACCOIL_MAX_RETRY_SECONDS", "2")
    return tmp_path


def expected_call_ids(events, tmp_path: Path, hours: str) -> int:
    """How many calls the single-machine path makes for these events."""
    zip_path = tmp_path / f"expected-{hours}.zip"
    write_export_zip(zip_path, events)
    result = transform(zip_path)
    return result.tracks.height + result.identifies.height + result.groups.height


def sync(*args: str) -> int:
    return main(["sync", "--since-last", *args])


def in_hours(events, first: int, last: int):
    return [e for e in events if first <= int(e["server_upload_time"][11:13]) <= last]


def test_first_run_needs_a_start(env, capsys):
    assert sync("--until", "20261120T03") == 2
    assert "give --start" in capsys.readouterr().err


def test_sync_sends_each_window_once_and_moves_the_state(env, events, monkeypatch, capsys):
    with (
        LocalAmplitudeExport(events, api_key="amp-key", secret_key="amp-secret") as amp,
        LocalAccoil(api_key=ACCOIL_KEY) as accoil,
    ):
        monkeypatch.setenv("ACCOIL_AMPLITUDE_BASE_URL", amp.url)
        monkeypatch.setenv("ACCOIL_BASE_URL", accoil.base_url)

        assert sync("--start", "20261120T00", "--until", "20261120T01") == 0
        with Ledger(env / "ledger.sqlite") as ledger:
            assert ledger.get_state(STATE_KEY) == "20261120T01"
        first_window = len(accoil.accepted)
        assert first_window == expected_call_ids(in_hours(events, 0, 1), env, "a")

        # The next run starts after the recorded hour; --start is ignored once state exists.
        assert sync("--start", "20261120T00", "--until", "20261120T03") == 0
        with Ledger(env / "ledger.sqlite") as ledger:
            assert ledger.get_state(STATE_KEY) == "20261120T03"
        assert [(r.start, r.end) for r in amp.requests][-1] == ("20261120T02", "20261120T03")
        tracks = [c for c in accoil.accepted if c.path.endswith("/track")]
        assert len(tracks) == len(events)  # every upload hour sent, none twice
        ids = [(c.path, repr(c.body)) for c in accoil.accepted]
        assert len(ids) == len(set(ids))

        capsys.readouterr()
        assert sync("--until", "20261120T03") == 0
        assert "nothing new to sync" in capsys.readouterr().err


def test_failed_run_is_repeated_without_duplicates(env, events, monkeypatch, capsys):
    faults = FaultPlan(unavailable=1.0, retry_after=None)
    with (
        LocalAmplitudeExport(events, api_key="amp-key", secret_key="amp-secret") as amp,
        LocalAccoil(api_key=ACCOIL_KEY, faults=faults) as accoil,
    ):
        monkeypatch.setenv("ACCOIL_AMPLITUDE_BASE_URL", amp.url)
        monkeypatch.setenv("ACCOIL_BASE_URL", accoil.base_url)

        assert sync("--start", "20261120T00", "--until", "20261120T01") == 1
        assert "state was not moved" in capsys.readouterr().err
        with Ledger(env / "ledger.sqlite") as ledger:
            assert ledger.get_state(STATE_KEY) is None
        assert accoil.accepted == []

        faults.unavailable = 0.0
        assert sync("--start", "20261120T00", "--until", "20261120T01") == 0
        with Ledger(env / "ledger.sqlite") as ledger:
            assert ledger.get_state(STATE_KEY) == "20261120T01"
        ids = [(c.path, repr(c.body)) for c in accoil.accepted]
        assert len(ids) == len(set(ids)) == expected_call_ids(in_hours(events, 0, 1), env, "b")


def test_dry_run_never_moves_the_state(env, events, monkeypatch):
    with LocalAmplitudeExport(events, api_key="amp-key", secret_key="amp-secret") as amp:
        monkeypatch.setenv("ACCOIL_AMPLITUDE_BASE_URL", amp.url)
        assert (
            sync(
                "--start",
                "20261120T00",
                "--until",
                "20261120T00",
                "--dry-run",
                "--out",
                str(env / "calls.ndjson"),
            )
            == 0
        )
        assert (env / "calls.ndjson").read_text().count("\n") > 0
    with Ledger(env / "ledger.sqlite") as ledger:
        assert ledger.get_state(STATE_KEY) is None


def test_export_failure_has_its_own_exit_code(env, monkeypatch, capsys):
    with LocalAmplitudeExport([], api_key="amp-key", secret_key="other-secret") as amp:
        monkeypatch.setenv("ACCOIL_AMPLITUDE_BASE_URL", amp.url)
        assert sync("--start", "20261120T00", "--until", "20261120T00") == 5
    err = capsys.readouterr().err
    assert "Amplitude export failed" in err and "amp-secret" not in err


def test_a_base_url_is_a_host_the_client_adds_the_path(env, events, monkeypatch):
    with (
        LocalAmplitudeExport(events, api_key="amp-key", secret_key="amp-secret") as amp,
        LocalAccoil(api_key=ACCOIL_KEY) as accoil,
    ):
        host = amp.url.removesuffix("/api/2/export")
        monkeypatch.setenv("ACCOIL_AMPLITUDE_BASE_URL", host)
        monkeypatch.setenv("ACCOIL_BASE_URL", accoil.base_url)
        assert sync("--start", "20261120T00", "--until", "20261120T00") == 0
        assert accoil.accepted


def test_hours_that_all_answer_404_are_an_error_and_keep_the_state(
    env, events, monkeypatch, capsys
):
    with (
        LocalAmplitudeExport(events, api_key="amp-key", secret_key="amp-secret") as amp,
        LocalAccoil(api_key=ACCOIL_KEY) as accoil,
    ):
        host = amp.url.removesuffix("/api/2/export")
        monkeypatch.setenv("ACCOIL_BASE_URL", accoil.base_url)
        # The wrong host: every request is a 404, which the Export API also uses for "empty".
        monkeypatch.setenv("ACCOIL_AMPLITUDE_BASE_URL", host + "/api/2/export/x")
        assert sync("--start", "20261120T00", "--until", "20261120T03") == 9
        assert "every hour answered 404" in capsys.readouterr().err
        with Ledger(env / "ledger.sqlite") as ledger:
            assert ledger.get_state(STATE_KEY) is None

    # Data only up to hour 1: the state stops there, and the empty hours are asked again.
    early = in_hours(events, 0, 1)
    with (
        LocalAmplitudeExport(early, api_key="amp-key", secret_key="amp-secret") as amp,
        LocalAccoil(api_key=ACCOIL_KEY) as accoil,
    ):
        monkeypatch.setenv("ACCOIL_BASE_URL", accoil.base_url)
        monkeypatch.setenv("ACCOIL_AMPLITUDE_BASE_URL", amp.base_url)
        assert sync("--start", "20261120T00", "--until", "20261120T03") == 0
        with Ledger(env / "ledger.sqlite") as ledger:
            assert ledger.get_state(STATE_KEY) == "20261120T01"
        assert sync("--until", "20261120T03") == 9
        assert [(r.start, r.end) for r in amp.requests][-1] == ("20261120T02", "20261120T03")


# --------------------------------------------------------------------------- as a user runs it


def user_env(tmp_path: Path, amp: LocalAmplitudeExport, accoil: LocalAccoil) -> dict[str, str]:
    return {
        "ACCOIL_API_KEY": ACCOIL_KEY,
        "ACCOIL_BASE_URL": accoil.base_url,
        "ACCOIL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "ACCOIL_EXPORT_DIR": str(tmp_path / "export"),
        "AMPLITUDE_API_KEY": "amp-key",
        "AMPLITUDE_SECRET_KEY": "amp-secret",
        "AMPLITUDE_BASE_URL": amp.url,
    }


def test_sync_status_and_rewind_as_a_user_runs_them(tmp_path, events):
    with (
        LocalAmplitudeExport(events, api_key="amp-key", secret_key="amp-secret") as amp,
        LocalAccoil(api_key=ACCOIL_KEY) as accoil,
    ):
        env = user_env(tmp_path, amp, accoil)
        ledger = tmp_path / "ledger.sqlite"

        proc = cli("sync", "status", env=env)
        assert proc.returncode == 3 and str(ledger) in proc.stderr

        # --since-last is the default mode; the flag still works.
        proc = cli("sync", "--start", "20261120T00", "--until", "20261120T01", env=env)
        assert proc.returncode == 0, proc.stderr
        proc = cli("sync", "--since-last", "--until", "20261120T03", env=env)
        assert proc.returncode == 0, proc.stderr
        sent = len(accoil.accepted)
        assert sent > len(events)

        proc = cli("sync", "status", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "last synced hour  20261120T03" in proc.stdout
        table = [line.split() for line in proc.stdout.splitlines() if accoil.base_url in line]
        assert [row[:3] for row in table] == [[f"{sent:,}", "0", accoil.base_url]]
        assert ACCOIL_KEY not in proc.stdout + proc.stderr
        # The ledger may be named before or after the action, or come from the environment.
        for args in (["status", "--ledger", str(ledger)], ["--ledger", str(ledger), "status"]):
            proc = cli("sync", *args, "--json", env=env | {"ACCOIL_LEDGER": "elsewhere.sqlite"})
            assert proc.returncode == 0, proc.stderr
            status = json.loads(proc.stdout)
            assert status["last_hour"] == "20261120T03"
            assert status["destinations"][0]["sent"] == sent
            assert status["destinations"][0]["base_url"] == accoil.base_url

        # Bad input is exit 3 with a message, and the state does not move.
        proc = cli("sync", "--rewind-to", "2026-11-20T02", env=env)
        assert proc.returncode == 3 and "YYYYMMDDTHH" in proc.stderr
        proc = cli("sync", "--rewind-to", "20261121T00", env=env)
        assert proc.returncode == 3 and "only moves the state back" in proc.stderr
        assert "Traceback" not in proc.stderr
        proc = cli("sync", "--rewind-to", "20261120T02", "--until", "20261120T03", env=env)
        assert proc.returncode == 2
        with Ledger(ledger) as state:
            assert state.get_state(STATE_KEY) == "20261120T03"

        proc = cli("sync", "--rewind-to", "20261120T02", env=env)
        assert proc.returncode == 0, proc.stderr
        assert "the next sync starts at 20261120T02" in proc.stdout
        with Ledger(ledger) as state:
            assert state.get_state(STATE_KEY) == "20261120T01"
        assert len(amp.requests) == 2 and len(accoil.accepted) == sent  # nothing sent

        # The next sync exports the rewound hours again; the ledger skips what was sent.
        proc = cli("sync", "--until", "20261120T03", env=env)
        assert proc.returncode == 0, proc.stderr
        assert [(r.start, r.end) for r in amp.requests][-1] == ("20261120T02", "20261120T03")
        assert len(accoil.accepted) == sent
        with Ledger(ledger) as state:
            assert state.get_state(STATE_KEY) == "20261120T03"


def test_status_reads_a_ledger_a_run_holds_and_rewind_waits_its_turn(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    env = {"ACCOIL_LEDGER": str(ledger)}
    with Ledger(ledger, destination="http://127.0.0.1:1#0123456789abcdef") as held:
        held.record(["a", "b"], wait=True)
        held.record(["c"], status=400, wait=True)
        held.set_state(STATE_KEY, "20261120T05")
        proc = cli("sync", "status", env=env)  # read-only: the lock is not needed
        assert proc.returncode == 0, proc.stderr
        assert "last synced hour  20261120T05" in proc.stdout
        assert "http://127.0.0.1:1 (key #0123456789abcdef)" in proc.stdout
        proc = cli("sync", "--rewind-to", "20261120T00", env=env)
        assert proc.returncode == 6 and "another run" in proc.stderr
    proc = cli("sync", "status", "--json", env=env)
    status = json.loads(proc.stdout)
    assert status["destinations"] == [
        {"base_url": "http://127.0.0.1:1", "key_hash": "0123456789abcdef", "sent": 2, "rejected": 1}
    ]
    (tmp_path / "junk.sqlite").write_text("not a ledger\n")
    proc = cli("sync", "status", "--ledger", str(tmp_path / "junk.sqlite"), env=env)
    assert proc.returncode == 8 and "Traceback" not in proc.stderr
