"""A lean HTTP/1.1 client for small POSTs: keep-alive connections on asyncio, httptools.

Accoil takes one small JSON call per request, so a client's cost per request is the
delivery's cost per call. A general client spends most of it on what this path never
uses (cookies, redirects, multipart, compression, tracing, per-request settings): on
this machine aiohttp takes ~150 µs of CPU a request and requests ~1 ms, where this
module takes ~20 µs (``benchmarks/bench_delivery.py``). It does only what the path
needs, over asyncio transports, with llhttp (httptools, the parser uvicorn uses)
reading the responses:

- one request at a time per connection; connections are kept alive and reused, and a
  new one is opened when none is idle (the caller bounds how many are in use);
- TLS with the context it is given; through a proxy, a ``CONNECT`` tunnel (then TLS to
  the origin for https), with ``user:password@`` in the proxy URL as Basic credentials;
- a connect timeout (TCP, tunnel and TLS handshake together) and a read timeout (from
  the request written to the response complete);
- a response's status is its answer even if the connection then breaks in the body.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

import httptools

#: (scheme, host, port)
Origin = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Response:
    """The status, the ``Retry-After`` header (``None`` if absent) and the body's start."""

    status: int
    retry_after: str | None
    body: bytes


class ProtocolError(ConnectionError):
    """The peer sent something that is not an HTTP/1.x response."""


class _Connection(asyncio.Protocol):
    """One connection; :meth:`exchange` writes a request and waits for its response."""

    def __init__(self, keep_bytes: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False
        self._keep = keep_bytes
        self._waiter: asyncio.Future[Response] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._status = 0
        self._retry_after: str | None = None
        self._body = bytearray()
        self._tunnel: asyncio.Future[bytes] | None = None
        self._tunnel_buffer = b""

    # ----------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel_data(data)
        elif self._parser is None:  # bytes nobody asked for: the connection can't be trusted
            self.close()
        else:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self._fail(ProtocolError(f"invalid HTTP response: {exc}"))
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(ConnectionError("the proxy closed the connection"))
        if self._waiter is not None and not self._waiter.done():
            if self._status >= 200:  # the status came back: that is the answer
                self._finish(reusable=False)
            else:
                detail = f": {exc}" if exc else ""
                self._fail(ConnectionError(f"connection closed before a response{detail}"))

    # ----------------------------------------------------------------- parser callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry_after = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        room = self._keep - len(self._body)
        if room > 0:
            self._body += body[:room]

    def on_message_complete(self) -> None:
        assert self._parser is not None
        if self._status < 200:  # 1xx: the real response follows
            self._status, self._retry_after = 0, None
            return
        self._finish(reusable=self._parser.should_keep_alive())

    # ----------------------------------------------------------------- requests

    async def exchange(self, request: bytes, timeout: float) -> Response:
        """Write ``request`` and return its response; raise ``ConnectionError``,
        ``TimeoutError`` or :class:`ProtocolError` when none came."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._status, self._retry_after, self.reusable = 0, None, False
        self._body = bytearray()
        self.transport.write(request)
        timer = loop.call_later(timeout, self._time_out, timeout)
        try:
            return await waiter
        except asyncio.CancelledError:
            self.close()  # the response may still come: the connection can't be reused
            raise
        finally:
            timer.cancel()
            self._waiter = self._parser = None

    def _finish(self, *, reusable: bool) -> None:
        self.reusable = reusable and not self.closed
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Response(self._status, self._retry_after, bytes(self._body)))

    def _fail(self, exc: BaseException) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _time_out(self, seconds: float) -> None:
        if self._waiter is not None and not self._waiter.done():
            got = "a partial response" if self._status else "no response"
            self._fail(TimeoutError(f"{got} within {seconds:g} s"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # ----------------------------------------------------------------- proxy tunnel

    async def open_tunnel(self, host: str, port: int, proxy_auth: str | None) -> None:
        """Ask the proxy for a tunnel to ``host:port`` (``CONNECT``); raise unless 2xx."""
        assert self.transport is not None
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if proxy_auth:
            lines.append(f"Proxy-Authorization: Basic {proxy_auth}")
        self._tunnel = asyncio.get_running_loop().create_future()
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head = await self._tunnel
        finally:
            self._tunnel = None
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].startswith("2"):
            raise ProtocolError(f"the proxy refused the tunnel to {target}: {status_line!r}")

    def _tunnel_data(self, data: bytes) -> None:
        assert self._tunnel is not None
        self._tunnel_buffer += data
        end = self._tunnel_buffer.find(b"\r\n\r\n")
        if end >= 0 and not self._tunnel.done():
            self._tunnel.set_result(self._tunnel_buffer[:end])
            self._tunnel_buffer = b""
        elif len(self._tunnel_buffer) > 65536 and not self._tunnel.done():
            self._tunnel.set_exception(ProtocolError("the proxy's answer has no end of headers"))


class ConnectionPool:
    """POST bodies to URLs over kept-alive connections::

    pool = ConnectionPool({"Authorization": "Basic ..."}, ssl_context=ctx)
    response = await pool.post("https://in.accoil.com/v2/track", b'{"userId": "u1"}')
    await pool.close()

    ``headers`` go on every request (with ``Host`` and ``Content-Length``);
    ``proxy_for(url)`` names the proxy for a URL (``None``: connect directly), asked
    once per origin. ``keep_bytes`` of each response body are kept.
    """

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        ssl_context: ssl.SSLContext,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        keep_bytes: int = 2048,
        proxy_for: Callable[[str], str | None] = lambda url: None,
    ) -> None:
        for name, value in headers.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} has a line break or NUL")
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keep = keep_bytes
        self._proxy_for = proxy_for
        self._targets: dict[str, tuple[Origin, bytes]] = {}
        self._proxies: dict[Origin, str | None] = {}
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()

    async def post(self, url: str, body: bytes) -> Response:
        """Send one POST; raise ``OSError`` (``ConnectionError``, ``TimeoutError``,
        ``ssl.SSLError``) or :class:`ProtocolError` when no response came."""
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = self._target(url)
        origin, head = target
        conn = await self._connection(origin, url)
        try:
            response = await conn.exchange(
                head + b"%d\r\n\r\n" % len(body) + body, self._read_timeout
            )
        except BaseException:
            self._discard(conn)
            raise
        if conn.reusable:
            self._idle.setdefault(origin, []).append(conn)
        else:
            self._discard(conn)
        return response

    async def close(self) -> None:
        """Close every connection."""
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    def _target(self, url: str) -> tuple[Origin, bytes]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = port == (443 if parts.scheme == "https" else 80)
        host = parts.hostname
        host_header = f"[{host}]" if ":" in host else host
        if not default_port:
            host_header += f":{port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n{self._headers}Content-Length: "
        return (parts.scheme, host, port), head.encode("latin-1")

    async def _connection(self, origin: Origin, url: str) -> _Connection:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
            self._open.discard(conn)
        if origin not in self._proxies:
            self._proxies[origin] = self._proxy_for(url)
        async with asyncio.timeout(self._connect_timeout):
            return await self._connect(origin, self._proxies[origin])

    async def _connect(self, origin: Origin, proxy: str | None) -> _Connection:
        loop = asyncio.get_running_loop()
        scheme, host, port = origin
        tls = self._ssl if scheme == "https" else None

        def factory() -> _Connection:
            return _Connection(self._keep)

        if proxy is None:
            _, conn = await loop.create_connection(
                factory, host, port, ssl=tls, server_hostname=host if tls else None
            )
            self._open.add(conn)
            return conn
        via = urlsplit(proxy if "//" in proxy else f"http://{proxy}")
        if not via.hostname:
            raise ProtocolError("the proxy address in the environment has no host name")
        proxy_tls = self._ssl if via.scheme == "https" else None
        transport, conn = await loop.create_connection(
            factory,
            via.hostname,
            via.port or (443 if proxy_tls else 80),
            ssl=proxy_tls,
            server_hostname=via.hostname if proxy_tls else None,
        )
        self._open.add(conn)
        try:
            auth = None
            if via.username is not None:
                user_pass = f"{unquote(via.username)}:{unquote(via.password or '')}"
                auth = base64.b64encode(user_pass.encode()).decode("ascii")
            await conn.open_tunnel(host, port, auth)
            if tls is not None:
                upgraded = await loop.start_tls(transport, conn, tls, server_hostname=host)
                conn.transport = cast(asyncio.Transport, upgraded)
        except BaseException:
            self._discard(conn)
            raise
        return conn

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._open.discard(conn)
