"""An HTTP client for Accoil's ingress endpoints, on pooled ``requests`` sessions.

One ``requests.Session`` per worker thread (sessions are not documented as
thread-safe), each with keep-alive connections; the client as a whole holds as many
connections as there are workers. The API key travels as the format's
:class:`~accoil_transform.calls.AuthScheme` says; it is kept in a :class:`Secret`
and scrubbed from every message this module produces. TLS verification is always on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import requests
from requests import PreparedRequest
from requests.adapters import HTTPAdapter

from .._retry import parse_retry_after
from .._secret import Secret
from ..calls import AuthScheme, auth_headers, with_body_api_key
from ..config import DeliveryOptions
from ..errors import DeliveryError

#: How many bytes of a response body are kept for the dead-letter file and errors.
RESPONSE_START_BYTES = 512


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


class AccoilClient:
    """POST one call body to an Accoil URL, with auth, pooling and timeouts::

    with AccoilClient(key, AuthScheme.RAW_BASIC, pool_size=32) as client:
        result = client.post(url, b'{"userId": "u", "event": "E"}')  # HttpResult
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
        self._env: dict[str, dict[str, object]] = {}
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"AccoilClient(auth={self.auth.value!r}, pool_size={self.pool_size})"

    @property
    def secret(self) -> Secret:
        return self._key

    def _session(self) -> requests.Session:
        """This thread's session (created on first use)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            if self._closed:
                raise DeliveryError("the client is closed")
            session = requests.Session()
            # One connection per host per thread; pool_size threads in all.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=1, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            # Environment settings (proxies, CA bundle) are resolved once per URL in
            # _settings(); reading them on every request costs more than the request.
            session.trust_env = False
            session.headers.update(
                {"Content-Type": "application/json", "User-Agent": self.user_agent}
                | auth_headers(self.auth, self._key.reveal())
            )
            with self._lock:
                self._sessions.append(session)
            self._local.session = session
            self._local.templates = {}
        return session

    def _prepare(self, session: requests.Session, url: str, body: bytes) -> PreparedRequest:
        """A request for ``url`` from a per-thread template: URL and headers are
        parsed and merged once, not on every call (a third of requests' overhead)."""
        templates: dict[str, PreparedRequest] = self._local.templates
        template = templates.get(url)
        if template is None:
            template = templates[url] = session.prepare_request(requests.Request("POST", url))
        request = template.copy()
        request.prepare_body(body, None)
        return request

    def _settings(self, url: str) -> dict[str, object]:
        """Proxies and CA bundle for ``url`` from the environment; ``verify`` is never off."""
        settings = self._env.get(url)
        if settings is None:
            with requests.Session() as probe:
                merged = probe.merge_environment_settings(url, {}, None, True, None)
            verify = merged.get("verify")
            settings = {
                "proxies": merged.get("proxies") or {},
                "verify": verify if isinstance(verify, str) and verify else True,
            }
            self._env[url] = settings
        return settings

    def post(self, url: str, body: bytes) -> HttpResult:
        """Send one call. Raises :class:`TransportError` when no status came back."""
        if self.auth is AuthScheme.BODY_API_KEY:
            body = with_body_api_key(body, self._key.reveal())
        try:
            session = self._session()
            resp = session.send(
                self._prepare(session, url, body),
                timeout=self.timeout,
                allow_redirects=False,
                **self._settings(url),
            )
        except requests.exceptions.SSLError as exc:
            raise DeliveryError(self._describe("TLS verification failed", exc)) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise TransportError(self._describe("no response", exc)) from None
        except requests.exceptions.RequestException as exc:
            raise DeliveryError(self._describe("request failed", exc)) from None
        start = resp.content[:RESPONSE_START_BYTES].decode("utf-8", errors="replace")
        return HttpResult(
            status=resp.status_code,
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            response_start=self._key.scrub(start),
        )

    def _describe(self, what: str, exc: BaseException) -> str:
        return self._key.scrub(f"{what}: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> AccoilClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
