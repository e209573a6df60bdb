"""Reading straight from a database: a table or a query, through ADBC, as Arrow batches.

A :class:`DatabaseSource` names a database by URI and what to read from it: a table (a
name, quoted here for the database's dialect) or the user's own query. Reading opens an
ADBC (Arrow Database Connectivity) connection and takes the result as a stream of Arrow
record batches, gathered into slices of about a chunk, so that a table of tens of
millions of rows is read with memory bounded as a file is. One driver per database,
each an optional extra::

    postgresql://USER:PASSWORD@HOST:PORT/DB   (postgres://, redshift://)  [postgres]
    sqlite:///RELATIVE/PATH, sqlite:////ABSOLUTE/PATH                     [sqlite]
    duckdb:///RELATIVE/PATH, duckdb:////ABSOLUTE/PATH                     [duckdb]
    snowflake://USER:PASSWORD@ACCOUNT/DB/SCHEMA?warehouse=WH              [snowflake]
    bigquery://PROJECT[/DATASET]                                           [bigquery]

DuckDB is read through the ADBC driver that its own Python package ships
(``adbc_driver_duckdb``, entry point ``duckdb_adbc_init``), opened read-only.

For incremental reading (``sync`` from a table), :meth:`DatabaseSource.incremental`
adds a filter on a watermark column, its value a bound parameter (in PostgreSQL bound to
a session setting first, so that the result still streams through ``COPY``), and keeps
the largest value of that column among the rows read (:class:`Watermark`).

The password in a URI (and any secret query parameter) is never shown: ``repr``,
names and errors mask it as ``****``, and driver messages are scrubbed of it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import decimal
import hashlib
import importlib
import importlib.util
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pyarrow as pa

from ..config import ReadOptions
from ..errors import ConfigError, InputError

MASK = "****"
#: The column ``sync`` keeps its place in a table by: Amplitude loads late events by it.
DEFAULT_WATERMARK = "server_upload_time"
#: Query parameters of a URI whose values are secrets (compared lower-cased).
_SECRET_PARAMS = (
    "password",
    "passwd",
    "pwd",
    "token",
    "access_token",
    "refresh_token",
    "secret",
    "client_secret",
    "private_key",
    "private_key_pwd",
    "private_key_passphrase",
    "privatekey",
    "auth_credentials",
    "credentials",
    "sslpassword",
)
_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_HOUR = re.compile(r"^\d{8}T\d{2}$")
#: The PostgreSQL session setting the watermark is bound to (see :meth:`DatabaseSource.sql`).
_PG_SETTING = "accoil.watermark"


@dataclass(frozen=True, slots=True)
class _Dialect:
    """What differs between databases: the driver, the extra, quoting, parameters."""

    name: str
    module: str
    extra: str
    quote: str = '"'
    param: str = "?"
    upper_plain: bool = False
    """Unquoted names are upper-cased by the database (Snowflake): quote them so."""
    batch_option: tuple[str, str] | None = None
    """The statement option that sizes result batches: (key, "rows" or "bytes")."""


_POSTGRES = _Dialect(
    "PostgreSQL",
    "adbc_driver_postgresql",
    "postgres",
    param="$1",
    batch_option=("adbc.postgresql.batch_size_hint_bytes", "bytes"),
)
_DIALECTS: dict[str, _Dialect] = {
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    "redshift": _POSTGRES,
    "sqlite": _Dialect(
        "SQLite",
        "adbc_driver_sqlite",
        "sqlite",
        batch_option=("adbc.sqlite.query.batch_rows", "rows"),
    ),
    "duckdb": _Dialect(
        "DuckDB",
        "adbc_driver_duckdb",
        "duckdb",
        batch_option=("adbc.duckdb.query.batch_rows", "rows"),
    ),
    "snowflake": _Dialect("Snowflake", "adbc_driver_snowflake", "snowflake", upper_plain=True),
    "bigquery": _Dialect("BigQuery", "adbc_driver_bigquery", "bigquery", quote="`"),
}
SUPPORTED_SCHEMES = (
    "postgresql:// (also postgres://, redshift://), snowflake://, bigquery://, "
    "sqlite:///PATH, duckdb:///PATH"
)


def is_database_uri(text: object) -> bool:
    """Whether ``text`` is a URI of a database this package reads (by its scheme)."""
    if not isinstance(text, str) or "://" not in text:
        return False
    return text.split("://", 1)[0].lower() in _DIALECTS


def check_uri(uri: str) -> str:
    """The scheme of a supported database URI.

    Raises:
        ConfigError: ``uri`` is not one; the message lists the supported ones (and
            never shows a password).
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme not in _DIALECTS:
        shown = mask_uri(uri) if "://" in uri else "the URI"
        raise ConfigError(f"{shown}: not a supported database URI; supported: {SUPPORTED_SCHEMES}")
    return scheme


# --------------------------------------------------------------------------- secrets


def _parts(uri: str) -> tuple[str, str | None, str | None, str]:
    """``uri`` as (scheme, user, password, the rest after ``@``). The password runs from
    the first ``:`` of the user part to the last ``@``, so that one holding an unencoded
    ``#``, ``/`` or ``?`` is still all of it (the mask may take a little more, never less)."""
    scheme, _, rest = uri.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if not at:
        return scheme, None, None, rest
    user, colon, password = userinfo.partition(":")
    return scheme, user, (password if colon else None), after


def _query_pairs(rest: str) -> list[tuple[str, str]]:
    return [pair.partition("=")[::2] for pair in rest.partition("?")[2].split("&") if pair]


def _secrets(uri: str) -> list[str]:
    """The secret values in ``uri``: the password and secret query parameters, raw and
    percent-decoded, longest first."""
    _, _, password, rest = _parts(uri)
    found = [password] if password else []
    found += [v for k, v in _query_pairs(rest) if k.lower() in _SECRET_PARAMS and v]
    forms = {f for v in found for f in (v, unquote(v), unquote(v.replace("+", " "))) if f}
    return sorted(forms, key=len, reverse=True)


def mask_uri(uri: str) -> str:
    """``uri`` with its password and secret query parameters shown as ``****``."""
    if "://" not in uri:
        return MASK
    scheme, user, password, rest = _parts(uri)
    where, question, query = rest.partition("?")
    masked = "&".join(
        f"{k}={MASK}" if k.lower() in _SECRET_PARAMS and v else f"{k}={v}" if "=" in pair else k
        for pair in query.split("&")
        if pair
        for k, v in [pair.partition("=")[::2]]
    )
    login = "" if user is None else f"{user}:{MASK}@" if password is not None else f"{user}@"
    return f"{scheme}://{login}{where}{question}{masked}"


def scrub(text: str, uri: str) -> str:
    """``text`` (a driver's message) with the URI's secrets masked."""
    text = text.replace(uri, mask_uri(uri))
    for secret in _secrets(uri):
        text = text.replace(secret, MASK)
    return text


# --------------------------------------------------------------------------- names


def _split_name(name: str, dialect: _Dialect) -> list[str]:
    """``schema.table`` into its parts; a part in the dialect's quotes keeps its dots."""
    parts: list[str] = []
    current = ""
    quoted = False
    q = dialect.quote
    i = 0
    while i < len(name):
        char = name[i]
        if char == q:
            if quoted and name[i + 1 : i + 2] == q:  # a doubled quote inside quotes
                current += q + q
                i += 2
                continue
            quoted = not quoted
            current += char
        elif char == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    if quoted:
        raise ConfigError(f"the name {name!r} has an unclosed {q}")
    parts.append(current)
    return parts


def quote_name(name: str, dialect: _Dialect, what: str = "table") -> str:
    """A table name (``events``, ``analytics.events``, ``db.schema.events``) or a column,
    each part quoted for the dialect; a part the user quoted is kept as it is."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"the {what} name is empty")
    if any(ord(c) < 0x20 for c in name):
        raise ConfigError(f"the {what} name {name!r} holds a control character")
    parts = [p.strip() for p in _split_name(name.strip(), dialect)]
    most = 3 if what == "table" else 1
    if len(parts) > most or not all(parts):
        shape = "NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME" if what == "table" else "NAME"
        hint = f' (quote a name that holds a dot: "{name}")' if what != "table" else ""
        raise ConfigError(f"the {what} name {name!r} must look like {shape}{hint}")
    q = dialect.quote
    out = []
    for part in parts:
        if len(part) >= 2 and part[0] == q and part[-1] == q:
            out.append(part)
            continue
        if q in part or (q == "`" and "\\" in part):
            raise ConfigError(f"the {what} name {name!r} holds a {q}; quote that part")
        if dialect.upper_plain and _PLAIN_IDENTIFIER.match(part):
            part = part.upper()
        out.append(q + part + q)
    return ".".join(out)


def check_column(name: str) -> None:
    """Raise :class:`ConfigError` if ``name`` is not a column name (one part)."""
    quote_name(name, _POSTGRES, what="column")


def _unquoted(part: str, dialect: _Dialect) -> str:
    q = dialect.quote
    if len(part) >= 2 and part[0] == q and part[-1] == q:
        return part[1:-1].replace(q + q, q)
    return part


# --------------------------------------------------------------------------- watermarks


@dataclass(frozen=True)
class Watermark:
    """The largest value of a watermark column among rows read, typed as the database
    gave it (a one-row Arrow batch), to be bound as a parameter on the next read."""

    column: str
    batch: pa.RecordBatch

    @property
    def text(self) -> str:
        """The value for people: ``2025-02-13 05:35:51.648000``."""
        value = self.batch.column(0)[0].as_py()
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else str(value)

    def dumps(self) -> str:
        """JSON for the ledger's state table: the column, the value as text, and the
        typed value (Arrow IPC, base64)."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.batch.schema) as writer:
            writer.write_batch(self.batch)
        arrow = base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")
        return json.dumps({"column": self.column, "value": self.text, "arrow": arrow})

    @classmethod
    def loads(cls, text: str) -> Watermark:
        """The :meth:`dumps` form back.

        Raises:
            ConfigError: ``text`` is not one.
        """
        try:
            data = json.loads(text)
            raw = base64.b64decode(data["arrow"])
            batch = pa.ipc.open_stream(pa.py_buffer(raw)).read_next_batch()
            return cls(str(data["column"]), batch)
        except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            raise ConfigError(f"the recorded watermark can't be read ({exc})") from None


def typed_value(text: str, arrow_type: pa.DataType, column: str) -> pa.RecordBatch:
    """``text`` (``--start``) as a one-row batch of ``arrow_type``: times as
    ``YYYYMMDDTHH`` or ISO 8601 (UTC unless they say), numbers, dates, or text as given.

    Raises:
        ConfigError: ``text`` can't be a value of that type.
    """
    t = arrow_type
    try:
        value: Any
        if pa.types.is_timestamp(t):
            value = _parse_time(text)
            if t.tz is None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
        elif pa.types.is_date(t):
            value = _parse_time(text).date()
        elif pa.types.is_integer(t):
            value = int(text)
        elif pa.types.is_floating(t):
            value = float(text)
        elif pa.types.is_decimal(t):
            value = decimal.Decimal(text)
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t):
            value = text
        else:
            raise ConfigError(f"--start can't be compared with the column {column} of type {t}")
        return pa.record_batch([pa.array([value], t)], names=[column])
    except (ValueError, ArithmeticError, pa.ArrowException) as exc:
        raise ConfigError(
            f"--start {text!r} is not a value of the column {column} (type {t}): {exc}; "
            "times are YYYYMMDDTHH or ISO 8601 (2025-02-01, 2025-02-01T10:00:00Z)"
        ) from None


def _is_string_view(t: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)
    return bool(check and check(t))


def _parse_time(text: str) -> dt.datetime:
    text = text.strip()
    if _HOUR.match(text):
        value = dt.datetime.strptime(text, "%Y%m%dT%H")
    else:
        value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


@dataclass
class ReadProgress:
    """What reading a source has done: rows, whether the stream ended, and the largest
    watermark value seen (for an incremental source)."""

    rows: int = 0
    finished: bool = False
    watermark: Watermark | None = None


@dataclass(frozen=True, slots=True)
class _Filter:
    column: str
    column_sql: str
    op: str
    value: pa.RecordBatch | None


# --------------------------------------------------------------------------- the source


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    dialect: _Dialect
    uri: str


class DatabaseSource:
    """Rows of a database table or query, read through ADBC as Arrow record batches.

    ``uri`` names the database (``postgresql://``, ``redshift://``, ``snowflake://``,
    ``bigquery://``, ``sqlite:///PATH``, ``duckdb:///PATH``); give ``table`` (a name,
    ``analytics.events`` allowed: it is quoted for the database) or ``query`` (your own
    SQL), not both. Accepted wherever inputs are (:func:`~accoil_transform.read_events`,
    :func:`~accoil_transform.transform`, :func:`~accoil_transform.run`), and by anything
    that reads the Arrow PyCapsule stream interface. The URI's password never shows.

    Raises:
        ConfigError: the URI is not a supported database URI, or neither or both of
            ``table`` and ``query`` are given.
    """

    __slots__ = ("_filter", "_target", "progress", "query", "table")

    def __init__(self, uri: str, table: str | None = None, query: str | None = None) -> None:
        if not isinstance(uri, str) or not uri.strip():
            raise ConfigError("a database source needs a URI, such as postgresql://HOST/DB")
        uri = uri.strip()
        scheme = check_uri(uri)
        self._target = _Target(scheme, _DIALECTS[scheme], uri)
        if (table is None) == (query is None):
            raise ConfigError(
                f"{mask_uri(uri)}: give a table (--table NAME) or a query (--query SQL), one of them"
            )
        if table is not None:
            quote_name(table, self._target.dialect)  # checks it
        if query is not None and (not isinstance(query, str) or not query.strip(" \t\r\n;")):
            raise ConfigError(f"{mask_uri(uri)}: the query is empty")
        self.table = table.strip() if table is not None else None
        self.query = query.strip().rstrip(";").strip() if query is not None else None
        self._filter: _Filter | None = None
        #: Rows read so far, and (for :meth:`incremental`) the largest watermark value.
        self.progress = ReadProgress()

    # ------------------------------------------------------------------ naming

    @property
    def uri(self) -> str:
        """The URI with its password masked (``****``)."""
        return mask_uri(self._target.uri)

    @property
    def dialect(self) -> str:
        """The database's name (``PostgreSQL``, ``DuckDB``, ...)."""
        return self._target.dialect.name

    @property
    def extra(self) -> str:
        """The extra that installs this database's driver."""
        return self._target.dialect.extra

    @property
    def name(self) -> str:
        """How errors and the quarantine name this source (password masked)."""
        what = f"table {self.table}" if self.table is not None else "query"
        return f"{self.uri} {what}"

    def __repr__(self) -> str:
        what = f"table={self.table!r}" if self.table is not None else f"query={self.query!r}"
        return f"DatabaseSource({self.uri!r}, {what})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a DatabaseSource cannot be pickled: its URI may hold a password")

    def identity(self) -> str:
        """What this source reads, without secrets: the database (no password, no
        parameters) and the table, or a digest of the query. Keys the sync state."""
        scheme, user, _, rest = _parts(self._target.uri)
        where = f"{scheme.lower()}://{user + '@' if user else ''}{rest.partition('?')[0]}"
        if self.table is not None:
            return f"{where} table {self.table}"
        digest = hashlib.sha256((self.query or "").encode()).hexdigest()[:16]
        return f"{where} query {digest}"

    # ------------------------------------------------------------------ SQL

    def _from(self) -> str:
        if self.table is not None:
            return quote_name(self.table, self._target.dialect)
        return f"(\n{self.query}\n) AS accoil_source"  # a trailing -- comment stays inside

    def sql(self) -> str:
        """The statement run: the query, or ``SELECT *`` of the table, with the
        watermark filter (its value a bound parameter) of an incremental source.

        PostgreSQL streams a result only for a statement without parameters (through
        ``COPY``), so there the value is bound to a session setting first
        (``set_config``), and the statement reads it back, cast to the column's type."""
        f = self._filter
        if f is None or f.value is None:
            if self.table is not None:
                return f"SELECT * FROM {self._from()}"
            return self.query or ""
        value = self._target.dialect.param
        pg_type = self._pg_setting_type()
        if pg_type is not None:
            value = f"current_setting('{_PG_SETTING}')::{pg_type}"
        return f"SELECT * FROM {self._from()} WHERE {f.column_sql} {f.op} {value}"

    def _pg_setting_type(self) -> str | None:
        """The PostgreSQL type the watermark is cast to from its session setting, or
        None where it is bound to the statement itself (other databases, other types)."""
        f = self._filter
        if self._target.dialect is not _POSTGRES or f is None or f.value is None:
            return None
        t = f.value.schema.field(0).type
        if pa.types.is_timestamp(t):
            return "timestamptz" if t.tz is not None else "timestamp"
        for check, name in (
            (pa.types.is_date, "date"),
            (pa.types.is_integer, "bigint"),
            (pa.types.is_floating, "double precision"),
            (pa.types.is_decimal, "numeric"),
            (pa.types.is_string, "text"),
            (pa.types.is_large_string, "text"),
        ):
            if check(t):
                return name
        return None

    def _pg_setting_text(self) -> str:
        """The watermark as text PostgreSQL casts back exactly (ISO times, digits)."""
        assert self._filter is not None and self._filter.value is not None
        value = self._filter.value.column(0)[0].as_py()
        return value.isoformat() if isinstance(value, dt.date) else str(value)

    def incremental(
        self, column: str, after: Watermark | None = None, *, start: str | None = None
    ) -> DatabaseSource:
        """The rows whose ``column`` is past ``after`` (or, without it, at or past
        ``start``, or every row), tracking the largest value of ``column`` read
        (:attr:`progress`). The value is bound as a parameter, never written into SQL.

        Raises:
            ConfigError: ``column`` is not a column name, or ``start`` is not a value
                of the column's type.
            InputError: the database can't be reached or read.
        """
        column_sql = quote_name(column, self._target.dialect, what="column")
        plain = _unquoted(column.strip(), self._target.dialect)
        if after is not None:
            value, op = after.batch, ">"
        elif start is not None:
            value, op = typed_value(start, self._column_type(column_sql, plain), plain), ">="
        else:
            value, op = None, ">"
        new = DatabaseSource.__new__(DatabaseSource)
        new._target, new.table, new.query = self._target, self.table, self.query
        new._filter = _Filter(plain, column_sql, op, value)
        new.progress = ReadProgress()
        return new

    def _column_type(self, column_sql: str, column: str) -> pa.DataType:
        """The Arrow type the database gives ``column`` (from one non-null row)."""
        sql = f"SELECT {column_sql} FROM {self._from()} WHERE {column_sql} IS NOT NULL LIMIT 1"
        with self._connect() as conn, conn.cursor() as cursor:
            try:
                cursor.execute(sql)
                table = cursor.fetch_arrow_table()
            except Exception as exc:
                raise self._error("the query failed", exc, column) from None
        if table.num_rows == 0:
            raise ConfigError(
                f"{self.name}: no row has a value in the watermark column {column}, so "
                "--start can't be compared with it; run without --start to take every row"
            )
        return table.schema.field(0).type

    # ------------------------------------------------------------------ reading

    def check_driver(self) -> None:
        """Raise :class:`ConfigError` naming the extra to install if the driver is missing."""
        self._driver()

    def _driver(self) -> Any:
        dialect = self._target.dialect
        install = f'pip install "accoil-transform[{dialect.extra}]"'
        if dialect.module == "adbc_driver_duckdb":
            missing = [m for m in ("adbc_driver_manager", "duckdb") if not _installed(m)]
        else:
            missing = [m for m in ("adbc_driver_manager", dialect.module) if not _installed(m)]
        if missing:
            raise ConfigError(
                f"{self.uri}: reading from {dialect.name} needs its ADBC driver "
                f"({', '.join(missing)} is not installed): {install}"
            )
        name = "adbc_driver_manager.dbapi" if dialect.module == "adbc_driver_duckdb" else None
        try:
            if name is not None:
                importlib.import_module("adbc_driver_duckdb")
                return importlib.import_module(name)
            return importlib.import_module(f"{dialect.module}.dbapi")
        except ImportError as exc:
            raise ConfigError(
                f"{self.uri}: the {dialect.name} ADBC driver can't be loaded ({exc}): {install}"
            ) from None

    def _connect(self) -> Any:
        """An ADBC DB-API connection (autocommit: reading needs no transaction)."""
        dbapi = self._driver()
        scheme, uri = self._target.scheme, self._target.uri
        try:
            if scheme in ("postgresql", "postgres", "redshift"):
                return dbapi.connect("postgresql://" + uri.split("://", 1)[1], autocommit=True)
            if scheme == "sqlite":
                path = self._file()
                return dbapi.connect(f"file:{quote(str(path))}?mode=ro", autocommit=True)
            if scheme == "duckdb":
                import adbc_driver_duckdb

                return dbapi.connect(
                    driver=adbc_driver_duckdb.driver_path(),
                    entrypoint="duckdb_adbc_init",
                    db_kwargs={"path": str(self._file()), "access_mode": "READ_ONLY"},
                    autocommit=True,
                )
            if scheme == "snowflake":
                return dbapi.connect(uri, autocommit=True)
            return dbapi.connect(db_kwargs=_bigquery_options(uri), autocommit=True)
        except (ConfigError, InputError):
            raise
        except Exception as exc:
            raise self._error("can't connect", exc) from None

    def _file(self) -> Path:
        """The database file of a ``sqlite:///`` or ``duckdb:///`` URI (which must exist)."""
        rest = self._target.uri.split("://", 1)[1]
        if not rest.startswith("/") or rest == "/":
            raise ConfigError(
                f"{self.uri}: give the file as {self._target.scheme}:///RELATIVE/PATH or "
                f"{self._target.scheme}:////ABSOLUTE/PATH"
            )
        path = Path(unquote(rest[1:].split("?", 1)[0]))
        if not path.is_file():
            where = "" if path.is_absolute() else " (relative to the current folder)"
            raise InputError(
                self.name,
                f"no such database file: {path}{where}; an absolute path takes four "
                f"slashes: {self._target.scheme}:////ABSOLUTE/PATH",
            )
        return path

    def _execute(
        self,
        cursor: Any,
        sql: str,
        params: pa.RecordBatch | None,
        options: ReadOptions | None = None,
    ) -> None:
        option = self._target.dialect.batch_option
        if option is not None and options is not None:
            key, unit = option
            rows = max(1, options.chunk_bytes // options.table_row_bytes)
            size = rows if unit == "rows" else min(options.chunk_bytes, 16 << 20)
            with contextlib.suppress(Exception):  # a driver without the option: its default
                cursor.adbc_statement.set_options(**{key: str(size)})
        try:
            cursor.execute(sql, params)
        except Exception as exc:
            raise self._error("the query failed", exc) from None

    def _error(self, what: str, exc: BaseException, column: str | None = None) -> InputError:
        message = scrub(str(exc).strip() or type(exc).__name__, self._target.uri)
        column = column or (self._filter.column if self._filter is not None else None)
        hint = ""
        if column is not None and column.lower() in message.lower():
            hint = f" (the watermark column is {column}: change it with --watermark COLUMN)"
        return InputError(self.name, f"{what}: {message}{hint}")

    def read(self, options: ReadOptions | None = None) -> pa.RecordBatchReader:
        """Run the query and return its rows as a stream of record batches, gathered to
        about a chunk (``options.chunk_bytes`` at ``table_row_bytes`` a row); the
        connection closes when the stream ends.

        Raises:
            ConfigError: the driver is not installed (the message names the extra).
            InputError: the database can't be reached, or the query failed.
        """
        options = options or ReadOptions()
        self.progress = ReadProgress()
        conn = self._connect()
        try:
            cursor = conn.cursor()
            f = self._filter
            params = None if f is None else f.value
            if self._pg_setting_type() is not None:  # bound to the session, then streamed
                self._execute(
                    cursor,
                    f"SELECT set_config('{_PG_SETTING}', $1, false)",
                    pa.record_batch([pa.array([self._pg_setting_text()])], names=["value"]),
                )
                cursor.fetchall()
                params = None
            self._execute(cursor, self.sql(), params, options)
            try:
                reader = cursor.fetch_record_batch()
            except Exception as exc:
                raise self._error("reading failed", exc) from None
        except BaseException:
            conn.close()
            raise
        step = max(1, options.chunk_bytes // options.table_row_bytes)
        batches = self._batches(conn, cursor, reader, step, options.chunk_bytes)
        return pa.RecordBatchReader.from_batches(reader.schema, batches)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of :meth:`read` (pandas, polars, DuckDB read it)."""
        return self.read().__arrow_c_stream__(requested_schema)

    def _batches(
        self, conn: Any, cursor: Any, reader: Any, rows: int, nbytes: int
    ) -> Iterator[pa.RecordBatch]:
        """The reader's batches, small ones gathered; the watermark tracked; the
        connection closed at the end, on an error, or when the caller stops early."""
        progress = self.progress
        pending: list[pa.RecordBatch] = []
        size = count = 0
        try:
            index = self._watermark_index(reader.schema)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except Exception as exc:
                    raise self._error("reading failed", exc) from None
                if index is not None:
                    self._track(batch.column(index), index, reader.schema)
                pending.append(batch)
                count += batch.num_rows
                size += batch.nbytes
                if count >= rows or size >= nbytes:
                    progress.rows += count
                    yield from _gathered(pending, reader.schema)
                    pending, size, count = [], 0, 0
            if pending:
                progress.rows += count
                yield from _gathered(pending, reader.schema)
            progress.finished = True
        finally:
            for closing in (reader, cursor, conn):
                with contextlib.suppress(Exception):
                    closing.close()

    def _watermark_index(self, schema: pa.Schema) -> int | None:
        f = self._filter
        if f is None:
            return None
        names = schema.names
        for i, name in enumerate(names):
            if name == f.column:
                return i
        for i, name in enumerate(names):
            if name.lower() == f.column.lower():
                return i
        raise InputError(
            self.name,
            f"the rows read have no column {f.column} to keep the watermark by; "
            f"give one of theirs with --watermark COLUMN (they have {', '.join(names)})",
        )

    def _track(self, values: pa.Array, index: int, schema: pa.Schema) -> None:
        import pyarrow.compute as pc  # here: it costs ~25 ms at import, and only a sync needs it

        try:
            largest = pc.max(values)
        except pa.ArrowException as exc:
            raise InputError(
                self.name,
                f"the watermark column {schema.field(index).name} ({values.type}) can't be "
                f"ordered: {exc}; give another with --watermark COLUMN",
            ) from None
        if not largest.is_valid:
            return
        current = self.progress.watermark
        if current is not None and not pc.greater(largest, current.batch.column(0)[0]).as_py():
            return
        column = self._filter.column if self._filter is not None else schema.field(index).name
        at = pc.index(values, largest).as_py()  # the value itself: its exact type and precision
        batch = pa.record_batch([values.slice(at, 1)], names=[column])
        self.progress.watermark = Watermark(column, batch)


def _gathered(batches: list[pa.RecordBatch], schema: pa.Schema) -> list[pa.RecordBatch]:
    """Small batches as one (every row kept, whatever the chunks)."""
    if len(batches) == 1:
        return batches
    table = pa.Table.from_batches(batches, schema).combine_chunks()
    return table.to_batches() or batches[:1]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _bigquery_options(uri: str) -> dict[str, str]:
    """``bigquery://PROJECT[/DATASET][?adbc.bigquery.sql.KEY=VALUE]`` as the driver's
    database options (credentials: Google's application default ones)."""
    parts = urlsplit(uri)
    if not parts.netloc:
        raise ConfigError(f"{mask_uri(uri)}: give the project: bigquery://PROJECT[/DATASET]")
    options = {"adbc.bigquery.sql.project_id": unquote(parts.netloc)}
    dataset = parts.path.strip("/")
    if dataset:
        options["adbc.bigquery.sql.dataset_id"] = unquote(dataset)
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        options[unquote(key)] = unquote(value)
    return options
