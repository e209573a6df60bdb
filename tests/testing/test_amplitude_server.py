"""The local Amplitude Export API stand-in: auth, windows, 404s, members and faults, asked
directly over HTTP (the client is tested against it in ``tests/amplitude``)."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from accoil_transform.read import EXPORT_MEMBER
from accoil_transform.testing import EXPORT_PATH, LocalAmplitudeExport, make_events

API_KEY = "ak-3f9c1e0d7b2a"
SECRET_KEY = "sk-8d4e6a1c9f0b"
T0 = datetime(2024, 3, 1, 0, tzinfo=UTC)


def fake(events: list[dict[str, Any]] | None = None, **kw: Any) -> LocalAmplitudeExport:
    return LocalAmplitudeExport(events or [], api_key=API_KEY, secret_key=SECRET_KEY, **kw)


def get(
    server: LocalAmplitudeExport, start: str, end: str, *, auth: bool = True
) -> requests.Response:
    return requests.get(
        server.url,
        params={"start": start, "end": end},
        auth=(API_KEY, SECRET_KEY) if auth else None,
        timeout=5,
    )


def test_missing_auth_header_is_401() -> None:
    with fake(list(make_events(T0, 1))) as server:
        r = requests.get(
            server.url, params={"start": "20240301T00", "end": "20240301T00"}, timeout=5
        )
        assert r.status_code == 401


def test_wrong_keys_are_403_and_a_bad_window_is_400() -> None:
    with fake(list(make_events(T0, 1))) as server:
        wrong = requests.get(
            server.url,
            params={"start": "20240301T00", "end": "20240301T00"},
            auth=(API_KEY, "nope"),
            timeout=5,
        )
        assert wrong.status_code == 403
        assert get(server, "2024-03-01", "20240301T00").status_code == 400
        assert get(server, "20240301T05", "20240301T00").status_code == 400
    assert [r.status for r in server.requests] == [403, 400, 400]


def test_an_hour_without_events_and_another_path_are_404() -> None:
    with fake(list(make_events(T0, 1))) as server:
        assert get(server, "20240302T00", "20240302T05").status_code == 404
        assert server.url == server.base_url + EXPORT_PATH
        other = requests.get(server.base_url + "/api/2/other", timeout=5)
        assert other.status_code == 404


def test_a_window_answers_a_zip_of_gzip_ndjson_members_per_upload_hour() -> None:
    events = list(make_events(T0, hours=3, per_hour=4))
    with fake(events, events_per_member=3) as server:
        r = get(server, "20240301T01", "20240301T02")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = zf.namelist()
        rows = [
            json.loads(line)
            for name in names
            for line in gzip.decompress(zf.read(name)).splitlines()
        ]
    assert len(names) == 4  # 2 hours x (3 + 1 events per member)
    assert all(EXPORT_MEMBER.search(n) for n in names)
    assert sorted(e["uuid"] for e in rows) == sorted(e["uuid"] for e in events[4:])
    assert [(q.start, q.end, q.status) for q in server.requests] == [
        ("20240301T01", "20240301T02", 200)
    ]


def test_scripted_faults_come_first_then_the_answer() -> None:
    with fake(list(make_events(T0, 1, per_hour=20)), max_events_per_response=30) as server:
        server.fail_next(2, status=503)
        server.truncate_next(1)
        assert get(server, "20240301T00", "20240301T00").status_code == 503
        assert get(server, "20240301T00", "20240301T00").status_code == 503
        cut = get(server, "20240301T00", "20240301T00")
        whole = get(server, "20240301T00", "20240301T00")
        assert cut.status_code == whole.status_code == 200
        assert len(cut.content) == len(whole.content) // 2
        server.add_events(make_events(T0, 1, per_hour=20))  # now over the limit
        too_large = get(server, "20240301T00", "20240301T00")
        assert too_large.status_code == 400 and "too large" in too_large.text
    assert [r.fault for r in server.requests] == ["503", "503", "truncate", None, None]


def test_a_stopped_server_frees_its_port() -> None:
    with fake() as server:
        url = server.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
