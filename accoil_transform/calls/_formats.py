"""Accoil wire formats: where each kind of call goes and how the API key travels.

A *call* is one HTTP request: Accoil takes exactly one call per request. Bodies are
built in :mod:`._bodies`; this module only knows the contract of each format, so that
the dry-run writer, the delivery client and the local stand-in server agree on it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import orjson

from ..config import DEFAULT_BASE_URL
from ..errors import ConfigError

CallKind = Literal["identify", "group", "track"]

#: Delivery order: users and accounts exist before their events arrive.
CALL_KINDS: tuple[CallKind, ...] = ("identify", "group", "track")


class AuthScheme(StrEnum):
    """How the API key is sent."""

    RAW_BASIC = "raw-basic"
    """``Authorization: Basic <key>`` with the raw key (Accoil v2)."""
    BASIC_B64 = "basic-b64"
    """Standard HTTP Basic, ``base64("<key>:")`` (Accoil ``/segment``)."""
    BODY_API_KEY = "body-api-key"
    """``"api_key"`` field in the JSON body (Accoil legacy v1)."""


@dataclass(frozen=True, slots=True)
class WireFormat:
    """The contract of one Accoil call format."""

    name: str
    paths: dict[str, str]
    auth: AuthScheme
    description: str

    def path(self, kind: str) -> str:
        try:
            return self.paths[kind]
        except KeyError:
            raise ValueError(f"format {self.name!r} has no {kind!r} calls") from None

    def url(self, kind: str, base_url: str = DEFAULT_BASE_URL) -> str:
        return base_url.rstrip("/") + self.path(kind)

    @property
    def kinds(self) -> tuple[CallKind, ...]:
        return tuple(k for k in CALL_KINDS if k in self.paths)


V2 = WireFormat(
    name="v2",
    paths={"identify": "/v2/identify", "group": "/v2/group", "track": "/v2/track"},
    auth=AuthScheme.RAW_BASIC,
    description="Accoil Ingress API v2 (camelCase, ISO 8601 timestamps).",
)
STREAM = WireFormat(
    name="stream",
    paths={"track": "/v2/track"},
    auth=AuthScheme.RAW_BASIC,
    description=(
        "One body per kept event in the Amplitude destination's own shape: "
        "userId, event, timestamp, properties, groupTraits."
    ),
)
SEGMENT = WireFormat(
    name="segment",
    paths={"identify": "/segment", "group": "/segment", "track": "/segment"},
    auth=AuthScheme.BASIC_B64,
    description="Accoil's Segment-compatible endpoint: one message per request with a `type`.",
)
V1 = WireFormat(
    name="v1",
    paths={"identify": "/v1/users", "group": "/v1/groups", "track": "/v1/events"},
    auth=AuthScheme.BODY_API_KEY,
    description="Legacy v1 API: snake_case fields, epoch-ms timestamps, api_key in the body.",
)

FORMATS: dict[str, WireFormat] = {f.name: f for f in (V2, STREAM, SEGMENT, V1)}


def get_format(name: str | WireFormat) -> WireFormat:
    """Look a format up by name (``v2``, ``stream``, ``segment``, ``v1``)."""
    if isinstance(name, WireFormat):
        return name
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"unknown format {name!r}; expected one of {', '.join(FORMATS)}"
        ) from None


def auth_headers(scheme: AuthScheme, api_key: str) -> dict[str, str]:
    """The headers that carry ``api_key`` under ``scheme`` (empty for body auth)."""
    if scheme is AuthScheme.RAW_BASIC:
        return {"Authorization": f"Basic {api_key}"}
    if scheme is AuthScheme.BASIC_B64:
        token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    return {}


def with_body_api_key(body: bytes, api_key: str) -> bytes:
    """Insert ``"api_key"`` as the first field of a JSON object body (v1 auth).

    Bodies are stored and dry-run without the key; it is added only on the wire.
    """
    if not body.startswith(b"{"):
        raise ValueError("a v1 body must be a JSON object")
    key = orjson.dumps(api_key)
    rest = body[1:].lstrip()
    sep = b"" if rest.startswith(b"}") else b","
    return b'{"api_key":' + key + sep + rest
