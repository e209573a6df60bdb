"""An HTTP client for Accoil's ingress endpoints, on a pool of kept-alive connections.

Accoil takes one call per request, so the client's cost per request is the delivery's
cost per call; :mod:`._http` keeps it to ~20 µs of CPU (``benchmarks/bench_delivery.py``
compares it with requests, urllib3 and aiohttp). The API key travels as the format's
:class:`~accoil_transform.calls.AuthScheme` says; it is kept in a :class:`Secret` and
scrubbed from every message this module produces. TLS verification is always on; the CA
bundle may come from ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE``, a proxy from the usual
environment variables (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``).
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass
from types import TracebackType

from .._retry import parse_retry_after
from .._secret import Secret
from ..calls import AuthScheme, auth_headers, with_body_api_key
from ..config import DeliveryOptions
from ..errors import DeliveryError
from ._http import ConnectionPool, ProtocolError

#: How many characters of a response body are kept for the dead-letter file and errors.
RESPONSE_START_CHARS = 512


class TransportError(DeliveryError):
    """A try failed without an HTTP status (connection refused or dropped, timeout)."""


@dataclass(frozen=True, slots=True)
class HttpResult:
    """What came back for one try: the status, ``Retry-After`` and the body's start."""

    status: int
    retry_after: float | None
    response_start: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _env_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (``None``: connect directly)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def _ssl_context() -> ssl.SSLContext:
    """The system's trust store, or the bundle the environment names; never unverified."""
    bundle = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE")
    return ssl.create_default_context(cafile=bundle or None)


class AccoilClient:
    """POST one call body to an Accoil URL, with auth, pooling and timeouts::

    async with AccoilClient(Secret(key), AuthScheme.RAW_BASIC) as client:
        result = await client.post(url, b'{"userId": "u", "event": "E"}')  # HttpResult

    A received status is the answer, even if reading the body then fails: a 2xx whose
    connection breaks after the status line is an acknowledgement, never a retry.
    """

    def __init__(
        self,
        api_key: str | Secret,
        auth: AuthScheme,
        *,
        timeout: tuple[float, float] = DeliveryOptions().timeouts,
        user_agent: str = "accoil-transform",
    ) -> None:
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self.auth = AuthScheme(auth)
        self.timeout = timeout
        self.user_agent = user_agent
        self._pool: ConnectionPool | None = None

    def __repr__(self) -> str:
        return f"AccoilClient(auth={self.auth.value!r})"

    @property
    def secret(self) -> Secret:
        return self._key

    async def __aenter__(self) -> AccoilClient:
        connect, read = self.timeout
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent}
        self._pool = ConnectionPool(
            headers | auth_headers(self.auth, self._key.reveal()),
            ssl_context=_ssl_context(),
            connect_timeout=connect,
            read_timeout=read,
            keep_bytes=4 * RESPONSE_START_CHARS,
            proxy_for=_env_proxy,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def post(self, url: str, body: bytes) -> HttpResult:
        """Send one call. Raises :class:`TransportError` when no status came back."""
        if self._pool is None:
            raise DeliveryError("the client is not open (use it as an async context manager)")
        if self.auth is AuthScheme.BODY_API_KEY:
            body = with_body_api_key(body, self._key.reveal())
        try:
            response = await self._pool.post(url, body)
        except ssl.SSLError as exc:
            raise DeliveryError(self._describe("TLS verification failed", exc)) from None
        except (OSError, ProtocolError) as exc:  # refused, reset, timed out, garbled
            raise TransportError(self._describe("no response", exc)) from None
        except ValueError as exc:  # not an http(s) URL
            raise DeliveryError(self._describe("cannot post", exc)) from None
        text = response.body.decode("utf-8", errors="replace")
        return HttpResult(
            response.status,
            parse_retry_after(response.retry_after),
            self._key.scrub(text, RESPONSE_START_CHARS),
        )

    def _describe(self, what: str, exc: BaseException) -> str:
        detail = str(exc) or type(exc).__name__
        return self._key.scrub(f"{what}: {type(exc).__name__}: {detail}")
