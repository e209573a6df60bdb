"""Shared test fixtures: Amplitude export-shaped events and the files they arrive in.

The fixtures return plain functions, so a test asks for ``make_event`` and calls it:

    def test_x(tmp_path, make_event, write_lines, make_zip): ...
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from accoil_transform.testing import make_event

Line = Mapping[str, Any] | str | bytes


def _line_bytes(line: Line) -> bytes:
    if isinstance(line, bytes):
        return line
    if isinstance(line, str):
        return line.encode("utf-8")
    return json.dumps(line, ensure_ascii=False).encode("utf-8")


def ndjson_bytes(lines: Iterable[Line]) -> bytes:
    """NDJSON text: dicts are JSON-encoded, str/bytes lines are written as they are."""
    return b"".join(_line_bytes(line) + b"\n" for line in lines)


def write_lines(
    tmp_path: Path, lines: Iterable[Line], name: str = "events.json", gz: bool = False
) -> Path:
    """Write ``lines`` as NDJSON to ``tmp_path / name`` (gzip-compressed when ``gz``)."""
    path = Path(tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ndjson_bytes(lines)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_zip(path: Path, members: Mapping[str, Iterable[Line] | bytes]) -> Path:
    """Write an Export-API-shaped zip: each member is gzip NDJSON, in the given order.

    A ``bytes`` member value is stored as it is (for corrupt or odd members).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in members.items():
            raw = content if isinstance(content, bytes) else gzip.compress(ndjson_bytes(content))
            zf.writestr(name, raw)
    return path


@pytest.fixture(name="make_event")
def _make_event_fixture() -> Callable[..., dict[str, Any]]:
    return make_event


@pytest.fixture(name="write_lines")
def _write_lines_fixture() -> Callable[..., Path]:
    return write_lines


@pytest.fixture(name="make_zip")
def _make_zip_fixture() -> Callable[..., Path]:
    return make_zip


@pytest.fixture(name="ndjson_bytes")
def _ndjson_bytes_fixture() -> Callable[[Iterable[Line]], bytes]:
    return ndjson_bytes


@pytest.fixture(autouse=True)
def _no_user_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own ACCOIL_* / AMPLITUDE_* settings."""
    for name in list(os.environ):
        if name.startswith(("ACCOIL_", "AMPLITUDE_")):
            monkeypatch.delenv(name)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server the tests started: on 127.0.0.1, with a password user."""

    host: str
    port: int
    user: str
    password: str

    def uri(self, database: str = "postgres") -> str:
        """Its URI, the password percent-encoded (it holds ``#``, ``/`` and ``@``)."""
        password = urllib.parse.quote(self.password, safe="")
        return f"postgresql://{self.user}:{password}@{self.host}:{self.port}/{database}"


#: A password with characters a URI must encode: masking must catch both forms.
POSTGRES_PASSWORD = "Pg#s3cret/Pa55@word"


def _postgres_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server in a temporary folder, for the whole session; stopped at the
    end. As root it runs as the ``postgres`` user (the server refuses root)."""
    initdb, pg_ctl = _postgres_tool("initdb"), _postgres_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed here (no initdb and pg_ctl)")
    root = Path(tempfile.mkdtemp(prefix="accoil-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        account = pwd.getpwnam("postgres")  # KeyError: the server can't run as root
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    pwfile = root / "pwfile"
    pwfile.write_text(POSTGRES_PASSWORD + "\n")
    if as_user:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def pg(*args: str) -> None:
        proc = subprocess.run(
            [*as_user, *args], cwd=root, capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {proc.stdout}{proc.stderr}{server_log}")

    pg(initdb, "-D", str(data), "-U", "accoil", "--auth=scram-sha-256", f"--pwfile={pwfile}",
       "-E", "UTF8", "--locale=C")  # fmt: skip
    settings = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    pg(pg_ctl, "-D", str(data), "-l", str(log), "-o", settings, "-w", "-t", "60", "start")
    try:
        yield PostgresServer("127.0.0.1", port, "accoil", POSTGRES_PASSWORD)
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            cwd=root, capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
