"""Reading straight from a database (issue #19, item 7): PostgreSQL, DuckDB and SQLite.

Real rows of Fivetran's Amplitude ``EVENT`` table (``fixtures/``) are loaded into real
databases started here (a PostgreSQL server of the session, DuckDB and SQLite files),
typed as a loader types them (times as TIMESTAMP, ids as BIGINT, nested columns as JSON
text or ``jsonb``), and read through ADBC; each read must give the same calls as the
Export-line form (NDJSON) of the same rows. The password of a URI never shows.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import pickle
import sqlite3
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import accoil_transform as at
from accoil_transform.config import ReadOptions
from accoil_transform.errors import ConfigError, InputError
from accoil_transform.read import DatabaseSource, Watermark, _database, mask_uri
from accoil_transform.read._database import quote_name, typed_value
from tests.conftest import POSTGRES_PASSWORD, PostgresServer

FIXTURE = Path(__file__).parent / "fixtures" / "fivetran_amplitude_event_data.csv"
NESTED = ("event_properties", "user_properties", "groups", "group_properties", "data")
TIMES = (
    "server_upload_time",
    "_fivetran_synced",
    "client_event_time",
    "client_upload_time",
    "event_time",
    "processed_time",
    "server_received_time",
    "user_creation_time",
)
INTS = ("id", "amplitude_id", "session_id", "event_type_id")
#: Groups given to some rows (the seed rows all hold ``{}``), in the Export API's shape.
GROUPS: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {
    0: ({"org": ["7"]}, {"org": {"7": {"plan": "pro", "seats": 12, "name": "Ünïcode Co"}}}),
    2: ({"org": ["7", "10"]}, {"org": {"10": {"plan": "free"}}}),
}
CONFIGS = {
    "default": at.TransformConfig(),
    "email, properties": at.TransformConfig(
        user_id="user_properties.email", properties=["Cohort", "step"]
    ),
}


# --------------------------------------------------------------------------- the rows


def seed_rows() -> list[dict[str, Any]]:
    """The fixture's rows as a loader types them: times as datetimes (UTC, naive), ids
    as integers, nested columns as JSON text, empty cells as NULL; groups on some rows,
    the email in user_properties, and a step in event_properties."""
    with FIXTURE.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for i, row in enumerate(rows):
        typed: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
        nested = {name: json.loads(row[name]) if row[name] else None for name in NESTED}
        nested["user_properties"]["email"] = row["user_id"]
        nested["event_properties"]["step"] = i
        nested["groups"], nested["group_properties"] = GROUPS.get(i, ({}, {}))
        for name, value in nested.items():
            typed[name] = None if value is None else json.dumps(value, ensure_ascii=False)
        typed["_insert_id"] = typed["_insert_id"] or f"ins-{i}"
        for name in TIMES:
            typed[name] = None if typed[name] is None else dt.datetime.fromisoformat(typed[name])
        for name in INTS:
            typed[name] = None if typed[name] is None else int(typed[name])
        out.append(typed)
    return out


def more_rows(base: list[dict[str, Any]], n: int, uploaded: dt.datetime) -> list[dict[str, Any]]:
    """``n`` new rows made from ``base``: new ids, uploaded from ``uploaded`` on (a second
    apart). The last is a late row: its event time is before every other's."""
    out = []
    for i in range(n):
        row = dict(base[i % len(base)])
        key = f"{uploaded.isoformat()}-{i}"
        row["uuid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, key))
        row["_insert_id"] = f"ins-{key}"
        row["id"] = 1_000_000 + i
        row["server_upload_time"] = uploaded + dt.timedelta(seconds=i)
        row["_fivetran_synced"] = uploaded + dt.timedelta(minutes=5)
        if i == n - 1:
            row["event_time"] = dt.datetime(2024, 1, 2, 3, 4, 5, 678000)
            row["event_type"] = "late_event"
        out.append(row)
    return out


def export_line(row: dict[str, Any]) -> dict[str, Any]:
    """A warehouse row as an Export API line: nested objects, ``$insert_id``, export times."""
    line = {k: v for k, v in row.items() if k != "_insert_id"}
    line["$insert_id"] = row["_insert_id"]
    for name in NESTED:
        line[name] = None if row[name] is None else json.loads(row[name])
    for name in TIMES:
        if row[name] is not None:
            line[name] = row[name].strftime("%Y-%m-%d %H:%M:%S.%f")
    return line


def write_ndjson(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(export_line(r), ensure_ascii=False) + "\n" for r in rows), "utf-8"
    )
    return path


def arrow_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as a typed Arrow table: TIMESTAMP, BIGINT, the rest text."""
    names = list(rows[0])

    def kind(name: str) -> pa.DataType:
        if name in TIMES:
            return pa.timestamp("us")
        return pa.int64() if name in INTS else pa.string()

    return pa.table({n: pa.array([r[n] for r in rows], kind(n)) for n in names})


def bodies(source: Any, config: at.TransformConfig, fmt: str = "v2") -> list[tuple[str, Any]]:
    """Every call of a run, as (kind, parsed body), in a stable order."""
    res = at.transform(source, config)
    calls = at.build_calls(res.tracks, res.identifies, res.groups, fmt)
    return sorted(
        ((kind, json.loads(body)) for kind, body in calls.select("kind", "body").iter_rows()),
        key=lambda kb: (kb[0], json.dumps(kb[1], sort_keys=True)),
    )


def calls_by_id(source: Any, config: at.TransformConfig, fmt: str = "v2") -> dict[str, Any]:
    """call id -> (kind, canonical body), for the calls of a run."""
    res = at.transform(source, config)
    calls = at.build_calls(res.tracks, res.identifies, res.groups, fmt)
    return {
        call_id: (kind, json.dumps(json.loads(body), sort_keys=True))
        for kind, call_id, body in calls.select("kind", "call_id", "body").iter_rows()
    }


# --------------------------------------------------------------------------- loading


def load_postgres(uri: str, table: str, rows: list[dict[str, Any]], *, jsonb: bool = False) -> None:
    """Append ``rows`` to ``table`` (``schema.name``), created as a loader would; with
    ``jsonb``, create it with nested columns as ``jsonb`` and times as ``timestamptz``."""
    import adbc_driver_postgresql.dbapi as pg

    schema, name = table.split(".")
    with pg.connect(uri, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        if not jsonb:
            cursor.adbc_ingest(name, arrow_table(rows), mode="create_append", db_schema_name=schema)
            return
        staging = f"{name}_staging"
        cursor.adbc_ingest(staging, arrow_table(rows), mode="replace", db_schema_name=schema)
        cursor.execute(f"CREATE TABLE {table} AS SELECT * FROM {schema}.{staging} LIMIT 0")
        for column in NESTED:
            cursor.execute(
                f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE jsonb USING "{column}"::jsonb'
            )
        for column in TIMES:
            cursor.execute(
                f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE timestamptz '
                f"USING \"{column}\" AT TIME ZONE 'UTC'"
            )
        columns = ", ".join(
            f'"{c}"::jsonb'
            if c in NESTED
            else f"\"{c}\" AT TIME ZONE 'UTC'"
            if c in TIMES
            else f'"{c}"'
            for c in rows[0]
        )
        cursor.execute(f"INSERT INTO {table} SELECT {columns} FROM {schema}.{staging}")
        cursor.execute(f"DROP TABLE {schema}.{staging}")


def load_duckdb(path: Path, table: str, rows: list[dict[str, Any]]) -> Path:
    """Append ``rows`` to ``table`` (``schema.name``) of the DuckDB file ``path``."""
    import duckdb

    schema = table.split(".")[0]
    incoming = arrow_table(rows)
    con = duckdb.connect(str(path))
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.register("incoming", incoming)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM incoming LIMIT 0")
        con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
    finally:
        con.close()
    return path


def load_sqlite(path: Path, table: str, rows: list[dict[str, Any]]) -> Path:
    """Append ``rows`` to ``table`` of the SQLite file ``path``: times as ISO text."""
    names = list(rows[0])
    with sqlite3.connect(path) as con:
        quoted = ", ".join(f'"{n}"' for n in names)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({quoted})")
        con.executemany(
            f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})",
            [
                [v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v for v in r.values()]
                for r in rows
            ],
        )
    con.close()
    return path


@pytest.fixture(scope="module")
def pg_events(postgres_server: PostgresServer) -> str:
    """The seed rows in PostgreSQL, as ``analytics.events`` (text) and
    ``analytics.events_jsonb`` (jsonb, timestamptz); the server's URI."""
    uri = postgres_server.uri()
    rows = seed_rows()
    load_postgres(uri, "analytics.events", rows)
    load_postgres(uri, "analytics.events_jsonb", rows, jsonb=True)
    return uri


@pytest.fixture
def expected(tmp_path: Path) -> Path:
    """The Export-line form of the seed rows."""
    return write_ndjson(tmp_path / "export-lines.json", seed_rows())


# --------------------------------------------------------------------------- same calls


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("table", ["analytics.events", "analytics.events_jsonb"])
def test_a_postgres_table_gives_the_calls_of_the_export_lines(
    pg_events: str, expected: Path, table: str, config: at.TransformConfig
) -> None:
    got = bodies(DatabaseSource(pg_events, table=table), config)
    assert got == bodies(expected, config)
    assert {kind for kind, _ in got} == {"track", "identify", "group"}


def test_a_postgres_query_gives_the_same_calls(pg_events: str, expected: Path) -> None:
    query = "SELECT * FROM analytics.events WHERE event_type IS NOT NULL ORDER BY id;"
    config = CONFIGS["email, properties"]
    assert bodies(DatabaseSource(pg_events, query=query), config) == bodies(expected, config)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_duckdb_file_gives_the_same_calls(
    tmp_path: Path, expected: Path, config: at.TransformConfig
) -> None:
    path = load_duckdb(tmp_path / "warehouse.duckdb", "analytics.events", seed_rows())
    source = DatabaseSource(f"duckdb:///{path}", table="analytics.events")
    assert bodies(source, config) == bodies(expected, config)
    query = DatabaseSource(f"duckdb:///{path}", query="select * from analytics.events")
    assert bodies(query, config) == bodies(expected, config)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_sqlite_file_gives_the_same_calls(
    tmp_path: Path, expected: Path, config: at.TransformConfig
) -> None:
    path = load_sqlite(tmp_path / "warehouse.sqlite", "events", seed_rows())
    source = DatabaseSource(f"sqlite:///{path}", table="events")
    assert bodies(source, config) == bodies(expected, config)


def test_read_events_and_run_take_a_database_source(
    tmp_path: Path, pg_events: str, expected: Path
) -> None:
    source = DatabaseSource(pg_events, table="analytics.events")
    frames = list(at.read_events(source))
    assert sum(f.height for f in frames) == 10
    assert set(frames[0]["_source"].unique()) == {source.name}
    out = tmp_path / "calls.ndjson"
    result = at.run([source], options=at.RunOptions(dry_run=True, out=out))
    assert result.report.rows_read == 10
    assert len(out.read_text().splitlines()) == sum(result.report.calls.values())
    assert POSTGRES_PASSWORD not in out.read_text()


# --------------------------------------------------------------------------- streaming


def test_a_large_table_streams_in_slices(tmp_path: Path) -> None:
    rows = more_rows(seed_rows(), 3000, dt.datetime(2025, 3, 1))
    path = load_duckdb(tmp_path / "big.duckdb", "main.events", rows)
    source = DatabaseSource(f"duckdb:///{path}", table="events")
    options = ReadOptions(chunk_bytes=1 << 20, table_row_bytes=1 << 10)  # 1,024 rows a slice
    sizes = [batch.num_rows for batch in source.read(options)]
    assert sum(sizes) == 3000 and len(sizes) >= 2 and max(sizes) <= 2048
    assert source.progress.rows == 3000 and source.progress.finished


def test_the_capsule_interface_reads_it_too(tmp_path: Path) -> None:
    path = load_duckdb(tmp_path / "w.duckdb", "analytics.events", seed_rows())
    source = DatabaseSource(f"duckdb:///{path}", table="analytics.events")
    table = pa.RecordBatchReader.from_stream(source).read_all()
    assert table.num_rows == 10 and "server_upload_time" in table.column_names


# --------------------------------------------------------------------------- incremental


def test_incremental_reads_past_the_watermark_with_a_bound_parameter(tmp_path: Path) -> None:
    rows = seed_rows()
    path = load_duckdb(tmp_path / "w.duckdb", "analytics.events", rows)
    source = DatabaseSource(f"duckdb:///{path}", table="analytics.events")
    first = source.incremental("server_upload_time")
    assert first.sql() == 'SELECT * FROM "analytics"."events"'
    assert pa.RecordBatchReader.from_stream(first).read_all().num_rows == 10
    mark = first.progress.watermark
    assert mark is not None and mark.text == "2025-02-18 06:05:47.344000"
    back = Watermark.loads(mark.dumps())
    assert back.text == mark.text and back.batch.schema == mark.batch.schema

    after = source.incremental("server_upload_time", mark)
    assert after.sql() == (
        'SELECT * FROM "analytics"."events" WHERE "server_upload_time" > ?'
    )  # the value is bound, never in the SQL
    assert pa.RecordBatchReader.from_stream(after).read_all().num_rows == 0
    load_duckdb(path, "analytics.events", more_rows(rows, 3, dt.datetime(2025, 3, 1)))
    again = source.incremental("server_upload_time", mark)
    assert pa.RecordBatchReader.from_stream(again).read_all().num_rows == 3
    assert again.progress.watermark is not None
    assert again.progress.watermark.text == "2025-03-01 00:00:02"

    started = source.incremental("SERVER_UPLOAD_TIME", start="20250213T06")
    got = pa.RecordBatchReader.from_stream(started).read_all()
    assert got.num_rows == 6  # 3 seed rows uploaded 2025-02-13 06:05 on, and the 3 new


def test_incremental_in_postgres_binds_the_typed_value(pg_events: str) -> None:
    for table in ("analytics.events", "analytics.events_jsonb"):
        source = DatabaseSource(pg_events, table=table)
        first = source.incremental("server_upload_time", start="2025-02-13T06:00:00Z")
        assert first.sql().endswith(
            "WHERE \"server_upload_time\" >= current_setting('accoil.watermark')::"
            + ("timestamptz" if table.endswith("jsonb") else "timestamp")
        )  # the value is bound to the session setting, never written into the SQL
        assert pa.RecordBatchReader.from_stream(first).read_all().num_rows == 3
        mark = first.progress.watermark
        assert mark is not None and mark.text.startswith("2025-02-18 06:05:47.344")
        rest = source.incremental("server_upload_time", Watermark.loads(mark.dumps()))
        assert pa.RecordBatchReader.from_stream(rest).read_all().num_rows == 0


def test_an_incremental_postgres_read_streams_in_slices(postgres_server: PostgresServer) -> None:
    uri = postgres_server.uri()
    load_postgres(uri, "big.events", more_rows(seed_rows(), 6000, dt.datetime(2025, 3, 1)))
    source = DatabaseSource(uri, table="big.events").incremental(
        "server_upload_time", start="2025-03-01T00:10:00"
    )  # 600 s in: 5,400 rows
    options = ReadOptions(chunk_bytes=1 << 20, table_row_bytes=1 << 8)
    sizes = [batch.num_rows for batch in source.read(options)]
    assert sum(sizes) == 5400 and max(sizes) < 5400  # a stream, not the result at once
    assert source.progress.watermark is not None
    assert source.progress.watermark.text == "2025-03-01 01:39:59"


def test_typed_start_values() -> None:
    assert typed_value("20250201T05", pa.timestamp("us"), "t").column(0)[0].as_py() == (
        dt.datetime(2025, 2, 1, 5)
    )
    aware = typed_value("2025-02-01T05:00:00+02:00", pa.timestamp("us", tz="UTC"), "t")
    assert aware.column(0)[0].as_py() == dt.datetime(2025, 2, 1, 3, tzinfo=dt.UTC)
    assert typed_value("42", pa.int64(), "n").column(0)[0].as_py() == 42
    assert typed_value("2025-02-01", pa.string(), "s").column(0)[0].as_py() == "2025-02-01"
    with pytest.raises(ConfigError, match="YYYYMMDDTHH or ISO 8601"):
        typed_value("yesterday", pa.timestamp("us"), "t")


# --------------------------------------------------------------------------- names


def test_table_names_are_quoted_per_dialect() -> None:
    pg, snow, bq = (
        _database._POSTGRES,
        _database._DIALECTS["snowflake"],
        _database._DIALECTS["bigquery"],
    )
    assert quote_name("analytics.events", pg) == '"analytics"."events"'
    assert quote_name('analytics."Odd.Name"', pg) == '"analytics"."Odd.Name"'
    assert quote_name("events; DROP TABLE x", pg) == '"events; DROP TABLE x"'
    assert quote_name("raw.amplitude.event", snow) == '"RAW"."AMPLITUDE"."EVENT"'
    assert quote_name('raw."lower case"', snow) == '"RAW"."lower case"'
    assert quote_name("my-project.amplitude.events", bq) == "`my-project`.`amplitude`.`events`"
    for bad in ("", "a.b.c.d", "a..b", 'a"b', '"unclosed', "a\x00b"):
        with pytest.raises(ConfigError):
            quote_name(bad, pg)


def test_a_table_name_is_never_sql(pg_events: str) -> None:
    source = DatabaseSource(pg_events, table="analytics.events; DROP TABLE analytics.events")
    assert source.sql() == 'SELECT * FROM "analytics"."events; DROP TABLE analytics"."events"'
    source = DatabaseSource(pg_events, table="analytics.events; DROP TABLE accoil")
    with pytest.raises(InputError, match="does not exist"):
        list(at.read_events(source))
    assert bodies(DatabaseSource(pg_events, table="analytics.events"), at.TransformConfig())


# --------------------------------------------------------------------------- errors


def test_the_password_never_shows(pg_events: str) -> None:
    source = DatabaseSource(pg_events, table="analytics.events")
    encoded = pg_events.split(":")[2].split("@")[0]
    for text in (repr(source), str(source), source.name, source.uri, source.identity()):
        assert POSTGRES_PASSWORD not in text and encoded not in text
    assert "accoil:****@127.0.0.1" in source.name
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(source)

    wrong = pg_events.replace(encoded, "Wr0ng%23pass")
    with pytest.raises(InputError, match="can't connect") as err:
        list(at.read_events(DatabaseSource(wrong, table="analytics.events")))
    assert "Wr0ng" not in str(err.value) and "****" in str(err.value)

    with pytest.raises(InputError, match="the query failed") as err:
        list(at.read_events(DatabaseSource(pg_events, table="analytics.nope")))
    message = str(err.value)
    assert POSTGRES_PASSWORD not in message and encoded not in message
    assert "analytics" in message and "nope" in message


def test_mask_uri_masks_passwords_and_secret_parameters() -> None:
    assert mask_uri("postgresql://u:p%40ss@h:5432/db?sslmode=require") == (
        "postgresql://u:****@h:5432/db?sslmode=require"
    )
    assert mask_uri("snowflake://u:pw@acct/db/sch?warehouse=wh&private_key_pwd=k&token=t") == (
        "snowflake://u:****@acct/db/sch?warehouse=wh&private_key_pwd=****&token=****"
    )
    assert mask_uri("postgresql://h/db?user=u&password=pw") == (
        "postgresql://h/db?user=u&password=****"
    )
    assert _database.scrub("failed for p@ss and p%40ss", "postgresql://u:p%40ss@h/db") == (
        "failed for **** and ****"
    )


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _database._installed
    monkeypatch.setattr(
        _database, "_installed", lambda name: name != "adbc_driver_postgresql" and real(name)
    )
    source = DatabaseSource("postgresql://u:secretpw@h/db", table="events")
    with pytest.raises(ConfigError, match=r'pip install "accoil-transform\[postgres\]"') as err:
        list(at.read_events(source))
    assert "secretpw" not in str(err.value)
    monkeypatch.setattr(_database, "_installed", lambda name: False)
    with pytest.raises(ConfigError, match=r"accoil-transform\[snowflake\]"):
        DatabaseSource("snowflake://u:pw@acct/db/s", table="events").check_driver()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("mysql://u:secretpw@h/db",), "not a supported database URI; supported: postgresql://"),
        (("postgresql://u:secretpw@h/db",), "give a table"),
        (("postgresql://u:secretpw@h/db", "t", "SELECT 1"), "one of them"),
        (("postgresql://u:secretpw@h/db", None, " ; "), "the query is empty"),
        (("",), "needs a URI"),
    ],
)
def test_bad_sources_are_config_errors(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        DatabaseSource(*args)
    assert "secretpw" not in str(err.value)


def test_a_missing_database_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.duckdb"
    with pytest.raises(InputError, match="no such database file") as err:
        list(at.read_events(DatabaseSource(f"duckdb:///{missing}", table="events")))
    assert str(missing) in str(err.value)
    assert not missing.exists()  # reading never creates the file
    with pytest.raises(InputError, match="four slashes"):
        list(at.read_events(DatabaseSource("sqlite:///relative/nope.db", table="events")))


def test_a_missing_watermark_column_says_which_flag(tmp_path: Path) -> None:
    path = load_duckdb(tmp_path / "w.duckdb", "analytics.events", seed_rows())
    source = DatabaseSource(f"duckdb:///{path}", table="analytics.events")
    with pytest.raises(InputError, match="--watermark"):
        list(at.read_events(source.incremental("uploaded_at", start="2025-01-01")))
