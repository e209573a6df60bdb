"""A local stand-in for the Amplitude Export API, on 127.0.0.1, for tests.

:class:`LocalAmplitudeExport` is a real HTTP server (``ThreadingHTTPServer`` in a
thread). It checks HTTP Basic auth, parses ``start``/``end`` (``YYYYMMDDTHH``, both
hours included) and answers with a real zip of gzip NDJSON members named
``<proj>/<proj>_<yyyy-mm-dd>_<H>#<n>.json.gz`` holding the events whose
``server_upload_time`` hour falls in the window; 404 when there are none; 400 "too
large" when the window holds more than ``max_events_per_response`` events. Faults can
be scripted for the next requests: an HTTP status (500/502/503/504), a ``"truncate"``d
zip (short body, honest ``Content-Length``) or a ``"disconnect"`` mid-body.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import threading
import zipfile
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from ..read import member_name

EXPORT_PATH = "/api/2/export"
_HOUR_FORMAT = "%Y%m%dT%H"
TOO_LARGE_BODY = (
    "Raw data files were too large to download: the response exceeds the 4GB size limit. "
    "Please request a shorter time range."
)

Fault = int | Literal["truncate", "disconnect"]


# --------------------------------------------------------------------------- server


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A request the stand-in received, and how it answered."""

    path: str
    start: str | None
    end: str | None
    authorization: str | None
    status: int
    fault: str | None = None


def _upload_hour(event: Mapping[str, Any]) -> datetime:
    raw = str(event["server_upload_time"]).replace("Z", "")
    dt = datetime.fromisoformat(raw)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.replace(minute=0, second=0, microsecond=0)


class LocalAmplitudeExport:
    """The Export API on 127.0.0.1, with scripted faults. Use as a context manager."""

    def __init__(
        self,
        events: Iterable[Mapping[str, Any]] = (),
        *,
        api_key: str = "test-amplitude-api-key",
        secret_key: str = "test-amplitude-secret-key",
        project_id: int = 123456,
        max_events_per_response: int | None = None,
        events_per_member: int = 1000,
        write_chunk: int = 64 * 1024,
    ) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.project_id = project_id
        self.max_events_per_response = max_events_per_response
        self.events_per_member = events_per_member
        self.write_chunk = write_chunk
        self.requests: list[ExportRequest] = []
        self._events: list[Mapping[str, Any]] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_events(events)

    # ------------------------------------------------------------------ setup

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self._events.extend(events)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` export requests with ``status``."""
        with self._lock:
            self._faults.extend([status] * n)

    def truncate_next(
        self, n: int = 1, mode: Literal["truncate", "disconnect"] = "truncate"
    ) -> None:
        """Cut the next ``n`` zip bodies in half.

        ``truncate`` sends half the zip with a matching ``Content-Length`` (a clean but
        truncated download); ``disconnect`` announces the full length and hangs up midway.
        """
        with self._lock:
            self._faults.extend([mode] * n)

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The export endpoint, to pass as the client's ``base_url``."""
        return self.base_url + EXPORT_PATH

    def start(self) -> LocalAmplitudeExport:
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="local-amplitude-export",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LocalAmplitudeExport:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ content

    def expected_auth(self) -> str:
        token = base64.b64encode(f"{self.api_key}:{self.secret_key}".encode()).decode("ascii")
        return f"Basic {token}"

    def events_in(self, start: datetime, end: datetime) -> list[Mapping[str, Any]]:
        """Held events whose ``server_upload_time`` hour is in ``[start, end]``."""
        with self._lock:
            events = list(self._events)
        return [e for e in events if start <= _upload_hour(e) <= end]

    def build_zip(self, events: Iterable[Mapping[str, Any]]) -> bytes:
        """A zip like the Export API's: gzip NDJSON members per upload hour, sparse ``#n``."""
        by_hour: dict[datetime, list[Mapping[str, Any]]] = defaultdict(list)
        for event in events:
            by_hour[_upload_hour(event)].append(event)
        buf = io.BytesIO()
        proj = self.project_id
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for hour in sorted(by_hour):
                rows = by_hour[hour]
                for part, i in enumerate(range(0, len(rows), self.events_per_member)):
                    n = 3 + part * 41 + hour.hour * 7  # not a dense 0..k sequence
                    name = f"{proj}/" + member_name(proj, f"{hour:%Y-%m-%d}", hour.hour, n)
                    lines = "".join(
                        json.dumps(r, ensure_ascii=False) + "\n"
                        for r in rows[i : i + self.events_per_member]
                    )
                    zf.writestr(name, gzip.compress(lines.encode("utf-8"), compresslevel=1))
        return buf.getvalue()

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: ExportRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    fake: LocalAmplitudeExport
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        start_s = query.get("start", [None])[0]
        end_s = query.get("end", [None])[0]
        auth = self.headers.get("Authorization")

        def answer(status: int, body: bytes = b"", fault: str | None = None) -> None:
            self.fake._record(ExportRequest(parts.path, start_s, end_s, auth, status, fault))
            self._send(status, body)

        if parts.path.rstrip("/") != EXPORT_PATH:
            answer(404, b"Not Found")
            return
        fault = self.fake._next_fault()
        if isinstance(fault, int):
            answer(fault, b"Internal error" if fault != 504 else b"Gateway Timeout", str(fault))
            return
        if auth is None or not auth.startswith("Basic "):
            answer(401, b"Missing Basic authentication")
            return
        if auth != self.fake.expected_auth():
            answer(403, b"Invalid API key or secret key")
            return
        try:
            start = datetime.strptime(start_s or "", _HOUR_FORMAT)
            end = datetime.strptime(end_s or "", _HOUR_FORMAT)
        except ValueError:
            answer(400, b"Invalid start or end: expected YYYYMMDDTHH")
            return
        if start > end or end - start >= timedelta(days=365):
            answer(400, b"Invalid range: start must be <= end and at most 365 days")
            return
        events = self.fake.events_in(start, end)
        if not events:
            answer(404, b"No data found for the requested range")
            return
        limit = self.fake.max_events_per_response
        if limit is not None and len(events) > limit:
            answer(400, TOO_LARGE_BODY.encode())
            return
        body = self.fake.build_zip(events)
        if fault == "truncate":
            answer(200, body[: len(body) // 2], "truncate")
        elif fault == "disconnect":
            self.fake._record(ExportRequest(parts.path, start_s, end_s, auth, 200, "disconnect"))
            self._send(200, body[: len(body) // 2], content_length=len(body), close=True)
        else:
            answer(200, body)

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        content_length: int | None = None,
        close: bool = False,
    ) -> None:
        self.send_response(status)
        ctype = "application/zip" if status == 200 else "text/plain; charset=utf-8"
        self.send_header("Content-Type", ctype)
        self.send_header(
            "Content-Length", str(len(body) if content_length is None else content_length)
        )
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        for chunk in _chunks(body, self.fake.write_chunk):
            self.wfile.write(chunk)
        self.wfile.flush()


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
