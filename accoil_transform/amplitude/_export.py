"""Pull an hour range from the Amplitude Export API (``GET /api/2/export``) into zip files.

The API answers one zip per request: gzip NDJSON members, one event per line, for the
events whose ``server_upload_time`` hour lies in ``[start, end]`` (both hours included).
A 404 means the window is empty. A 400 saying the response would exceed 4 GB means the
window is split in halves and each half is asked for again, down to one hour. 5xx
(including the 504 timeouts of large windows) and connection errors are retried with
exponential backoff and full jitter, bounded in attempts and in time.

Bodies are streamed to a temporary file in the output folder and renamed into place
only once they are checked to be whole zip archives; nothing is held in memory.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .._retry import RetryPolicy, parse_retry_after
from ..errors import (
    ConfigError,
    ExportAuthError,
    ExportCredentialsError,
    ExportError,
    ExportTooLargeError,
)
from ._window import ExportWindow

if TYPE_CHECKING:  # imported where used: a dry run never needs an HTTP client
    import requests

Region = Literal["us", "eu"]

US_EXPORT_URL = "https://amplitude.com/api/2/export"
EU_EXPORT_URL = "https://analytics.eu.amplitude.com/api/2/export"
_REGION_URLS: dict[str, str] = {"us": US_EXPORT_URL, "eu": EU_EXPORT_URL}

API_KEY_ENV = "AMPLITUDE_API_KEY"
SECRET_KEY_ENV = "AMPLITUDE_SECRET_KEY"

_TOO_LARGE_MARKERS = ("4gb", "4 gb", "too large", "size limit")
_ERROR_BODY_LIMIT = 4096

#: Export windows are large: retries wait longer, and for longer, than Accoil calls.
DEFAULT_EXPORT_RETRY = RetryPolicy(
    max_attempts=6,
    backoff_base=2.0,
    backoff_cap=120.0,
    max_total_seconds=900.0,
    max_retry_after=120.0,
)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One zip written to disk: the window it covers and its size."""

    window: ExportWindow
    path: Path
    bytes: int


@dataclass(slots=True)
class ExportResult:
    """What :func:`export_range` did: files per window, empty and split windows, retries."""

    window: ExportWindow
    files: list[ExportFile] = field(default_factory=list)
    empty_windows: list[ExportWindow] = field(default_factory=list)
    split_windows: list[ExportWindow] = field(default_factory=list)
    requests: int = 0
    retries: int = 0

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    @property
    def bytes_written(self) -> int:
        return sum(f.bytes for f in self.files)

    def summary(self) -> str:
        """One line for humans."""
        return (
            f"exported {self.window} ({self.window.hours} h): {len(self.files)} file(s), "
            f"{self.bytes_written:,} bytes, {len(self.empty_windows)} empty window(s), "
            f"{len(self.split_windows)} split(s), {self.requests} request(s), "
            f"{self.retries} retry(ies)"
        )


# --------------------------------------------------------------------------- client


EXPORT_PATH = "/api/2/export"


def export_url(region: str = "us", base_url: str | None = None) -> str:
    """The Export API URL for a region (``us`` or ``eu``), or under ``base_url``.

    ``base_url`` is a host (``https://amplitude.com``, a proxy's ``https://proxy/amp``),
    to which ``/api/2/export`` is added, or the full endpoint URL.
    """
    if base_url:
        url = base_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"the Amplitude base URL must start with https://, got {url!r}")
        return url if url.endswith(EXPORT_PATH) else url + EXPORT_PATH
    try:
        return _REGION_URLS[region.lower()]
    except KeyError:
        raise ConfigError(f"unknown Amplitude region {region!r}; expected 'us' or 'eu'") from None


@dataclass(frozen=True, slots=True)
class _Written:
    file: ExportFile


@dataclass(frozen=True, slots=True)
class _Empty:
    pass


@dataclass(frozen=True, slots=True)
class _TooLarge:
    message: str


_Outcome = _Written | _Empty | _TooLarge


class _Retryable(Exception):
    """Internal: an attempt failed in a way worth retrying."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class AmplitudeExportClient:
    """A client for the Amplitude Export API.

    Keys come from the arguments or from ``AMPLITUDE_API_KEY`` / ``AMPLITUDE_SECRET_KEY``.
    They are sent only as HTTP Basic auth and never shown by ``repr`` or in errors.
    """

    def __init__(
        self,
        api_key: str | None = None,
        secret_key: str | None = None,
        *,
        region: Region | str = "us",
        base_url: str | None = None,
        timeout: float | tuple[float, float] = (10.0, 600.0),
        retry: RetryPolicy = DEFAULT_EXPORT_RETRY,
        chunk_size: int = 1 << 20,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        api_key = api_key or os.environ.get(API_KEY_ENV) or None
        secret_key = secret_key or os.environ.get(SECRET_KEY_ENV) or None
        missing = [
            name
            for name, value in ((API_KEY_ENV, api_key), (SECRET_KEY_ENV, secret_key))
            if not value
        ]
        if missing:
            raise ExportCredentialsError(
                "Amplitude Export API needs the project's API key and secret key; "
                f"missing {' and '.join(missing)} (set the environment variable(s) or pass "
                "--amplitude-api-key/--amplitude-secret-key)"
            )
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._auth = (str(api_key).strip(), str(secret_key).strip())
        # Every form the keys can take in a message: each key, and the Basic credential.
        basic = base64.b64encode(f"{self._auth[0]}:{self._auth[1]}".encode()).decode("ascii")
        self._hidden = (basic, basic.rstrip("="), *self._auth)
        self.region = region.lower()
        self.url = export_url(self.region, base_url)
        self.timeout = timeout
        self.retry = retry
        self.chunk_size = chunk_size
        import requests

        self._own_session = session is None
        self._session = session or requests.Session()
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._scrub(self.url)!r}, region={self.region!r})"

    def _scrub(self, text: str) -> str:
        """``text`` with the API key, the secret key and their Basic credential masked."""
        for form in self._hidden:
            if form:
                text = text.replace(form, "***")
        return text

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> AmplitudeExportClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ public

    def export_range(
        self,
        start: str | datetime | ExportWindow,
        end: str | datetime | None = None,
        out_dir: str | os.PathLike[str] = ".",
    ) -> ExportResult:
        """Download ``[start, end]`` (both hours included) into zip files in ``out_dir``.

        Returns one file per window that had data; windows answered with 404 are
        listed as empty. Windows over the 4 GB limit are split in halves.
        """
        if isinstance(start, ExportWindow):
            window = start
        else:
            if end is None:
                raise ValueError("end is required unless start is an ExportWindow")
            window = ExportWindow.parse(start, end)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result = ExportResult(window=window)
        pending = [window]  # a stack, so windows are fetched in time order
        while pending:
            current = pending.pop()
            outcome = self._fetch_window(current, out, result)
            if isinstance(outcome, _Written):
                result.files.append(outcome.file)
            elif isinstance(outcome, _Empty):
                result.empty_windows.append(current)
            else:
                if current.hours == 1:
                    raise ExportTooLargeError(
                        f"the Export API response for the single hour {current} is over its "
                        "4 GB limit and cannot be split further; use Amplitude's S3 (or GCS) "
                        "export for this volume"
                    )
                result.split_windows.append(current)
                first, second = current.split()
                pending.extend((second, first))
        return result

    # ------------------------------------------------------------------ internals

    def _fetch_window(self, window: ExportWindow, out: Path, result: ExportResult) -> _Outcome:
        """One window, with retries on transient failures."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            result.requests += 1
            try:
                return self._attempt(window, out)
            except _Retryable as exc:
                delay = self.retry.delay(attempt, exc.retry_after)
                if not self.retry.allows(attempt, time.monotonic() - started, delay):
                    hint = (
                        "; large windows can time out, try a shorter range"
                        if "504" in exc.reason
                        else ""
                    )
                    raise ExportError(
                        self._scrub(
                            f"Amplitude export of {window} failed after {attempt} attempt(s): "
                            f"{exc.reason}{hint}"
                        )
                    ) from None
                result.retries += 1
                self._sleep(delay)

    def _attempt(self, window: ExportWindow, out: Path) -> _Outcome:
        import requests

        try:
            response = self._session.get(
                self.url,
                params=window.params,
                auth=self._auth,
                stream=True,
                timeout=self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise ExportError(f"Amplitude export request failed: {type(exc).__name__}") from None
        with response:
            status = response.status_code
            if status == 200:
                return _Written(self._save(response, window, out))
            if status == 404:
                return _Empty()
            if status in (401, 403):
                raise ExportAuthError(
                    f"Amplitude Export API refused the credentials (HTTP {status}) at "
                    f"{self._scrub(self.url)}: check the project API key and secret key, and "
                    "that the region (us/eu) matches the project"
                )
            body = _read_limited(response, _ERROR_BODY_LIMIT)
            if status == 400 and _says_too_large(body):
                return _TooLarge(body)
            if self.retry.is_retryable(status):
                raise _Retryable(
                    f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After"))
                )
            raise ExportError(
                f"Amplitude export of {window} failed with HTTP {status}: "
                f"{_clip(self._scrub(body))}"
            )

    def _save(self, response: requests.Response, window: ExportWindow, out: Path) -> ExportFile:
        """Stream the body to a temp file, check it is a whole zip, rename it into place."""
        import requests

        fd, tmp_name = tempfile.mkstemp(prefix=f".{window.filename}.", suffix=".part", dir=out)
        tmp = Path(tmp_name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as fh:
                try:
                    for chunk in response.iter_content(chunk_size=self.chunk_size):
                        fh.write(chunk)
                        size += len(chunk)
                except (
                    requests.ConnectionError,
                    requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                ) as exc:
                    raise _Retryable(
                        f"download interrupted after {size:,} bytes ({type(exc).__name__})"
                    ) from None
            _check_zip(tmp, size)
            final = out / window.filename
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return ExportFile(window=window, path=final, bytes=size)


def _check_zip(path: Path, size: int) -> None:
    """Raise if ``path`` is not a zip (non-retryable) or is a truncated one (retryable)."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    if not magic.startswith(b"PK"):
        raise ExportError(
            f"Amplitude export answered 200 but the body ({size:,} bytes) is not a zip archive"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _Retryable(f"truncated or corrupt zip ({size:,} bytes): {exc}") from None
    if bad is not None:
        raise _Retryable(f"corrupt zip member {bad!r} ({size:,} bytes)")


def _says_too_large(body: str) -> bool:
    """Whether a 400 body says the response is over the size limit (not a bad request)."""
    text = body.lower()
    if any(marker in text for marker in _TOO_LARGE_MARKERS):
        return True
    return "exceed" in text and any(w in text for w in ("size", "gb", "byte"))


def _read_limited(response: requests.Response, limit: int) -> str:
    """Read at most ``limit`` bytes of an error body as text."""
    import requests

    data = b""
    try:
        for chunk in response.iter_content(chunk_size=limit):
            data += chunk
            if len(data) >= limit:
                break
    except requests.RequestException:
        pass
    return data[:limit].decode("utf-8", "replace")


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def export_range(
    start: str | datetime,
    end: str | datetime,
    out_dir: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    secret_key: str | None = None,
    region: Region | str = "us",
    base_url: str | None = None,
    **client_options: object,
) -> ExportResult:
    """Download the hours ``[start, end]`` (``YYYYMMDDTHH``, both included) into ``out_dir``.

    A convenience over :class:`AmplitudeExportClient`; see it for the options.
    """
    window = ExportWindow.parse(start, end)
    with AmplitudeExportClient(
        api_key,
        secret_key,
        region=region,
        base_url=base_url,
        **client_options,  # type: ignore[arg-type]
    ) as client:
        return client.export_range(window, out_dir=out_dir)
