"""Every file the README's tour writes in the working folder is ignored by git, so that a
user who tries the tour in a clone sees a clean ``git status``."""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from accoil_transform.cli import main
from accoil_transform.cli._settings import SETTINGS
from accoil_transform.testing import LocalAccoil

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)

# What the two commands that open the README write besides the tour's outputs: the
# virtualenv, the editable install's metadata, and the caches of the tools the suite runs.
SETUP_FILES = [
    ".venv/pyvenv.cfg",
    "accoil_transform.egg-info/PKG-INFO",
    "accoil_transform/__pycache__/__init__.cpython-312.pyc",
    ".pytest_cache/v/cache/lastfailed",
    ".hypothesis/examples/x",
    ".ruff_cache/CACHEDIR.TAG",
    ".mypy_cache/3.11/x.json",
]


def section(start: str, end: str) -> str:
    return README[README.index(start) : README.index(end)]


def words(line: str) -> tuple[list[str], dict[str, str]]:
    """The ``accoil-transform`` argv of a shell line, and the variables set before it."""
    found = [p for p in line.split("&&") if "accoil-transform" in p]
    assert len(found) == 1, line
    argv = shlex.split(found[0].split(" &")[0], comments=True)
    env = {}
    while "=" in argv[0]:
        key, value = argv.pop(0).split("=", 1)
        env[key] = value
    assert argv[0].endswith("accoil-transform"), line
    return argv[1:], env


def run_tour(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run command, the Python tour, the command line tour, and a run against the stand-in."""
    lines = README.splitlines()
    run_command = lines[lines.index("<!-- run-command -->") + 2]
    assert main(words(run_command)[0]) == 0, run_command

    tour = section("## A five-minute tour", "## Options")
    for kind, body in BLOCK.findall(tour):
        if kind == "python":
            exec(compile(body, "README.md", "exec"), {"__name__": "__readme__"})

    command_line = BLOCK.search(section("### The command line", "### The notebook")).group(2)
    for line in command_line.strip().splitlines():
        assert main(words(line)[0]) == 0, line

    stand_in = section("against the local stand-in", "### The notebook")
    run_line = BLOCK.search(stand_in).group(2).strip().splitlines()[-1]
    argv, env = words(run_line)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with LocalAccoil(api_key=env["ACCOIL_API_KEY"]) as server:
        argv[argv.index("--base-url") + 1] = server.base_url
        assert main(argv) == 0, run_line
    assert server.accepted


def ignored(names: list[str]) -> set[str]:
    """The names (relative to the repository's root) its .gitignore ignores."""
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=ROOT,
        input="\n".join(names) + "\n",
        capture_output=True,
        text=True,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: none of them is ignored
    return set(done.stdout.splitlines())


def test_the_tour_writes_only_ignored_files(tmp_path, monkeypatch):
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith(("ACCOIL_", "AMPLITUDE_"))]:
        monkeypatch.delenv(var)

    run_tour(monkeypatch)

    written = sorted(
        (Path(parent) / name).relative_to(tmp_path).as_posix()
        for parent, _, files in os.walk(tmp_path)
        for name in files
    )
    assert "accoil-ledger.sqlite" in written and "calls.quarantine.ndjson" in written, written
    missing = sorted(set(written) - ignored(written))
    assert not missing, f"the README's tour writes files .gitignore does not cover: {missing}"


def test_default_output_paths_are_ignored():
    """Where the tour's other commands (sync, export, a run with a key) write by default,
    and what the two opening commands write."""
    defaults = {s.name: s.default for s in SETTINGS if s.kind is Path and s.default is not None}
    assert {"out", "ledger", "dead_letter", "export_dir"} <= set(defaults)
    names = list(SETUP_FILES)
    for name, path in defaults.items():
        if path.suffix == ".sqlite":  # SQLite's and the run lock's companions
            names += [f"{path}{end}" for end in ("", "-wal", "-shm", ".lock")]
        elif not path.suffix:  # a folder
            names.append(f"{path}/20261101T00.zip")
        else:
            names.append(path.as_posix())
        if name == "out":
            names.append(f"{path.with_suffix('')}.quarantine.ndjson")
    missing = sorted(set(names) - ignored(names))
    assert not missing, f".gitignore does not cover: {missing}"
