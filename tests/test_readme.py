"""The README and docs/rules.md are the user's guide: their commands, examples, option
table and file references must be true."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from accoil_transform.cli import build_parser, main
from accoil_transform.cli._common import _FLAG_NAMES
from accoil_transform.cli._settings import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(README) if kind == lang]


def command_after(marker: str) -> str:
    lines = README.splitlines()
    i = lines.index(marker)
    assert lines[i + 1] == "```bash"
    return lines[i + 2]


def cli_lines() -> list[str]:
    """Every ``accoil-transform`` invocation in a bash block (``&&`` chains split)."""
    out = []
    for body in blocks("bash"):
        for line in body.splitlines():
            for part in line.split("&&"):
                part = part.split(" &")[0].strip()
                words = shlex.split(part, comments=True) if part else []
                words = [w for w in words if "=" not in w or w.startswith("-")][:1]
                if words and words[0].endswith("accoil-transform"):
                    out.append(part)
    return out


def argv_and_env(line: str) -> tuple[list[str], dict[str, str]]:
    words = shlex.split(line.split(" &")[0], comments=True)
    env = {}
    while "=" in words[0] and not words[0].startswith("-"):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    assert words[0].endswith("accoil-transform"), line
    return words[1:], env


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith(("ACCOIL_", "AMPLITUDE_"))]:
        monkeypatch.delenv(var)
    return tmp_path


def test_the_two_commands_open_the_readme_and_ci_runs_the_second():
    run_cmd = command_after("<!-- run-command -->")
    test_cmd = command_after("<!-- test-command -->")
    assert README.index(run_cmd) < README.index(test_cmd) < README.index("## What it does")
    assert "accoil-transform run sample_data/" in run_cmd
    assert "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and 'bash -c "$cmd"' in ci


def test_every_setting_is_in_the_options_table():
    table = README[README.index("## Options") : README.index("## From Amplitude")]
    for s in SETTINGS:
        flag = "--" + _FLAG_NAMES.get(s.name, s.name).replace("_", "-")
        row = next((r for r in table.splitlines() if r.startswith(f"| `{s.name}` ")), None)
        assert row is not None, f"{s.name} is missing from the README's options table"
        assert f"`{flag}" in row and f"[{s.section}]" in row
        if not s.secret and s.default not in (None, [], {}):
            shown = s.default if not isinstance(s.default, list) else s.default[0]
            shown = str(shown).lower() if isinstance(shown, bool) else str(shown).removesuffix(".0")
            assert shown in row, f"{s.name}: default {s.default} not shown"


def test_every_cli_example_parses():
    parser = build_parser()
    lines = cli_lines()
    assert len(lines) >= 5
    for line in lines:
        argv, _ = argv_and_env(line)
        parser.parse_args(argv)


def test_python_examples_run(sandbox):
    scripts = blocks("python")  # docs/scaling.md's Spark example runs in tests/integrations
    assert len(scripts) >= 3
    for script in scripts:
        exec(compile(script, "README.md", "exec"), {"__name__": "__readme__"})
    assert (sandbox / "calls.ndjson").stat().st_size > 0


def test_command_line_examples_run(sandbox, capsys):
    section = README[README.index("### The command line") : README.index("### The notebook")]
    first_block = BLOCK.search(section).group(2)
    for line in first_block.splitlines():
        argv, env = argv_and_env(line)
        assert not env
        assert main(argv) == 0, line
    assert (sandbox / "calls.ndjson").exists() and (sandbox / "by-email.ndjson").exists()


def test_local_stand_in_example_runs(sandbox):
    section = README[README.index("against the local stand-in") : README.index("### The notebook")]
    serve_line, check_line, run_line = BLOCK.search(section).group(2).strip().splitlines()
    serve_argv, _ = argv_and_env(serve_line)
    server = subprocess.Popen(
        [sys.executable, "-m", "accoil_transform", *serve_argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = server.stdout.readline()
        assert "127.0.0.1:8765" in first, first
        argv, env = argv_and_env(check_line)
        checked = subprocess.run(
            [sys.executable, "-m", "accoil_transform", *argv],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stderr
        assert "demo-key" not in checked.stdout + checked.stderr
        argv, env = argv_and_env(run_line)
        done = subprocess.run(
            [sys.executable, "-m", "accoil_transform", *argv, "--ledger", "l.sqlite"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "sent" in done.stderr and "demo-key" not in done.stdout + done.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_readme_is_a_guide_not_a_diary():
    assert len(README.splitlines()) <= 300


def test_no_file_holds_a_path_of_a_development_machine():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"(?<![\w.])/(?:work|root|home/\w+)/")
    found = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".zip", ".gz", ".png", ".parquet"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not found


def test_every_rule_names_files_that_exist():
    rules = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## .*?(?=^## |\Z)", rules, re.M | re.S)
    assert len(sections) >= 6
    for section in sections:
        files = re.findall(r"`((?:\w+/)*\w+\.py)`", section)
        assert files, f"{section.splitlines()[0]} names no file"
        for name in files:
            assert (ROOT / "accoil_transform" / name).is_file(), name
