"""An HTTP client for Accoil's ingress endpoints, on one pooled aiohttp session.

Accoil takes one call per request, so the client's cost per request is the delivery's
cost per call: aiohttp on an asyncio loop (uvloop where it is installed) keeps many
requests in flight from one thread at a fraction of the CPU of a thread per request
(``benchmarks/bench_delivery.py`` measures both). The API key travels as the format's
:class:`~accoil_transform.calls.AuthScheme` says; it is kept in a :class:`Secret` and
scrubbed from every message this module produces. TLS verification is always on; the CA
bundle may come from ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE``, proxies from the usual
environment variables.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from types import TracebackType

import aiohttp

from .._retry import parse_retry_after
from .._secret import Secret
from ..calls import AuthScheme, auth_headers, with_body_api_key
from ..config import DeliveryOptions
from ..errors import DeliveryError

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


def _ssl_context() -> ssl.SSLContext:
    """The system's trust store, or the bundle the environment names; never unverified."""
    bundle = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE")
    return ssl.create_default_context(cafile=bundle or None)


class AccoilClient:
    """POST one call body to an Accoil URL, with auth, pooling and timeouts::

    async with AccoilClient(Secret(key), AuthScheme.RAW_BASIC, pool_size=32) as client:
        result = await client.post(url, b'{"userId": "u", "event": "E"}')  # HttpResult

    A received status is the answer, even if reading the body then fails: a 2xx whose
    connection breaks after the status line is an acknowledgement, never a retry.
    """

    def __init__(
        self,
        api_key: str | Secret,
        auth: AuthScheme,
        *,
        pool_size: int = 16,
        timeout: tuple[float, float] = DeliveryOptions().timeouts,
        user_agent: str = "accoil-transform",
    ) -> None:
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)
        self.auth = AuthScheme(auth)
        self.pool_size = max(1, pool_size)
        self.timeout = timeout
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AccoilClient(auth={self.auth.value!r}, pool_size={self.pool_size})"

    @property
    def secret(self) -> Secret:
        return self._key

    async def __aenter__(self) -> AccoilClient:
        connect, read = self.timeout
        connector = aiohttp.TCPConnector(
            limit=self.pool_size, limit_per_host=self.pool_size, ssl=_ssl_context()
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"Content-Type": "application/json", "User-Agent": self.user_agent}
            | auth_headers(self.auth, self._key.reveal()),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
            trust_env=True,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes) -> HttpResult:
        """Send one call. Raises :class:`TransportError` when no status came back."""
        if self._session is None:
            raise DeliveryError("the client is not open (use it as an async context manager)")
        if self.auth is AuthScheme.BODY_API_KEY:
            body = with_body_api_key(body, self._key.reveal())
        try:
            async with self._session.post(url, data=body, allow_redirects=False) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                try:
                    content = await resp.content.read(4 * RESPONSE_START_CHARS)
                except (TimeoutError, aiohttp.ClientError, OSError):
                    content = b""  # the status came back: that is the answer
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            raise DeliveryError(self._describe("TLS verification failed", exc)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportError(self._describe("no response", exc)) from None
        text = content.decode("utf-8", errors="replace")
        return HttpResult(status, retry_after, self._key.scrub(text, RESPONSE_START_CHARS))

    def _describe(self, what: str, exc: BaseException) -> str:
        detail = str(exc) or type(exc).__name__
        return self._key.scrub(f"{what}: {type(exc).__name__}: {detail}")
