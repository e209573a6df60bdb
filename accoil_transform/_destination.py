"""Where calls go: an Accoil base URL and the credential sent to it.

An API key that starts with ``stg_`` (any case) is a staging key, as Accoil's Segment,
RudderStack and PostHog destinations treat it: its calls go to
``https://instaging.accoil.com`` unless a base URL is given, and the prefix is stripped
from the credential sent. A key that merely contains ``stg_`` is a production key.

A destination's :attr:`~Destination.id` names it in the ledger: the base URL and a
one-way hash of the key, never the key, so that acknowledgements of one workspace never
make another skip its calls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._secret import Secret, check_key
from .config import DEFAULT_BASE_URL
from .errors import ConfigError

STAGING_BASE_URL = "https://instaging.accoil.com"
_STAGING_PREFIX = "stg_"


def normalized_url(url: str) -> str:
    """``scheme://host[:port][/path]`` in lower case (the path as given), no trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base URL must look like https://host[:port][/path], got {url!r}")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class Destination:
    """An Accoil base URL and the credential for it (never shown)."""

    base_url: str
    credential: Secret | None = field(default=None, repr=False)

    @classmethod
    def resolve(cls, api_key: str | None, base_url: str | None = None) -> Destination:
        """The destination of ``api_key``: staging keys go to the staging host unless a
        ``base_url`` is given, and lose their ``stg_`` prefix.

        Raises:
            ConfigError: the key has characters a header can't carry (the message does
                not show it), or the base URL is not an http(s) URL.
        """
        credential = None
        staging = False
        if api_key is not None:
            key = check_key(api_key, "the Accoil API key")
            staging = key[: len(_STAGING_PREFIX)].lower() == _STAGING_PREFIX
            if staging:
                key = key[len(_STAGING_PREFIX) :]
                if not key:
                    raise ConfigError("the Accoil API key is only a staging prefix")
            credential = Secret(key)
        default = STAGING_BASE_URL if staging else DEFAULT_BASE_URL
        return cls(normalized_url(base_url or default), credential)

    @property
    def id(self) -> str:
        """The ledger's name of this destination: base URL and key hash."""
        key = self.credential.reveal() if self.credential is not None else ""
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return f"{self.base_url}#{digest}"

    def describe(self) -> str:
        """For people: the base URL and the key's hash (e.g. in a run's summary)."""
        return self.id.replace("#", " (key #") + ")"
