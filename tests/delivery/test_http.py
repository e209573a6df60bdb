"""The lean HTTP/1.1 pool against raw sockets that answer as real servers and proxies do:
keep-alive, ``Connection: close``, bodies cut or read to the end, 1xx, garbage, silence,
and a ``CONNECT`` proxy (plain and TLS to the origin)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from accoil_transform.calls import AuthScheme
from accoil_transform.delivery import AccoilClient, HttpResult, TransportError
from accoil_transform.delivery._http import ConnectionPool, ProtocolError, Response
from tests.delivery.helpers import KEY

Handler = Callable[[socket.socket], None]


def read_request(sock: socket.socket) -> bytes:
    """One request (head and Content-Length body) from ``sock``; b"" at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def raw_server(handle: Handler) -> Iterator[tuple[str, list[int]]]:
    """A TCP server on 127.0.0.1 that runs ``handle(sock)`` per connection; yields its
    base URL and a list that grows by one per connection."""
    connections: list[int] = []

    class Handle(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connections.append(1)
            handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", connections
    finally:
        server.shutdown()
        server.server_close()


def answer_each(reply: bytes) -> Handler:
    def handle(sock: socket.socket) -> None:
        while read_request(sock):
            sock.sendall(reply)

    return handle


def posts(url: str, bodies: list[bytes], **pool_args: object) -> list[Response]:
    async def go() -> list[Response]:
        pool = ConnectionPool(
            {"X-Test": "1"}, ssl_context=ssl.create_default_context(), **pool_args
        )  # type: ignore[arg-type]
        try:
            return [await pool.post(url, body) for body in bodies]
        finally:
            await pool.close()

    return asyncio.run(go())


OK = b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok"


def test_a_connection_is_kept_alive_and_reused() -> None:
    with raw_server(answer_each(OK)) as (url, connections):
        replies = posts(url + "/v2/track", [b"{}"] * 5)
    assert [(r.status, r.body) for r in replies] == [(202, b"ok")] * 5
    assert len(connections) == 1


def test_connection_close_opens_a_new_connection_for_the_next_request() -> None:
    reply = b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    def handle(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(reply)
        sock.close()

    with raw_server(handle) as (url, connections):
        replies = posts(url + "/v2/track", [b"{}"] * 3)
    assert [r.status for r in replies] == [202] * 3
    assert len(connections) == 3


def test_the_request_has_host_headers_length_and_body() -> None:
    seen: list[bytes] = []

    def handle(sock: socket.socket) -> None:
        seen.append(read_request(sock))
        sock.sendall(OK)

    with raw_server(handle) as (url, _):
        posts(url + "/v2/track?x=1", [b'{"a": 1}'])
    port = url.rsplit(":", 1)[1]
    assert (
        seen[0]
        == (
            f"POST /v2/track?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Test: 1\r\n"
            'Content-Length: 8\r\n\r\n{"a": 1}'
        ).encode()
    )


def test_a_body_read_to_the_close_and_a_retry_after() -> None:
    def handle(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n\r\nslow down")
        sock.close()

    with raw_server(handle) as (url, _):
        (reply,) = posts(url + "/v2/track", [b"{}"])
    assert (reply.status, reply.retry_after, reply.body) == (429, "7", b"slow down")


def test_a_status_whose_body_is_cut_is_still_the_answer() -> None:
    def handle(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\npart")
        sock.close()

    with raw_server(handle) as (url, _):
        (reply,) = posts(url + "/v2/track", [b"{}"])
    assert (reply.status, reply.body) == (202, b"part")


def test_only_the_start_of_a_long_body_is_kept() -> None:
    long = b"x" * 10_000
    reply = b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n%s" % (len(long), long)
    with raw_server(answer_each(reply)) as (url, connections):
        replies = posts(url + "/v2/track", [b"{}", b"{}"], keep_bytes=100)
    assert [r.body for r in replies] == [b"x" * 100] * 2
    assert len(connections) == 1  # the rest of the body was read, the connection reused


def test_an_informational_response_is_skipped() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    with raw_server(answer_each(reply)) as (url, _):
        (response,) = posts(url + "/v2/track", [b"{}"])
    assert response.status == 202


def test_garbage_is_a_protocol_error() -> None:
    with (
        raw_server(answer_each(b"SSH-2.0-OpenSSH_9.6\r\n")) as (url, _),
        pytest.raises(ProtocolError, match="invalid HTTP response"),
    ):
        posts(url + "/v2/track", [b"{}"])


def test_a_close_before_any_answer_is_a_connection_error() -> None:
    def handle(sock: socket.socket) -> None:
        read_request(sock)
        sock.close()

    with (
        raw_server(handle) as (url, _),
        pytest.raises(ConnectionError, match="closed before a response"),
    ):
        posts(url + "/v2/track", [b"{}"])


def test_silence_is_a_read_timeout() -> None:
    def handle(sock: socket.socket) -> None:
        read_request(sock)
        sock.recv(1)  # holds the connection until the client gives up

    with raw_server(handle) as (url, _), pytest.raises(TimeoutError, match=r"within 0\.3 s"):
        posts(url + "/v2/track", [b"{}"], read_timeout=0.3)


def test_the_client_maps_failures_to_transport_errors_without_the_key() -> None:
    async def go(url: str) -> HttpResult:
        async with AccoilClient(KEY, AuthScheme.RAW_BASIC, timeout=(1.0, 0.3)) as client:
            return await client.post(url, b"{}")

    with (
        raw_server(answer_each(b"garbage\r\n\r\n")) as (url, _),
        pytest.raises(TransportError, match="no response") as info,
    ):
        asyncio.run(go(url + "/v2/track"))
    assert KEY not in str(info.value)


# --------------------------------------------------------------------------- proxies


@contextmanager
def connect_proxy(credentials: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """A CONNECT-only proxy; yields its URL and the targets it tunnelled to."""
    tunnels: list[str] = []

    def handle(client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if credentials and headers.get("Proxy-Authorization") != "Basic " + base64.b64encode(
            credentials.encode()
        ).decode("ascii"):
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            return
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        tunnels.append(target)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                # shutdown, not just close: it sends the FIN and wakes the other pipe's recv.
                with contextlib.suppress(OSError):
                    b.shutdown(socket.SHUT_RDWR)
                b.close()

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    with raw_server(handle) as (url, _):
        yield url, tunnels


def client_post(url: str) -> HttpResult:
    async def go() -> HttpResult:
        async with AccoilClient(KEY, AuthScheme.RAW_BASIC) as client:
            return await client.post(url, b'{"userId": "u", "event": "E"}')

    return asyncio.run(go())


def test_http_proxy_tunnels_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    with raw_server(answer_each(OK)) as (url, _), connect_proxy("me:s3cret") as (proxy, tunnels):
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://me:s3cret@"))
        monkeypatch.setenv("NO_PROXY", "")
        assert client_post(url + "/v2/track").status == 202
    assert tunnels == [url.removeprefix("http://")]


def test_a_refused_tunnel_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    with raw_server(answer_each(OK)) as (url, _), connect_proxy("me:right") as (proxy, _):
        monkeypatch.setenv("HTTP_PROXY", proxy.replace("http://", "http://me:wrong@"))
        monkeypatch.setenv("NO_PROXY", "")
        with pytest.raises(TransportError, match=r"refused the tunnel.*407"):
            client_post(url + "/v2/track")


def test_no_proxy_connects_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    with raw_server(answer_each(OK)) as (url, _), connect_proxy() as (proxy, tunnels):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert client_post(url + "/v2/track").status == 202
    assert tunnels == []


def test_https_through_a_proxy_verifies_the_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS to the origin inside the tunnel, verified against the bundle the environment
    names (here a self-signed certificate for 127.0.0.1)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    class Accept(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # The handshake happens in the handler's thread, not in the accept loop.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"127.0.0.1:{server.server_address[1]}"
    try:
        with connect_proxy() as (proxy, tunnels):
            monkeypatch.setenv("HTTPS_PROXY", proxy)
            monkeypatch.setenv("NO_PROXY", "")
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            assert client_post(f"https://{origin}/v2/track").status == 202
            monkeypatch.delenv("SSL_CERT_FILE")  # the system store does not know it
            with pytest.raises(Exception, match="TLS verification failed"):
                client_post(f"https://{origin}/v2/track")
        assert tunnels == [origin, origin]
    finally:
        server.shutdown()
