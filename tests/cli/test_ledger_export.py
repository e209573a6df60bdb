"""``accoil-transform ledger export``: a SQLite ledger as the Spark path's acknowledgements table."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from accoil_transform.cli import ledger as ledger_cli
from accoil_transform.delivery import Destination, Ledger

from .helpers import cli

KEY = "sk-export-test-77aa"


def make_ledger(path: Path) -> tuple[str, str]:
    one = Destination.resolve(KEY, "http://127.0.0.1:9").id
    two = Destination.resolve(KEY, None).id
    with Ledger(path, one) as ledger:
        ledger.record(["v2:identify:u1:x", "v2:track:u:e1:x", "v2:group-account:a:x"], wait=True)
        ledger.record(["v2:track:u:bad:x"], status=400, wait=True)
    with Ledger(path, two) as ledger:
        ledger.record(["v2:track:u:e2:x"], wait=True)
    return one, two


def read(folder: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in sorted(folder.glob("*.parquet"))])


def check_table(out: Path, one: str, two: str) -> None:
    acked = read(out).sort("call_id")
    assert acked.columns == ["destination", "call_id", "kind", "acked_at"]
    assert acked.select("destination", "call_id", "kind").rows() == [
        (one, "v2:group-account:a:x", "group"),
        (one, "v2:identify:u1:x", "identify"),
        (one, "v2:track:u:e1:x", "track"),
        (two, "v2:track:u:e2:x", "track"),
    ]
    rejected = read(out / "_rejected")
    assert rejected.select("destination", "call_id", "status").rows() == [
        (one, "v2:track:u:bad:x", 400)
    ]
    for f in out.rglob("*"):
        assert not f.is_file() or KEY.encode() not in f.read_bytes()
    assert not list(out.rglob(".*"))  # no temporary file left


def test_export_writes_the_acks_table(tmp_path: Path, capsys) -> None:
    one, two = make_ledger(tmp_path / "ledger.sqlite")
    args = argparse.Namespace(
        to=str(tmp_path / "acks"), ledger=tmp_path / "ledger.sqlite", config=None
    )
    assert ledger_cli.main(args) == 0
    assert "exported 4 acknowledged and 1 rejected calls" in capsys.readouterr().out
    check_table(tmp_path / "acks", one, two)


def test_export_of_a_missing_ledger_is_an_input_error(tmp_path: Path, capsys) -> None:
    args = argparse.Namespace(to=str(tmp_path / "acks"), ledger=tmp_path / "no.sqlite", config=None)
    assert ledger_cli.main(args) == 3
    assert "no ledger here" in capsys.readouterr().err
    assert not (tmp_path / "acks").exists()


def test_ledger_export_command(tmp_path: Path) -> None:
    one, two = make_ledger(tmp_path / "ledger.sqlite")
    proc = cli("ledger", "export", "--to", "acks", "--ledger", "ledger.sqlite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "exported 4 acknowledged and 1 rejected calls" in proc.stdout
    check_table(tmp_path / "acks", one, two)
    # the default ledger comes from ACCOIL_LEDGER, as for run and sync
    env = {"ACCOIL_LEDGER": str(tmp_path / "ledger.sqlite")}
    proc = cli("ledger", "export", "--to", "acks2", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_table(tmp_path / "acks2", one, two)
