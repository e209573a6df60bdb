"""The on-demand benchmark scripts still run, on the bundled sample (so none can rot)."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "amplitude_export_sample.zip"


def _script(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The scripts set POLARS_MAX_THREADS on import; keep that out of later tests.
    monkeypatch.setenv("POLARS_MAX_THREADS", os.environ.get("POLARS_MAX_THREADS", "2"))
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", ROOT / "benchmarks" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_timeline_traces_every_chunk_of_a_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import accoil_transform as at

    assert _script("timeline", monkeypatch).main([str(SAMPLE), "--format", "v2"]) == 0
    out = capsys.readouterr().out
    arrived = [
        int(n.replace(",", "")) for n in re.findall(r"chunk of ([\d,]+) events arrived", out)
    ]
    assert arrived and out.count("transformed") == len(arrived)
    assert sum(arrived) == at.transform(SAMPLE).report.rows_read
    for step in ("identify and group state done", "merge and write done", "end of run"):
        assert step in out


def test_profile_stages_prints_both_tables(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _script("profile_stages", monkeypatch)
    assert module.main(["--zip", str(SAMPLE), "--format", "v2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for stage, _ in module.STAGES:
        assert re.search(rf"^\| {re.escape(stage)} \|", out, re.M), stage
    for stage, _ in module.READER_STAGES:
        assert re.search(
            rf"^\| {re.escape(stage)} \| \d threads? \| [\d.]+ \| [\d.]+ \|$", out, re.M
        )
