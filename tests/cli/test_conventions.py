"""The command line's conventions, tried as a user would: a subprocess, pipes, bad paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from accoil_transform import __version__

from .helpers import cli, user_env

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data" / "amplitude_export_sample.zip"


def test_version(tmp_path: Path) -> None:
    proc = cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"accoil-transform {__version__}"


def test_a_bad_flag_prints_the_subcommands_usage(tmp_path: Path) -> None:
    proc = cli("run", str(SAMPLE), "--no-such-flag", cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage: accoil-transform run" in proc.stderr
    assert "unrecognized arguments: --no-such-flag" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("flag", "target", "expected"),
    [
        ("--out", "folder", "is a folder"),
        ("--out", "missing/calls.ndjson", "does not exist"),
        ("--report", "missing/report.json", "does not exist"),
        ("--quarantine", "a-file/q.ndjson", "is not a folder"),
    ],
)
def test_output_paths_are_checked_before_any_work(
    tmp_path: Path, flag: str, target: str, expected: str
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("")
    proc = cli("run", str(SAMPLE), flag, target, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert f"{flag} {target}" in proc.stderr and expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "folder"]  # nothing written


def test_calls_to_stdout_and_the_summary_to_stderr(tmp_path: Path) -> None:
    proc = cli("run", str(SAMPLE), "--out", "-", "--report", "report.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(lines) == sum(report["calls"].values())
    assert all(json.loads(line)["method"] == "POST" for line in lines)
    assert "rows read" in proc.stderr and "standard output" in proc.stderr
    # the quarantine of the sample's malformed lines goes beside the default out file
    assert (tmp_path / "accoil-dry-run.quarantine.ndjson").exists()


def test_the_report_to_stdout_is_json_alone(tmp_path: Path) -> None:
    proc = cli("run", str(SAMPLE), "--out", "calls.ndjson", "--report", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_read"] == 2004


def test_out_and_report_cannot_both_be_stdout(tmp_path: Path) -> None:
    proc = cli("run", str(SAMPLE), "--out", "-", "--report", "-", cwd=tmp_path)
    assert proc.returncode == 3 and "can't both be standard output" in proc.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    shell = (
        f"{sys.executable} -m accoil_transform run {SAMPLE} --out - 2>err.txt | head -n 1; "
        "echo ${PIPESTATUS[0]} > status.txt"
    )
    proc = subprocess.run(
        ["bash", "-c", shell],
        capture_output=True, text=True, cwd=tmp_path, timeout=180, env=user_env(),
    )  # fmt: skip
    assert len(proc.stdout.splitlines()) == 1
    err = (tmp_path / "err.txt").read_text()
    assert "BrokenPipeError" not in err and "Traceback" not in err
    assert (tmp_path / "status.txt").read_text().strip() == "141"


def test_quiet_prints_nothing_but_errors(tmp_path: Path) -> None:
    proc = cli("run", str(SAMPLE), "-q", cwd=tmp_path, env={"ACCOIL_CONCURENCY": "3"})
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""
    assert (tmp_path / "accoil-dry-run.ndjson").exists()


def test_an_unknown_variable_gets_a_warning_with_the_closest_name(tmp_path: Path) -> None:
    proc = cli("run", str(SAMPLE), cwd=tmp_path, env={"ACCOIL_CONCURENCY": "3"})
    assert proc.returncode == 0
    assert "$ACCOIL_CONCURENCY is not a setting" in proc.stderr
    assert "did you mean $ACCOIL_CONCURRENCY?" in proc.stderr


def test_choices_ignore_case_and_errors_name_the_variable(tmp_path: Path) -> None:
    ok = cli("run", str(SAMPLE), "--out", "c.ndjson", cwd=tmp_path, env={"ACCOIL_FORMAT": "Stream"})
    assert ok.returncode == 0, ok.stderr
    assert '"url":"https://in.accoil.com/v2/track"' in (tmp_path / "c.ndjson").read_text()
    bad = cli("run", str(SAMPLE), cwd=tmp_path, env={"ACCOIL_FORMAT": "xml"})
    assert bad.returncode == 2
    assert "$ACCOIL_FORMAT" in bad.stderr and "v2, stream, segment, v1" in bad.stderr
    assert "{v2,stream,segment,v1}" in cli("run", "--help", cwd=tmp_path).stdout


def test_verbose_after_the_subcommand_is_accepted(tmp_path: Path) -> None:
    proc = cli("run", str(SAMPLE), "-v", "--out", "c.ndjson", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_dash_reads_standard_input(tmp_path: Path) -> None:
    from_file = cli("run", str(SAMPLE), "--out", "file.ndjson", cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    temp = tmp_path / "temp"
    temp.mkdir()
    with SAMPLE.open("rb") as stdin:
        piped = subprocess.run(
            [sys.executable, "-m", "accoil_transform", "run", "-", "--out", "-"],
            stdin=stdin, capture_output=True, cwd=tmp_path, timeout=180,
            env=user_env() | {"TMPDIR": str(temp)},
        )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode() == (tmp_path / "file.ndjson").read_text()
    assert list(temp.iterdir()) == []  # the copy of stdin is gone
    # the sample's malformed lines, read again from the copy of stdin for the quarantine
    quarantine = (tmp_path / "accoil-dry-run.quarantine.ndjson").read_text().splitlines()
    assert len(quarantine) == 4 and all('"raw":"' in line for line in quarantine)
    assert all(json.loads(line)["source"].startswith("<stdin>!") for line in quarantine)


def test_ctrl_c_while_reading_stops_with_130_and_leaves_no_copy_of_stdin(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "accoil_transform", "run", "-", "--report", "report.json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
        env=user_env({"TMPDIR": str(temp)}),
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(SAMPLE.read_bytes()[:1000])  # and more to come: the run waits for it
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(temp.iterdir()):  # the run is copying stdin
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert (
        err.decode().strip() == "accoil-transform run: stopped by SIGINT before any call was sent"
    )
    assert json.loads((tmp_path / "report.json").read_text())["interrupted"] == "SIGINT"
    assert list(temp.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["stream", "v2"])
def test_ctrl_c_while_transforming_stops_with_130_and_keeps_the_old_output(
    tmp_path: Path, fmt: str
) -> None:
    """Calls already made went to a partial file (stream) or an unnamed one (v2): a
    Ctrl-C in the middle of the transform removes them and keeps the old file."""
    export = tmp_path / "export.zip"
    made = subprocess.run(
        [sys.executable, "-m", "accoil_transform.testing.synthetic", "--out", str(export),
         "--events", "200000", "--compresslevel", "1"],
        capture_output=True, timeout=180,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp_path / "calls.ndjson"
    out.write_text("the last run's calls\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "accoil_transform", "run", str(export), "--format", fmt,
         "--out", str(out), "--report", "report.json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=user_env(),
    )  # fmt: skip
    # Past start-up (~0.5 CPU s of imports), inside the transform (~4 CPU s in all).
    deadline, busy = time.monotonic() + 120, psutil.Process(proc.pid)
    while sum(busy.cpu_times()[:2]) < 1.0:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert json.loads((tmp_path / "report.json").read_text())["interrupted"] == "SIGINT"
    assert out.read_text() == "the last run's calls\n"
    assert not list(tmp_path.glob(".calls.ndjson.*"))


def test_the_summary_names_every_file_a_delivery_wrote(tmp_path: Path) -> None:
    from accoil_transform.testing import LocalAccoil

    with LocalAccoil(api_key="k-123") as server:
        args = ["run", str(SAMPLE), "--base-url", server.base_url, "--max-body-bytes", "300"]
        proc = cli(*args, cwd=tmp_path, env={"ACCOIL_API_KEY": "k-123"})
    assert proc.returncode == 1, proc.stderr  # the large calls are rejected for good
    lines = proc.stderr.splitlines()
    for name, path in (("ledger", "accoil-ledger.sqlite"), ("dead letters", "accoil-dead-letter")):
        assert any(line.startswith(name) and path in line for line in lines), proc.stderr
    assert "already sent" in proc.stderr and "k-123" not in proc.stderr


def test_a_terminal_sees_a_progress_bar_of_the_transform(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    out = tmp_path / "c.ndjson"
    pid, fd = pty.fork()
    if pid == 0:  # the child: stderr and stdout are the terminal
        try:
            # A terminal 100 columns wide (a new pseudo-terminal has none: bars would be empty).
            fcntl.ioctl(2, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
            os.chdir(tmp_path)
            os.execve(
                sys.executable,
                [sys.executable, "-m", "accoil_transform", "run", str(SAMPLE), "--out", str(out)],
                user_env(),
            )
        finally:
            os._exit(127)  # never go on running the tests in the forked child
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    assert b"transform" in seen and b"rows" in seen
    assert out.exists()
