"""Running and syncing from a database, as a user does (issue #19, items 7 and 8).

``accoil-transform run URI --table NAME`` and ``sync --since-last --source URI --table
NAME`` in a subprocess, against a PostgreSQL server and DuckDB files the tests made, and a
local Accoil on 127.0.0.1. Two syncs with rows loaded between them deliver every call
exactly once; a failed sync moves nothing and the next one sends only the rest; the
password never shows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import accoil_transform as at
from accoil_transform.testing import LocalAccoil
from tests.conftest import POSTGRES_PASSWORD, PostgresServer
from tests.read.test_database import (
    calls_by_id,
    load_duckdb,
    load_postgres,
    more_rows,
    seed_rows,
    write_ndjson,
)

from .helpers import cli

ACCOIL_KEY = "db-sync-accoil-key"
CONFIG = at.TransformConfig()


def encoded_password(uri: str) -> str:
    return uri.split(":")[2].split("@")[0]


def assert_no_password(uri: str, *texts: str) -> None:
    for text in texts:
        assert POSTGRES_PASSWORD not in text
        assert encoded_password(uri) not in text


def delivery_env(tmp_path: Path, accoil: LocalAccoil, **extra: str) -> dict[str, str]:
    return {
        "ACCOIL_API_KEY": ACCOIL_KEY,
        "ACCOIL_BASE_URL": accoil.base_url,
        "ACCOIL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "ACCOIL_DEAD_LETTER": str(tmp_path / "dead-letter.ndjson"),
        "ACCOIL_MAX_ATTEMPTS": "1",
        "ACCOIL_MAX_RETRY_SECONDS": "2",
        **extra,
    }


def delivered(accoil: LocalAccoil) -> Counter[tuple[str, str]]:
    """The calls Accoil accepted, as (kind, canonical body), counted."""
    return Counter((c.kind, json.dumps(c.body, sort_keys=True)) for c in accoil.accepted)


def dry_run_lines(path: Path) -> list[Any]:
    return sorted(
        (json.loads(line) for line in path.read_text().splitlines()),
        key=lambda x: json.dumps(x, sort_keys=True),
    )


# --------------------------------------------------------------------------- run


def test_run_from_a_postgres_table_writes_the_calls_of_the_export_lines(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    uri = postgres_server.uri()
    load_postgres(uri, "cli_run.events", seed_rows())
    write_ndjson(tmp_path / "lines.json", seed_rows())
    flags = ("--user-id", "user_properties.email", "--property", "step")
    table = cli(
        "run", uri, "--table", "cli_run.events", "--out", "table.ndjson",
        "--report", "report.json", *flags, cwd=tmp_path,
    )  # fmt: skip
    lines = cli("run", "lines.json", "--out", "lines.ndjson", *flags, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert lines.returncode == 0, lines.stderr
    got = dry_run_lines(tmp_path / "table.ndjson")
    assert got == dry_run_lines(tmp_path / "lines.ndjson") and len(got) > 10
    report = (tmp_path / "report.json").read_text()
    assert json.loads(report)["rows_read"] == 10
    assert_no_password(uri, table.stdout, table.stderr, report)
    assert_no_password(uri, *(p.read_text() for p in tmp_path.glob("*.ndjson")))


def test_run_from_a_duckdb_file_and_a_toml_source(tmp_path: Path) -> None:
    path = load_duckdb(tmp_path / "warehouse.duckdb", "analytics.events", seed_rows())
    write_ndjson(tmp_path / "lines.json", seed_rows())
    (tmp_path / "accoil.toml").write_text(
        f'[source]\nuri = "duckdb:///{path}"\nquery = "SELECT * FROM analytics.events"\n'
    )
    toml = cli("run", "--config", "accoil.toml", "--out", "toml.ndjson", cwd=tmp_path)
    flag = cli(
        "run", f"duckdb:///{path}", "--table", "analytics.events", "--out", "flag.ndjson",
        cwd=tmp_path,
    )  # fmt: skip
    lines = cli("run", "lines.json", "--out", "lines.ndjson", cwd=tmp_path)
    for proc in (toml, flag, lines):
        assert proc.returncode == 0, proc.stderr
    expected = dry_run_lines(tmp_path / "lines.ndjson")
    assert dry_run_lines(tmp_path / "toml.ndjson") == expected
    assert dry_run_lines(tmp_path / "flag.ndjson") == expected


def test_database_errors_are_clear_and_never_show_the_password(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    uri = postgres_server.uri()
    wrong = uri.replace(encoded_password(uri), "An0ther%23secret")
    bad_login = cli("run", wrong, "--table", "x", cwd=tmp_path)
    assert bad_login.returncode == 3 and "can't connect" in bad_login.stderr
    assert "An0ther" not in bad_login.stderr and "accoil:****@" in bad_login.stderr

    no_table = cli("run", uri, "--table", "nowhere.events", cwd=tmp_path)
    assert no_table.returncode == 3 and "nowhere" in no_table.stderr
    neither = cli("run", uri, cwd=tmp_path)
    assert neither.returncode == 2 and "give a table (--table NAME)" in neither.stderr
    files = cli("run", "lines.json", "--table", "events", cwd=tmp_path)
    assert files.returncode == 2 and "--table reads from a database" in files.stderr
    shown = cli("config", "check", env={"ACCOIL_URI": uri, "ACCOIL_TABLE": "e"}, cwd=tmp_path)
    assert shown.returncode == 0 and "****" in shown.stdout
    for proc in (bad_login, no_table, neither, files, shown):
        assert_no_password(uri, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing written


# --------------------------------------------------------------------------- sync


def test_two_syncs_from_a_table_deliver_every_call_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    uri, table = postgres_server.uri(), "sync_once.events"
    first = seed_rows()
    load_postgres(uri, table, first)
    expected = calls_by_id(write_ndjson(tmp_path / "first.json", first), CONFIG)
    with LocalAccoil(api_key=ACCOIL_KEY) as accoil:
        env = delivery_env(tmp_path, accoil)
        sync = ("sync", "--since-last", "--source", uri, "--table", table)

        one = cli(*sync, env=env, cwd=tmp_path)
        assert one.returncode == 0, one.stderr
        assert delivered(accoil) == Counter(expected.values())
        assert "no watermark yet" in one.stderr
        assert "server_upload_time = 2025-02-18 06:05:47.344" in one.stderr

        # Rows loaded later: uploaded after the first run, one of them with an event
        # time long before every other row's.
        later = more_rows(first, 4, dt.datetime(2025, 3, 1, 12))
        load_postgres(uri, table, later)
        expected |= calls_by_id(write_ndjson(tmp_path / "later.json", later), CONFIG)
        two = cli(*sync, env=env, cwd=tmp_path)
        assert two.returncode == 0, two.stderr
        assert "4 row(s) read" in two.stderr
        assert delivered(accoil) == Counter(expected.values())  # each call exactly once
        late = [c for c in accoil.accepted if c.body.get("event") == "late_event"]
        assert len(late) == 1 and late[0].body["timestamp"].startswith("2024-01-02T03:04:05")

        sent = len(accoil.accepted)
        three = cli(*sync, env=env, cwd=tmp_path)
        assert three.returncode == 0, three.stderr
        assert "nothing new to sync" in three.stderr
        assert len(accoil.accepted) == sent
    for proc in (one, two, three):
        assert_no_password(uri, proc.stdout, proc.stderr)


def test_a_failed_sync_moves_nothing_and_the_next_sends_only_the_rest(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    uri, table = postgres_server.uri(), "sync_retry.events"
    rows = seed_rows()
    load_postgres(uri, table, rows)
    expected = calls_by_id(write_ndjson(tmp_path / "rows.json", rows), CONFIG)
    with LocalAccoil(api_key=ACCOIL_KEY) as accoil:
        env = delivery_env(tmp_path, accoil, ACCOIL_CONCURRENCY="1")
        sync = ("sync", "--source", uri, "--table", table)
        accoil.faults.script(500, count=3)
        failed = cli(*sync, env=env, cwd=tmp_path)
        assert failed.returncode == 1, failed.stderr
        assert "watermark was not moved" in failed.stderr
        assert len(accoil.accepted) == len(expected) - 3

        again = cli(*sync, env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "no watermark yet" in again.stderr  # the same rows again
        assert delivered(accoil) == Counter(expected.values())  # the 3, and nothing twice


def test_sync_from_a_duckdb_query_with_a_watermark_and_a_start(tmp_path: Path) -> None:
    rows = seed_rows()
    path = load_duckdb(tmp_path / "warehouse.duckdb", "analytics.events", rows)
    start = dt.datetime(2025, 2, 13)
    taken = [r for r in rows if r["server_upload_time"] >= start]
    assert 0 < len(taken) < len(rows)
    with LocalAccoil(api_key=ACCOIL_KEY) as accoil:
        env = delivery_env(tmp_path, accoil)
        sync = (
            "sync", "--source", f"duckdb:///{path}",
            "--query", "SELECT * FROM analytics.events WHERE event_type <> 'test_event_01'",
            "--watermark", "SERVER_UPLOAD_TIME", "--start", "20250213T00",
        )  # fmt: skip
        dry = cli(*sync, "--dry-run", "--out", "dry.ndjson", env=env, cwd=tmp_path)
        assert dry.returncode == 0, dry.stderr
        assert "the watermark did not move" in dry.stderr and not accoil.accepted

        one = cli(*sync, env=env, cwd=tmp_path)
        assert one.returncode == 0, one.stderr
        kept = [r for r in taken if r["event_type"] != "test_event_01"]
        expected = calls_by_id(write_ndjson(tmp_path / "kept.json", kept), CONFIG)
        assert delivered(accoil) == Counter(expected.values())

        later = more_rows(rows, 2, dt.datetime(2025, 4, 1))
        load_duckdb(path, "analytics.events", later)
        expected |= calls_by_id(write_ndjson(tmp_path / "later.json", later), CONFIG)
        two = cli(*sync, env=env, cwd=tmp_path)
        assert two.returncode == 0, two.stderr
        assert delivered(accoil) == Counter(expected.values())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--table", "e", "--until", "20250101T00"), "--until is for the Export API sync"),
        (("--table", "e", "--rewind-to", "20250101T00"), "--rewind-to moves the Export API"),
        (("--table", "a", "--query", "SELECT 1"), "are both set"),
        ((), "give a table (--table NAME)"),
    ],
)
def test_sync_from_a_table_refuses_what_does_not_apply(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    uri = "postgresql://someone:Pw%2Fsecret@127.0.0.1:1/db"
    proc = cli("sync", "--source", uri, *extra, env={"ACCOIL_API_KEY": "k"}, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Pw" not in proc.stderr and "secret" not in proc.stderr
