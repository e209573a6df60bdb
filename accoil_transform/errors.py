"""Every error a user can meet, in one tree.

::

    AccoilTransformError
    ├── InputError            input that can't be read (names the file, the line or row)
    ├── ConfigError           a setting that is missing, unknown or out of range
    ├── DeliveryError         delivery to Accoil cannot go on
    │   ├── AuthenticationError   Accoil refused the API key
    │   └── LedgerError           the ledger can't be read or written
    └── ExportError           the Amplitude Export API failed
        ├── ExportCredentialsError   no API key or secret key
        ├── ExportAuthError          the keys were refused (401/403)
        └── ExportTooLargeError      one hour is over the 4 GB response limit

No message of any of them holds an API key, a secret key or a password.
"""

from __future__ import annotations

from typing import Any


class AccoilTransformError(Exception):
    """Base class of this package's errors."""


class InputError(AccoilTransformError, ValueError):
    """Input that can't be read: names the file (or member), the line or row, and why."""

    def __init__(self, source: str, message: str, *, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.reason = message
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class ConfigError(AccoilTransformError, ValueError):
    """A setting that is missing, unknown or out of range."""


class DeliveryError(AccoilTransformError, RuntimeError):
    """Delivery cannot go on (wrong key, bad URL, TLS failure, ledger...).

    When raised by :func:`accoil_transform.send`, ``report`` holds the partial
    :class:`~accoil_transform.delivery.DeliveryReport`.
    """

    report: Any = None


class AuthenticationError(DeliveryError):
    """Accoil refused the API key; the run stopped instead of dead-lettering every call."""


class LedgerError(DeliveryError):
    """The ledger could not be read or written."""


class ExportError(AccoilTransformError, RuntimeError):
    """The Amplitude export failed. Messages never contain the API or secret key."""


class ExportCredentialsError(ExportError):
    """No Amplitude API key or secret key was given."""


class ExportAuthError(ExportError):
    """The Export API rejected the keys (401/403)."""


class ExportTooLargeError(ExportError):
    """A single hour is over the Export API's 4 GB response limit."""
