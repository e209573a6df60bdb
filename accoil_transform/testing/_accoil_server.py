"""A local stand-in for Accoil's ingress API: a real HTTP server on loopback.

It speaks the v2, ``/segment`` and legacy v1 contracts (see :mod:`accoil_transform.calls` and the
reference notes): ``202`` for a valid call, ``400`` with a ``{"message"}`` for a body
that breaks the contract, ``401`` for a wrong key. An empty object ``{}`` posted to
``/segment`` is an authentication test, as Segment's destination and ``accoil-transform
check`` send it: ``200`` once the key passes, and no call is recorded as accepted. It
records every call it accepted,
with server-side timestamps, and injects faults on demand (:class:`FaultPlan`)::

    with LocalAccoil(api_key="test-key") as srv:
        run_my_pipeline(base_url=srv.base_url, api_key="test-key")
        assert len(srv.accepted) == expected

HTTP/1.1 with keep-alive, served by an asyncio loop on a background thread: one
thread for any number of connections, and injected latency costs no thread.

Two extra routes exist only here: ``GET /_stats`` (counters as JSON) and
``GET /_accepted`` (the accepted calls as NDJSON), for use from the command line.
"""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from http import HTTPStatus
from typing import Any

import orjson

from ..config import DEFAULT_MAX_BODY_BYTES

DEFAULT_API_KEY = "test-key"
BAD_AUTH_MESSAGE = "API Key should start with 'Basic' and be followed by a space and your API key."

#: Fault names accepted by :meth:`FaultPlan.script` besides plain statuses.
DROP = "drop"
#: Accept the call, answer ``202`` with its headers, then close before the body.
CUT_AFTER_STATUS = "cut-after-status"


# --------------------------------------------------------------------------- contracts


def _is_str(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _is_iso(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_ms(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check(
    body: dict[str, Any], required: tuple[str, ...], optional: dict[str, type]
) -> str | None:
    for name in required:
        if not _is_str(body.get(name)):
            return f"'{name}' is required and must be a non-empty string"
    for name, typ in optional.items():
        if name in body and body[name] is not None and not isinstance(body[name], typ):
            return f"'{name}' must be of type {typ.__name__}"
    return None


def _v2(
    required: tuple[str, ...], optional: dict[str, type]
) -> Callable[[dict[str, Any]], str | None]:
    def validate(body: dict[str, Any]) -> str | None:
        if "timestamp" in body and not _is_iso(body["timestamp"]):
            return "'timestamp' must be an ISO 8601 date-time string"
        return _check(body, required, optional)

    return validate


def _v1(
    required: tuple[str, ...], optional: dict[str, type]
) -> Callable[[dict[str, Any]], str | None]:
    def validate(body: dict[str, Any]) -> str | None:
        if not _is_ms(body.get("timestamp")):
            return "'timestamp' is required and must be an integer (Unix milliseconds)"
        return _check(body, required, optional)

    return validate


_SEGMENT_REQUIRED: dict[str, tuple[str, ...]] = {
    "identify": ("userId",),
    "group": ("userId", "groupId"),
    "track": ("userId", "event"),
    "page": ("userId", "name"),
    "screen": ("userId", "name"),
}


def _segment(body: dict[str, Any]) -> str | None:
    kind = body.get("type")
    if kind not in _SEGMENT_REQUIRED:
        return f"'type' must be one of {', '.join(_SEGMENT_REQUIRED)}"
    if not _is_iso(body.get("timestamp")):
        return "'timestamp' is required and must be an ISO 8601 date-time string"
    return _check(body, _SEGMENT_REQUIRED[kind], {"traits": dict})


@dataclass(frozen=True, slots=True)
class _Route:
    fmt: str  # "v2", "segment" or "v1"
    kind: str
    validate: Callable[[dict[str, Any]], str | None]


_ROUTES: dict[str, _Route] = {
    "/v2/identify": _Route("v2", "identify", _v2(("userId",), {"traits": dict, "groupId": str})),
    "/v2/group": _Route("v2", "group", _v2(("groupId",), {"traits": dict, "userId": str})),
    "/v2/track": _Route("v2", "track", _v2(("userId", "event"), {})),
    "/segment": _Route("segment", "segment", _segment),
    "/v1/users": _Route("v1", "identify", _v1(("user_id",), {"traits": dict, "group_id": str})),
    "/v1/groups": _Route("v1", "group", _v1(("group_id",), {"traits": dict, "user_id": str})),
    "/v1/events": _Route("v1", "track", _v1(("user_id", "event"), {})),
}


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: a status (with ``Retry-After``) or a dropped connection."""

    status: int | None = None
    retry_after: str | None = None
    cut: bool = False
    """Accept the call, then break the connection after the status line and headers."""

    @property
    def drop(self) -> bool:
        return self.status is None and not self.cut

    @property
    def name(self) -> str:
        return CUT_AFTER_STATUS if self.cut else DROP if self.drop else str(self.status)


@dataclass
class FaultPlan:
    """Which requests fail, and how. Safe to change while the server runs.

    Probabilities are per request and drawn from a seeded RNG; a scripted fault
    (:meth:`script`) applies to the next requests first. Latency applies to every
    response; ``max_body_bytes`` turns larger bodies into ``413``.
    """

    latency_ms: float = 0.0
    rate_limit: float = 0.0
    """Probability of ``429`` (with ``Retry-After: retry_after`` if set)."""
    retry_after: str | None = "1"
    server_error: float = 0.0
    """Probability of ``500``."""
    unavailable: float = 0.0
    """Probability of ``503``."""
    drop: float = 0.0
    """Probability that the connection is closed with no response."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    seed: int | None = 0
    _script: deque[Fault] = field(default_factory=deque, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def script(self, fault: int | str, count: int = 1, *, retry_after: str | None = None) -> None:
        """Make the next ``count`` requests fail with ``fault``: a status, ``"drop"``, or
        ``"cut-after-status"`` (the call is accepted, then the connection breaks)."""
        if fault == CUT_AFTER_STATUS:
            item = Fault(cut=True)
        else:
            item = Fault(None) if fault == DROP else Fault(int(fault), retry_after)
        with self._lock:
            self._script.extend([item] * count)

    def clear(self) -> None:
        """Forget the scripted faults and turn every probability to zero."""
        with self._lock:
            self._script.clear()
            self.rate_limit = self.server_error = self.unavailable = self.drop = 0.0

    def draw(self) -> Fault | None:
        """The fault for the next request, if any."""
        with self._lock:
            if self._script:
                return self._script.popleft()
            if not (self.drop or self.rate_limit or self.server_error or self.unavailable):
                return None
            r = self._rng.random()
        for p, fault in (
            (self.drop, Fault(None)),
            (self.rate_limit, Fault(429, self.retry_after)),
            (self.server_error, Fault(500)),
            (self.unavailable, Fault(503)),
        ):
            if r < p:
                return fault
            r -= p
        return None


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class AcceptedCall:
    """A call the server answered with ``202``. ``body`` never holds ``api_key``."""

    seq: int
    fmt: str
    kind: str
    path: str
    body: dict[str, Any]
    mono: float
    wall: float


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Any request the server read; ``status`` is ``None`` for a dropped connection."""

    seq: int
    method: str
    path: str
    status: int | None
    fault: str | None
    body: dict[str, Any] | None
    mono: float
    wall: float


# --------------------------------------------------------------------------- server


@dataclass(frozen=True, slots=True)
class _Reply:
    """What to answer; ``status=None`` closes the connection with no response."""

    status: int | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    cut: bool = False


def _json_reply(status: int, message: str, **kwargs: Any) -> _Reply:
    return _Reply(status, orjson.dumps({"message": message}), **kwargs)


def _encode(reply: _Reply, close: bool) -> bytes:
    assert reply.status is not None
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Status"
    lines = [f"HTTP/1.1 {reply.status} {phrase}", f"Content-Length: {len(reply.body)}"]
    if reply.body:
        lines.append("Content-Type: application/json")
    if close:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in reply.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body


class LocalAccoil:
    """A local Accoil ingress server on ``127.0.0.1`` (a free port by default).

    ``api_key=None`` accepts any key. ``record=False`` keeps only counters, for long
    benchmarks. Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        api_key: str | None = DEFAULT_API_KEY,
        *,
        faults: FaultPlan | None = None,
        port: int = 0,
        record: bool = True,
    ) -> None:
        self._api_key = api_key
        self.faults = faults or FaultPlan()
        self.record = record
        self._port = port
        self._lock = threading.Lock()
        self._accepted: list[AcceptedCall] = []
        self._requests: list[RequestRecord] = []
        self._seq = 0
        self._status_counts: Counter[str] = Counter()
        self._accepted_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._auth_values: dict[str, str] = {}
        if api_key is not None:
            b64 = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
            self._auth_values = {"v2": f"Basic {api_key}", "segment": f"Basic {b64}"}

    def __repr__(self) -> str:
        state = self.base_url if self._server else "stopped"
        return f"LocalAccoil({state})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalAccoil:
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True, name="local-accoil")
        thread.start()
        coro = asyncio.start_server(self._serve_connection, "127.0.0.1", self._port, backlog=512)
        try:
            self._server = asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=10)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        server, loop, thread = self._server, self._loop, self._thread
        if server is None or loop is None or thread is None:
            return
        self._server = None

        async def shutdown() -> None:
            server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            await server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    def __enter__(self) -> LocalAccoil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ records

    @property
    def accepted(self) -> list[AcceptedCall]:
        """Every accepted call, in arrival order (a copy)."""
        with self._lock:
            return list(self._accepted)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request read, faulted or not, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, Any]:
        """Counters: requests read, calls accepted, responses by status (``drop``)."""
        with self._lock:
            return {
                "requests": self._seq,
                "accepted": self._accepted_count,
                "by_status": dict(self._status_counts),
            }

    def reset(self) -> None:
        """Forget the records and counters (faults are kept)."""
        with self._lock:
            self._accepted.clear()
            self._requests.clear()
            self._status_counts.clear()
            self._accepted_count = 0

    # ------------------------------------------------------------------ HTTP

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One keep-alive connection: read a request, answer it, repeat."""
        self._connections.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                request_line, _, header_block = head[:-4].decode("latin-1").partition("\r\n")
                method, _, rest = request_line.partition(" ")
                target, _, version = rest.partition(" ")
                headers: dict[str, str] = {}
                for line in header_block.split("\r\n"):
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                close = version != "HTTP/1.1" or headers.get("connection", "").lower() == "close"
                length = headers.get("content-length", "0" if method == "GET" else "")
                if not length.isdigit() or "transfer-encoding" in headers:
                    reply, close = _json_reply(411, "a Content-Length is required"), True
                    self._record(target, 411, None, None, time.monotonic(), time.time())
                else:
                    try:
                        raw = await reader.readexactly(int(length))
                    except (asyncio.IncompleteReadError, OSError):
                        return
                    try:
                        reply = self._handle(method, target, headers, raw)
                    except Exception as exc:  # a bug here must not look like a drop
                        reply = _json_reply(500, f"stand-in error: {type(exc).__name__}: {exc}")
                if reply.delay > 0:
                    await asyncio.sleep(reply.delay)
                if reply.status is None:  # injected drop
                    writer.transport.abort()
                    return
                if reply.cut:  # the status line and headers, then the connection breaks
                    writer.write(_encode(reply, close)[: -len(reply.body)])
                    await writer.drain()
                    writer.transport.abort()
                    return
                writer.write(_encode(reply, close))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._connections.discard(writer)
            writer.close()

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Reply:
        path = target.split("?", 1)[0]
        if method == "GET":
            return self._handle_get(path)
        if method != "POST":
            return _json_reply(405, "only POST is supported")
        return self._handle_post(path, headers, raw)

    def _handle_get(self, path: str) -> _Reply:
        if path == "/_stats":
            return _Reply(200, orjson.dumps(self.stats()))
        if path == "/_accepted":
            lines = [
                orjson.dumps(
                    {"seq": c.seq, "kind": c.kind, "path": c.path, "wall": c.wall, "body": c.body}
                )
                + b"\n"
                for c in self.accepted
            ]
            return _Reply(200, b"".join(lines))
        return _json_reply(405, "only POST is supported")

    def _handle_post(self, path: str, headers: dict[str, str], raw: bytes) -> _Reply:
        mono, wall = time.monotonic(), time.time()
        body, body_key = _parse(raw)
        fault = self.faults.draw()
        delay = self.faults.latency_ms / 1000
        if fault is not None and fault.drop:
            self._record(path, None, DROP, body, mono, wall)
            return _Reply(None, delay=delay)
        extra: tuple[tuple[str, str], ...] = ()
        fault_name: str | None = None
        if len(raw) > self.faults.max_body_bytes:
            status, message = 413, "Payload too large"
        elif fault is not None and fault.cut:  # a real answer, whose body never comes
            status, message = self._check_call(path, headers, body, body_key)
            fault_name = fault.name
        elif fault is not None:
            status, message, fault_name = fault.status or 500, "injected fault", fault.name
            extra = (("Retry-After", fault.retry_after),) if fault.retry_after else ()
        else:
            status, message = self._check_call(path, headers, body, body_key)
        call = None
        if status == 202:
            assert body is not None
            route = _ROUTES[path]
            kind = body["type"] if route.fmt == "segment" else route.kind
            call = AcceptedCall(0, route.fmt, kind, path, body, mono, wall)
        self._record(path, status, fault_name, body, mono, wall, call)
        if fault is not None and fault.cut:
            return _Reply(status, b'{"message": "accepted"}', delay=delay, cut=True)
        if status == 202:
            return _Reply(202, delay=delay)
        return _json_reply(status, message, headers=extra, delay=delay)

    def _check_call(
        self, path: str, headers: dict[str, str], body: dict[str, Any] | None, body_key: object
    ) -> tuple[int, str]:
        """(status, message) for one call under its route's contract."""
        route = _ROUTES.get(path)
        if route is None:
            return 404, f"no such endpoint: {path}"
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            return 400, "Content-Type must be application/json"
        if body is None:
            return 400, "the body must be a JSON object"
        if route.fmt == "v1":
            if not _is_str(body_key):
                return 400, "'api_key' is required in the body"
            if self._api_key is not None and body_key != self._api_key:
                return 401, "invalid API key"
        else:
            auth = headers.get("authorization", "")
            if not auth.startswith("Basic ") or len(auth) <= len("Basic "):
                return 400, BAD_AUTH_MESSAGE
            if self._api_key is not None and auth != self._auth_values[route.fmt]:
                return 401, "invalid API key"
            if route.fmt == "segment" and body == {}:  # an authentication test, not a call
                return 200, "authenticated"
        error = route.validate(body)
        return (400, error) if error is not None else (202, "")

    def _record(
        self,
        path: str,
        status: int | None,
        fault: str | None,
        body: dict[str, Any] | None,
        mono: float,
        wall: float,
        call: AcceptedCall | None = None,
    ) -> None:
        with self._lock:
            self._seq += 1
            self._status_counts[DROP if status is None else str(status)] += 1
            if call is not None:
                self._accepted_count += 1
            if self.record:
                self._requests.append(
                    RequestRecord(self._seq, "POST", path, status, fault, body, mono, wall)
                )
                if call is not None:
                    self._accepted.append(replace(call, seq=self._seq))


def _parse(raw: bytes) -> tuple[dict[str, Any] | None, object]:
    """The body as a JSON object without ``api_key``, and the ``api_key`` value."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    return body, body.pop("api_key", None)
