"""Shared test fixtures: Amplitude export-shaped events and the files they arrive in.

The fixtures return plain functions, so a test asks for ``make_event`` and calls it:

    def test_x(tmp_path, make_event, write_lines, make_zip): ...
"""

from __future__ import annotations

import gzip
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping
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
