"""The HTTP client: one POST gives an ``HttpResult`` or a ``TransportError``; the key
travels as the format says; TLS verification stays on, whatever the environment says."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from accoil_transform.calls import AuthScheme
from accoil_transform.delivery import (
    AccoilClient,
    DeliveryError,
    DeliveryOptions,
    HttpResult,
    TransportError,
    send,
)
from accoil_transform.testing import LocalAccoil
from tests.delivery.helpers import KEY, batches, workload


def test_tls_verification_cannot_be_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose certificate no CA signed stops the run: nothing is sent unverified,
    whatever the environment says."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    monkeypatch.setenv("PYTHONHTTPSVERIFY", "0")
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(DeliveryError, match="TLS verification failed") as info:
            send(
                batches(workload(users=1, tracks=3), url),
                api_key=KEY,
                auth=AuthScheme.RAW_BASIC,
                options=DeliveryOptions(concurrency=2),
            )
        assert info.value.report.total.sent == 0
    finally:
        server.shutdown()


def _post(client: AccoilClient, url: str, body: bytes) -> HttpResult:
    async def go() -> HttpResult:
        async with client:
            return await client.post(url, body)

    return asyncio.run(go())


def test_post_returns_the_status_and_the_start_of_the_body(accoil_server: LocalAccoil) -> None:
    url = accoil_server.base_url + "/v2/track"
    ok = _post(AccoilClient(KEY, AuthScheme.RAW_BASIC), url, b'{"userId": "u", "event": "E"}')
    assert (ok.status, ok.ok, ok.retry_after) == (202, True, None)
    bad = _post(AccoilClient(KEY, AuthScheme.RAW_BASIC), url, b'{"userId": "u"}')
    assert (bad.status, bad.ok) == (400, False)
    assert "'event' is required" in bad.response_start
    assert [c.body for c in accoil_server.accepted] == [{"userId": "u", "event": "E"}]


def test_the_v1_key_travels_in_the_body(accoil_server: LocalAccoil) -> None:
    body = b'{"user_id": "u", "event": "E", "timestamp": 1714557600000}'
    result = _post(
        AccoilClient(KEY, AuthScheme.BODY_API_KEY), accoil_server.base_url + "/v1/events", body
    )
    assert result.status == 202
    assert accoil_server.accepted[0].body == {
        "user_id": "u",
        "event": "E",
        "timestamp": 1714557600000,
    }


def test_no_response_is_a_transport_error_without_the_key() -> None:
    with LocalAccoil() as srv:
        url = srv.base_url + "/v2/track"
    # the server is stopped: nothing listens on that port any more
    with pytest.raises(TransportError, match="no response") as info:
        _post(AccoilClient(KEY, AuthScheme.RAW_BASIC), url, b"{}")
    assert KEY not in str(info.value)


def test_a_client_posts_only_while_open() -> None:
    client = AccoilClient(KEY, AuthScheme.RAW_BASIC)
    with pytest.raises(DeliveryError, match="not open"):
        asyncio.run(client.post("http://127.0.0.1:9/v2/track", b"{}"))
