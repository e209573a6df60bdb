"""Shared test fixtures: Amplitude export-shaped events and the files they arrive in.

The fixtures return plain functions, so a test asks for ``make_event`` and calls it:

    def test_x(tmp_path, make_event, write_lines, make_zip): ...
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import uuid as uuidlib
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

Line = Mapping[str, Any] | str | bytes

_counter = itertools.count(1)


def make_event(**overrides: Any) -> dict[str, Any]:
    """One event with the full 2025 Export API key set (``null`` where unknown).

    ``uuid``, ``$insert_id`` and ``event_id`` are deterministic and unique per call;
    every key can be overridden.
    """
    n = next(_counter)
    user_id = overrides.get("user_id", f"user-{n % 7}")
    event: dict[str, Any] = {
        "$insert_id": f"ins-{n:06d}",
        "$insert_key": None,
        "$schema": None,
        "adid": None,
        "amplitude_attribution_ids": None,
        "amplitude_event_type": None,
        "amplitude_id": 1_263_130_950_000 + n,
        "app": 203138,
        "city": "Santarém",
        "client_event_time": "2025-07-01 16:34:54.837000",
        "client_upload_time": "2025-07-01 16:34:55.120000",
        "country": "Portugal",
        "data": {"path": "/2/httpapi", "group_ids": {}, "group_first_event": {}},
        "data_type": "event",
        "device_brand": None,
        "device_carrier": None,
        "device_family": "Mac",
        "device_id": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"device-{user_id}")),
        "device_manufacturer": None,
        "device_model": None,
        "device_type": "Mac",
        "dma": None,
        "event_id": n,
        "event_properties": {},
        "event_time": "2025-07-01 16:34:54.837000",
        "event_type": "Doc Opened",
        "global_user_properties": None,
        "group_properties": {},
        "groups": {},
        "idfa": None,
        "ip_address": "192.0.2.10",
        "is_attribution_event": None,
        "language": "English",
        "library": "amplitude-ts/2.16.1",
        "location_lat": None,
        "location_lng": None,
        "os_name": "Chrome",
        "os_version": "126",
        "partner_id": None,
        "paying": None,
        "plan": {},
        "platform": "Web",
        "processed_time": "2025-07-01 17:14:34.001000",
        "region": "Santarém",
        "sample_rate": None,
        "server_received_time": "2025-07-01 16:34:55.300000",
        "server_upload_time": "2025-07-01 17:14:33.149000",
        "session_id": -1,
        "source_id": None,
        "start_version": None,
        "user_creation_time": None,
        "user_id": user_id,
        "user_properties": {},
        "uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_OID, f"event-{n}")),
        "version_name": None,
    }
    event.update(overrides)
    return event


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
