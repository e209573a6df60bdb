"""``accoil-transform export``: keys from flags, the environment or the config file, and
the exit codes (0 done, 2 usage or missing keys, 5 the Export API failed or refused).
Its Amplitude flags are the ones ``sync`` has (``--amplitude-*``); the old spellings
still work, with a warning."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from accoil_transform.cli import export as export_cli
from accoil_transform.testing import LocalAmplitudeExport, make_events

from .helpers import cli

API_KEY = "ak-3f9c1e0d7b2a"
SECRET_KEY = "sk-8d4e6a1c9f0b"
T0 = datetime(2024, 3, 1, 0, tzinfo=UTC)


def fake(events: list[dict[str, Any]] | None = None, **kw: Any) -> LocalAmplitudeExport:
    return LocalAmplitudeExport(events or [], api_key=API_KEY, secret_key=SECRET_KEY, **kw)


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="accoil-transform")
    export_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = list(make_events(T0, hours=2))
    with fake(events) as server:
        argv = [
            "export",
            "--start",
            "20240301T00",
            "--end",
            "20240301T05",
            "--out",
            str(tmp_path),
            "--amplitude-base-url",
            server.url,
        ]
        assert _cli(argv) == 2  # no credentials
        assert "AMPLITUDE_API_KEY" in capsys.readouterr().err
        monkeypatch.setenv("AMPLITUDE_API_KEY", API_KEY)
        monkeypatch.setenv("AMPLITUDE_SECRET_KEY", SECRET_KEY)
        assert _cli(argv) == 0
        out = capsys.readouterr().out
        assert "1 file(s)" in out and "20240301T00-20240301T05.zip" in out
        assert _cli([*argv[:2], "20240302T00", *argv[3:]]) == 2  # start after end
        empty = [*argv[:1], "--start", "20240305T00", "--end", "20240305T01", *argv[5:]]
        assert _cli(empty) == 0  # an empty window is a success
        assert "1 empty window(s)" in capsys.readouterr().out
        assert _cli([*argv, "--amplitude-secret-key", "sk-wrong-71c2"]) == 5  # rejected keys
        server.fail_next(5, status=503)
        assert _cli([*argv, "--max-retries", "0"]) == 5  # the Export API failed
        err = capsys.readouterr().err
    assert API_KEY not in err and SECRET_KEY not in err and "sk-wrong-71c2" not in err
    region = ["--start", "20240301T00", "--end", "20240301T01", "--out", "x"]
    assert _cli(["export", *region, "--amplitude-region", "apac"]) == 2
    err = capsys.readouterr().err
    assert "--amplitude-region" in err and "'apac'" in err


def test_export_command_reads_keys_from_the_config_file(tmp_path: Path, capsys) -> None:
    from accoil_transform.cli import main

    events = list(make_events(datetime(2026, 11, 20, 0, tzinfo=UTC), hours=2))
    with LocalAmplitudeExport(events, api_key="file-key", secret_key="file-secret") as fake:
        config = tmp_path / "accoil.toml"
        config.write_text(
            "[amplitude]\n"
            'amplitude_api_key = "file-key"\n'
            'amplitude_secret_key = "file-secret"\n'
            f'amplitude_base_url = "{fake.url}"\n'
        )
        argv = ["export", "--start", "20261120T00", "--end", "20261120T01"]
        assert main([*argv, "--out", str(tmp_path / "out"), "--config", str(config)]) == 0
        # A flag wins over the file: the wrong secret is rejected.
        code = main(
            [
                *argv,
                "--out",
                str(tmp_path / "x"),
                "--config",
                str(config),
                "--amplitude-secret-key",
                "nope",
            ]
        )
        assert code == 5  # the Export API refused the keys
    out = capsys.readouterr()
    assert list((tmp_path / "out").glob("*.zip"))
    assert "file-secret" not in out.out + out.err


WINDOW = ["--start", "20240301T00", "--end", "20240301T01"]


def test_amplitude_flags_are_named_alike_in_export_and_sync() -> None:
    flags = ("--amplitude-api-key", "--amplitude-secret-key", "--amplitude-region")
    export_help, sync_help = cli("export", "--help").stdout, cli("sync", "--help").stdout
    for flag in (*flags, "--amplitude-base-url"):
        assert flag in export_help and flag in sync_help
    # The old spellings are hidden: in export they meant Amplitude's, elsewhere Accoil's.
    for old in ("--api-key", "--secret-key", "--region", "--base-url"):
        assert f"{old} " not in export_help.replace("--amplitude-", "")


def test_new_flags_and_amplitude_variables(tmp_path: Path) -> None:
    with fake(list(make_events(T0, hours=2))) as server:
        keys = ["--amplitude-api-key", API_KEY, "--amplitude-secret-key", SECRET_KEY]
        proc = cli(
            "export", *WINDOW, "--out", str(tmp_path / "a"), *keys,
            "--amplitude-base-url", server.url, "--amplitude-region", "us",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "deprecated" not in proc.stderr and "1 file(s)" in proc.stdout
        # Every --amplitude-* flag has its AMPLITUDE_* variable (ACCOIL_AMPLITUDE_* too).
        env = {
            "AMPLITUDE_API_KEY": API_KEY,
            "AMPLITUDE_SECRET_KEY": SECRET_KEY,
            "AMPLITUDE_BASE_URL": server.url,
            "AMPLITUDE_REGION": "eu",
        }
        proc = cli("export", *WINDOW, "--out", str(tmp_path / "b"), env=env)
        assert proc.returncode == 0, proc.stderr
        assert list((tmp_path / "b").glob("*.zip"))
        proc = cli(
            "export", *WINDOW, "--out", str(tmp_path / "c"), env=env | {"AMPLITUDE_REGION": "mars"}
        )
        assert proc.returncode == 2 and "'mars'" in proc.stderr
        assert API_KEY not in proc.stdout + proc.stderr


def test_old_spellings_work_for_one_release_with_a_warning(tmp_path: Path) -> None:
    with fake(list(make_events(T0, hours=2))) as server:
        proc = cli(
            "export", *WINDOW, "--out", str(tmp_path),
            "--api-key", API_KEY, "--secret-key", SECRET_KEY,
            "--base-url", server.url, "--region", "us",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert [r.authorization for r in server.requests] == [server.expected_auth()]
    assert list(tmp_path.glob("*.zip"))
    warnings = [line for line in proc.stderr.splitlines() if "deprecated" in line]
    for old, new in (
        ("--api-key", "--amplitude-api-key"),
        ("--secret-key", "--amplitude-secret-key"),
        ("--base-url", "--amplitude-base-url"),
        ("--region", "--amplitude-region"),
    ):
        assert any(f"{old} is deprecated" in w and f"use {new}" in w for w in warnings), old
    assert API_KEY not in proc.stderr + proc.stdout and SECRET_KEY not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
