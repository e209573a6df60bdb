"""``accoil-transform check``, run as a user runs it (a subprocess) against the local Accoil
stand-in: an empty ``POST /segment`` that records nothing, read into exit codes 0 (the URL
answers, the key is accepted), 2 (no key, not Accoil), 4 (key refused) and 7 (down or
unreachable). The key never appears in the output."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from accoil_transform.testing import LocalAccoil

from .helpers import cli

KEY = "check-key-5b1e9c0a77"


def check(
    *args: str, key: str | None = KEY, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {} if key is None else {"ACCOIL_API_KEY": key}
    return cli("check", *args, env=env, cwd=cwd, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_good_key_passes_and_nothing_is_recorded() -> None:
    with LocalAccoil(api_key=KEY) as accoil:
        proc = check("--base-url", accoil.base_url)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith("OK: ")
        assert accoil.base_url in lines[0]
        assert accoil.accepted == []  # the check is no call
        assert [(r.path, r.status) for r in accoil.requests] == [("/segment", 200)]
        assert KEY not in proc.stdout + proc.stderr


def test_a_wrong_key_is_exit_4_and_never_shown() -> None:
    with LocalAccoil(api_key=KEY) as accoil:
        base_url = accoil.base_url
        proc = check("--base-url", base_url, key="wrong-key-31f0c2")
    assert proc.returncode == 4
    assert "refused the API key" in proc.stderr and base_url in proc.stderr
    assert "wrong-key-31f0c2" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_key_and_url_come_from_flags_or_the_config_file(tmp_path: Path) -> None:
    with LocalAccoil(api_key=KEY) as accoil:
        config = tmp_path / "accoil.toml"
        config.write_text(f'[delivery]\napi_key = "{KEY}"\nbase_url = "{accoil.base_url}"\n')
        assert check("--config", str(config), key=None).returncode == 0
        assert check("--api-key", KEY, "--base-url", accoil.base_url, key=None).returncode == 0
        # A staging key loses its stg_ prefix, as in a run.
        assert check("--base-url", accoil.base_url, key="stg_" + KEY).returncode == 0
        # A flag wins over the file.
        proc = check("--config", str(config), "--api-key", "flag-key-9a", key=None)
    assert proc.returncode == 4 and "flag-key-9a" not in proc.stderr


def test_no_key_is_a_usage_error() -> None:
    proc = check("--base-url", "http://127.0.0.1:9", key=None)
    assert proc.returncode == 2
    assert "ACCOIL_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_and_down_are_exit_7() -> None:
    proc = check("--base-url", f"http://127.0.0.1:{free_port()}", "--timeout", "5")
    assert proc.returncode == 7
    assert "unreachable" in proc.stderr and "Traceback" not in proc.stderr
    with LocalAccoil(api_key=KEY) as accoil:
        accoil.faults.script(503)
        proc = check("--base-url", accoil.base_url)
    assert proc.returncode == 7 and "503" in proc.stderr


def test_a_url_that_is_not_accoil_is_a_usage_error() -> None:
    with LocalAccoil(api_key=KEY) as accoil:
        proc = check("--base-url", accoil.base_url + "/not-accoil")
    assert proc.returncode == 2
    assert "404" in proc.stderr and "--base-url" in proc.stderr


def test_help_says_what_is_sent() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "accoil_transform", "check", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "POST <base URL>/segment" in proc.stdout and "records no data" in proc.stdout
