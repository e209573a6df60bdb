"""``accoil-transform serve-local``: the local Accoil stand-in as a command, until stopped."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests


@pytest.mark.parametrize(
    "command",
    [
        ["-c", "from accoil_transform.cli.serve_local import main; main()"],
        ["-m", "accoil_transform", "serve-local"],
    ],
    ids=["module", "subcommand"],
)
def test_serve_local_command_prints_the_base_url(command: list[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, *command, "--latency-ms", "1", "--api-key", "k2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert base_url.startswith("http://127.0.0.1:")
        resp = requests.post(
            base_url + "/v2/track",
            data=b'{"userId": "u", "event": "E"}',
            headers={"Authorization": "Basic k2", "Content-Type": "application/json"},
            timeout=10,
        )
        assert resp.status_code == 202
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "1 accepted" in err
