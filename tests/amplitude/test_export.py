"""The Amplitude Export API client, against the local stand-in on 127.0.0.1."""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import re
import threading
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from accoil_transform import RetryPolicy
from accoil_transform.amplitude import (
    DEFAULT_EXPORT_RETRY,
    EU_EXPORT_URL,
    US_EXPORT_URL,
    AmplitudeExportClient,
    ExportWindow,
    export_range,
    export_url,
)
from accoil_transform.errors import (
    ExportAuthError,
    ExportCredentialsError,
    ExportError,
    ExportTooLargeError,
)
from accoil_transform.testing import LocalAmplitudeExport, make_event, make_events

API_KEY = "ak-3f9c1e0d7b2a"
SECRET_KEY = "sk-8d4e6a1c9f0b"
T0 = datetime(2024, 3, 1, 0, tzinfo=UTC)
MEMBER_RE = re.compile(r"^(\d+)/(\d+)_(\d{4}-\d{2}-\d{2})_(\d{1,2})#(\d+)\.json\.gz$")


@pytest.fixture(autouse=True)
def _no_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMPLITUDE_API_KEY", raising=False)
    monkeypatch.delenv("AMPLITUDE_SECRET_KEY", raising=False)


def fake(events: list[dict[str, Any]] | None = None, **kw: Any) -> LocalAmplitudeExport:
    return LocalAmplitudeExport(events or [], api_key=API_KEY, secret_key=SECRET_KEY, **kw)


def retry(**changes: Any) -> RetryPolicy:
    """The export client's retry policy, without waiting unless asked to."""
    return replace(DEFAULT_EXPORT_RETRY, **{"backoff_base": 0.0, **changes})


def client(
    server: LocalAmplitudeExport, retries: RetryPolicy | None = None, **kw: Any
) -> AmplitudeExportClient:
    return AmplitudeExportClient(
        API_KEY, SECRET_KEY, base_url=server.url, retry=retries or retry(), **kw
    )


def read_zip(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Member names and the events in them; every member must be gzip NDJSON."""
    events: list[dict[str, Any]] = []
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        for name in names:
            raw = zf.read(name)
            assert raw[:2] == b"\x1f\x8b", name
            for line in gzip.decompress(raw).decode("utf-8").splitlines():
                events.append(json.loads(line))
    return names, events


def hours(server: LocalAmplitudeExport) -> list[tuple[str | None, str | None]]:
    return [(r.start, r.end) for r in server.requests]


# --------------------------------------------------------------------------- windows


def test_window_parse_format_and_split() -> None:
    w = ExportWindow.parse("20240301T00", "20240301T23")
    assert (w.start, w.end, w.hours) == (T0, T0 + timedelta(hours=23), 24)
    assert w.params == {"start": "20240301T00", "end": "20240301T23"}
    assert w.filename == "20240301T00-20240301T23.zip"
    a, b = w.split()
    assert (str(a), str(b)) == ("20240301T00..20240301T11", "20240301T12..20240301T23")
    odd = ExportWindow.parse("20240301T00", "20240301T02").split()
    assert [x.hours for x in odd] == [2, 1]
    assert ExportWindow.parse("20240301T05", "20240301T05").hours == 1
    # a day boundary and a naive datetime (taken as UTC)
    assert ExportWindow.parse(datetime(2024, 2, 29, 23), "20240301T00").hours == 2
    with pytest.raises(ValueError, match="one-hour"):
        ExportWindow.parse("20240301T05", "20240301T05").split()


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2024-03-01T00", "20240301T01", "YYYYMMDDTHH"),
        ("20240301", "20240301T01", "YYYYMMDDTHH"),
        ("20240301T24", "20240302T01", "not a real date"),
        ("20240230T00", "20240301T01", "not a real date"),
        ("20240302T00", "20240301T23", "after end"),
        ("20230101T00", "20240101T00", "365 days"),
    ],
)
def test_window_validation_errors(start: str, end: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExportWindow.parse(start, end)


def test_window_max_range_is_365_days_inclusive() -> None:
    assert ExportWindow.parse("20230101T00", "20231231T23").hours == 365 * 24
    with pytest.raises(ValueError, match="365 days"):
        ExportWindow.parse("20230101T00", "20240101T00")
    with pytest.raises(ValueError, match="on the hour"):
        ExportWindow.parse(datetime(2023, 1, 1, 0, 30), "20230102T00")


# --------------------------------------------------------------------------- hosts and auth


def test_region_hosts_without_network() -> None:
    assert export_url("us") == US_EXPORT_URL == "https://amplitude.com/api/2/export"
    assert export_url("EU") == EU_EXPORT_URL == "https://analytics.eu.amplitude.com/api/2/export"
    # a base URL is a host (the client adds the path), or the whole endpoint
    assert export_url("eu", "http://127.0.0.1:9/x/") == "http://127.0.0.1:9/x/api/2/export"
    assert export_url("us", "http://h:9") == "http://h:9/api/2/export"
    assert export_url("us", "http://h:9/api/2/export/") == "http://h:9/api/2/export"
    assert AmplitudeExportClient("a", "b", region="eu").url == EU_EXPORT_URL
    assert AmplitudeExportClient("a", "b").url == US_EXPORT_URL
    with pytest.raises(ValueError, match="region"):
        AmplitudeExportClient("a", "b", region="apac")


def test_credentials_from_env_and_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ExportCredentialsError, match="AMPLITUDE_API_KEY and AMPLITUDE_SECRET_KEY"):
        AmplitudeExportClient()
    monkeypatch.setenv("AMPLITUDE_API_KEY", API_KEY)
    with pytest.raises(ExportCredentialsError, match="missing AMPLITUDE_SECRET_KEY"):
        AmplitudeExportClient()
    monkeypatch.setenv("AMPLITUDE_SECRET_KEY", SECRET_KEY)
    events = list(make_events(T0, hours=1))
    with fake(events) as server, AmplitudeExportClient(base_url=server.url) as c:
        result = c.export_range("20240301T00", "20240301T00", tmp_path)
        assert len(result.files) == 1
        token = base64.b64encode(f"{API_KEY}:{SECRET_KEY}".encode()).decode()
        assert server.requests[0].authorization == f"Basic {token}"
        assert server.requests[0].status == 200


@pytest.mark.parametrize(("api_key", "status"), [(API_KEY + "x", 403), ("", None)])
def test_bad_credentials_give_a_clear_error_without_the_key(
    tmp_path: Path, api_key: str, status: int | None
) -> None:
    with fake(list(make_events(T0, 1))) as server:
        if status is None:
            with pytest.raises(ExportCredentialsError):
                AmplitudeExportClient(api_key, SECRET_KEY, base_url=server.url)
            return
        c = AmplitudeExportClient(api_key, SECRET_KEY, base_url=server.url, retry=retry())
        with pytest.raises(ExportAuthError) as info:
            c.export_range("20240301T00", "20240301T00", tmp_path)
    message = str(info.value)
    assert "403" in message and "region" in message and "secret key" in message
    assert api_key not in message and SECRET_KEY not in message
    assert len(server.requests) == 1  # an auth failure is not retried
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- downloads


def test_range_is_inclusive_by_server_upload_time(tmp_path: Path) -> None:
    inside_first = make_event(
        server_upload_time="2024-03-01 10:00:00.000000",
        event_time="2024-02-28 08:00:00.000000",  # late client event: still in by upload time
        user_id="first",
    )
    inside_last = make_event(server_upload_time="2024-03-01 12:59:59.999999", user_id="last")
    before = make_event(server_upload_time="2024-03-01 09:59:59.999999", user_id="before")
    after = make_event(
        server_upload_time="2024-03-01 13:00:00.000000",
        event_time="2024-03-01 11:00:00.000000",  # event_time inside, upload time outside
        user_id="after",
    )
    with fake([before, inside_first, inside_last, after]) as server, client(server) as c:
        result = c.export_range("20240301T10", "20240301T12", tmp_path)
    assert hours(server) == [("20240301T10", "20240301T12")]
    assert [f.path.name for f in result.files] == ["20240301T10-20240301T12.zip"]
    names, events = read_zip(result.files[0].path)
    assert sorted(e["user_id"] for e in events) == ["first", "last"]
    assert [MEMBER_RE.match(n).group(4) for n in names] == ["10", "12"]  # type: ignore[union-attr]
    assert result.bytes_written == result.files[0].path.stat().st_size > 0
    assert (result.empty_windows, result.split_windows, result.retries) == ([], [], 0)


def test_written_zip_has_export_members_of_gzip_ndjson(tmp_path: Path) -> None:
    events = list(make_events(T0 + timedelta(hours=8), hours=3, per_hour=5))
    with fake(events, events_per_member=2) as server:
        result = export_range(
            "20240301T08",
            "20240301T10",
            tmp_path,
            api_key=API_KEY,
            secret_key=SECRET_KEY,
            base_url=server.url,
        )
    names, got = read_zip(result.paths[0])
    assert len(names) == 9  # 3 members per hour (5 events, 2 per member)
    for name in names:
        m = MEMBER_RE.match(name)
        assert m and m.group(1) == m.group(2) == "123456" and m.group(3) == "2024-03-01"
    assert {MEMBER_RE.match(n).group(4) for n in names} == {"8", "9", "10"}  # type: ignore[union-attr]
    assert sorted(e["uuid"] for e in got) == sorted(e["uuid"] for e in events)
    assert [p.name for p in tmp_path.iterdir()] == ["20240301T08-20240301T10.zip"]  # no temp left


def test_404_is_an_empty_window_not_an_error(tmp_path: Path) -> None:
    with fake(list(make_events(T0, 1))) as server, client(server) as c:
        result = c.export_range("20240302T00", "20240302T05", tmp_path)
    assert result.files == [] and [str(w) for w in result.empty_windows] == [
        "20240302T00..20240302T05"
    ]
    assert server.requests[0].status == 404 and result.retries == 0
    assert list(tmp_path.iterdir()) == []


def test_too_large_splits_in_halves_and_records_sub_windows(tmp_path: Path) -> None:
    # 4 hours x 3 events and at most 3 events per response: 4 h -> 2 h halves -> 1 h each.
    events = list(make_events(T0, hours=4, per_hour=3))
    with fake(events, max_events_per_response=3) as server, client(server) as c:
        result = c.export_range("20240301T00", "20240301T03", tmp_path)
    assert hours(server) == [
        ("20240301T00", "20240301T03"),
        ("20240301T00", "20240301T01"),
        ("20240301T00", "20240301T00"),
        ("20240301T01", "20240301T01"),
        ("20240301T02", "20240301T03"),
        ("20240301T02", "20240301T02"),
        ("20240301T03", "20240301T03"),
    ]
    assert [r.status for r in server.requests] == [400, 400, 200, 200, 400, 200, 200]
    assert [str(w) for w in result.split_windows] == [
        "20240301T00..20240301T03",
        "20240301T00..20240301T01",
        "20240301T02..20240301T03",
    ]
    assert [f.path.name for f in result.files] == [
        f"20240301T0{h}-20240301T0{h}.zip" for h in range(4)
    ]
    got = [e["uuid"] for f in result.files for e in read_zip(f.path)[1]]
    assert sorted(got) == sorted(e["uuid"] for e in events)


def test_one_hour_still_too_large_recommends_s3(tmp_path: Path) -> None:
    events = list(make_events(T0, hours=2, per_hour=3))
    with (
        fake(events, max_events_per_response=2) as server,
        client(server) as c,
        pytest.raises(ExportTooLargeError, match="S3") as info,
    ):
        c.export_range("20240301T00", "20240301T01", tmp_path)
    assert "20240301T00..20240301T00" in str(info.value)
    assert len(server.requests) == 2


def test_plain_400_is_a_clear_error_not_a_split(tmp_path: Path) -> None:
    # the client validates windows itself, so the bad window is forced onto the wire
    with pytest.raises(ExportError, match="HTTP 400: Invalid start or end"):
        _export_with_raw_params(tmp_path, {"start": "2024", "end": "x"})


def _export_with_raw_params(tmp_path: Path, params: dict[str, str]) -> None:
    """Drive the client with query parameters the local validation would reject."""

    class Tamper(requests.Session):
        def get(self, url: str | bytes, **kw: Any) -> requests.Response:  # type: ignore[override]
            kw["params"] = params
            return super().get(url, **kw)

    with fake(list(make_events(T0, 1))) as server:
        c = client(server, session=Tamper())
        try:
            c.export_range("20240301T00", "20240301T00", tmp_path)
        finally:
            assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_retries_5xx_then_succeeds(tmp_path: Path, status: int) -> None:
    delays: list[float] = []
    with fake(list(make_events(T0, 2))) as server:
        server.fail_next(2, status=status)
        with client(server, retry(backoff_base=0.5, backoff_cap=1.0), sleep=delays.append) as c:
            result = c.export_range("20240301T00", "20240301T01", tmp_path)
    assert [r.status for r in server.requests] == [status, status, 200]
    assert (result.retries, result.requests, len(result.files)) == (2, 3, 1)
    assert (
        len(delays) == 2 and 0 <= delays[0] <= 0.5 and 0 <= delays[1] <= 1.0
    )  # full jitter, capped
    zipfile.ZipFile(result.paths[0]).testzip()


def test_bounded_retries_then_clear_error(tmp_path: Path) -> None:
    with fake(list(make_events(T0, 1))) as server:
        server.fail_next(10, status=504)
        with client(server, retry(max_attempts=3)) as c, pytest.raises(ExportError) as info:
            c.export_range("20240301T00", "20240301T00", tmp_path)
    message = str(info.value)
    assert "after 3 attempt(s)" in message and "HTTP 504" in message and "shorter range" in message
    assert len(server.requests) == 3
    assert list(tmp_path.iterdir()) == []


def test_retry_time_budget_bounds_the_total(tmp_path: Path) -> None:
    with fake(list(make_events(T0, 1))) as server:
        server.fail_next(10, status=500)
        with (
            client(
                server,
                retry(max_attempts=51, backoff_base=1.0, max_total_seconds=0.0),
                sleep=lambda _s: None,
            ) as c,
            pytest.raises(ExportError, match="1 attempt"),
        ):
            c.export_range("20240301T00", "20240301T00", tmp_path)
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", ["truncate", "disconnect"])
def test_truncated_body_is_detected_and_retried(tmp_path: Path, mode: str) -> None:
    with fake(list(make_events(T0, 2, per_hour=50))) as server:
        server.truncate_next(1, mode=mode)  # type: ignore[arg-type]
        with client(server) as c:
            result = c.export_range("20240301T00", "20240301T01", tmp_path)
        assert [(r.status, r.fault) for r in server.requests] == [(200, mode), (200, None)]
    assert result.retries == 1
    assert len(read_zip(result.paths[0])[1]) == 100
    assert [p.name for p in tmp_path.iterdir()] == ["20240301T00-20240301T01.zip"]


def test_truncated_every_time_fails_without_leaving_files(tmp_path: Path) -> None:
    with fake(list(make_events(T0, 1, per_hour=50))) as server:
        server.truncate_next(5)
        with (
            client(server, retry(max_attempts=2)) as c,
            pytest.raises(ExportError, match="truncated"),
        ):
            c.export_range("20240301T00", "20240301T00", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_streams_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The body is read with stream=True in bounded chunks; Response.content is never used."""
    import os

    events = [
        make_event(
            server_upload_time=T0 + timedelta(seconds=i),
            event_properties={"blob": os.urandom(256).hex()},  # incompressible-ish
        )
        for i in range(3000)
    ]
    seen: dict[str, Any] = {"stream": None, "chunks": []}

    class Recording(requests.Session):
        def get(self, url: str | bytes, **kw: Any) -> requests.Response:  # type: ignore[override]
            seen["stream"] = kw.get("stream")
            response = super().get(url, **kw)
            inner = response.iter_content

            def iter_content(chunk_size: int = 1, decode_unicode: bool = False) -> Any:
                for chunk in inner(chunk_size=chunk_size, decode_unicode=decode_unicode):
                    seen["chunks"].append(len(chunk))
                    yield chunk

            response.iter_content = iter_content  # type: ignore[method-assign]
            return response

    def no_content(self: requests.Response) -> bytes:
        raise AssertionError("the export body must not be loaded into memory")

    monkeypatch.setattr(requests.Response, "content", property(no_content))
    chunk = 64 * 1024
    with fake(events) as server, client(server, session=Recording(), chunk_size=chunk) as c:
        result = c.export_range("20240301T00", "20240301T00", tmp_path)
    size = result.files[0].bytes
    assert seen["stream"] is True
    assert size > 1_000_000
    assert max(seen["chunks"]) <= chunk and len(seen["chunks"]) >= size // chunk
    assert sum(seen["chunks"]) == size == result.paths[0].stat().st_size
    monkeypatch.undo()
    assert len(read_zip(result.paths[0])[1]) == 3000


def test_keys_never_leak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = AmplitudeExportClient(API_KEY, SECRET_KEY, region="eu")
    assert API_KEY not in repr(c) and SECRET_KEY not in repr(c)
    assert "analytics.eu.amplitude.com" in repr(c)
    messages: list[str] = []
    with fake(list(make_events(T0, 2))) as server:
        server.fail_next(3, status=500)
        with client(server, retry(max_attempts=2)) as c2, pytest.raises(ExportError) as info:
            c2.export_range("20240301T00", "20240301T01", tmp_path)
        messages.append(str(info.value))
        with client(server) as c3:
            result = c3.export_range("20240301T00", "20240301T01", tmp_path)
    messages.append(repr(result))
    blob = "\n".join(messages).encode()
    for path in tmp_path.rglob("*"):
        blob += path.name.encode() + path.read_bytes()
        with zipfile.ZipFile(path) as zf:
            blob += b"".join(gzip.decompress(zf.read(n)) for n in zf.namelist())
    for secret in (API_KEY, SECRET_KEY):
        assert secret.encode() not in blob
        assert base64.b64encode(f"{API_KEY}:{SECRET_KEY}".encode()) not in blob


def test_connection_refused_is_retried_then_clear_error(tmp_path: Path) -> None:
    with fake() as server:
        url = server.url
    # the server is stopped: nothing listens on that port any more
    c = AmplitudeExportClient(API_KEY, SECRET_KEY, base_url=url, retry=retry(max_attempts=3))
    with pytest.raises(ExportError, match=r"after 3 attempt.*connection error") as info:
        c.export_range("20240301T00", "20240301T00", tmp_path)
    assert API_KEY not in str(info.value)


def test_export_errors_never_show_the_amplitude_keys(tmp_path: Path) -> None:
    basic = base64.b64encode(b"amp-key-123:amp-secret-456").decode()

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"bad request from amp-key-123 / amp-secret-456 / {basic}".encode()
            self.send_response(418)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with (
            AmplitudeExportClient("amp-key-123", "amp-secret-456", base_url=url) as client,
            pytest.raises(ExportError) as info,
        ):
            client.export_range("20261120T00", "20261120T00", tmp_path)
    finally:
        server.shutdown()
    message = str(info.value)
    assert "418" in message and "***" in message
    for secret in ("amp-key-123", "amp-secret-456", basic, basic.rstrip("=")):
        assert secret not in message and secret not in repr(client)
