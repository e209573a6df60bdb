"""Every error a user can meet, in one tree.

::

    AccoilTransformError
    ├── InputError            input that can't be read (names the file, the line or row)
    ├── ConfigError           a setting that is missing, unknown or out of range
    ├── DeliveryError         delivery to Accoil cannot go on
    │   ├── AuthenticationError   Accoil refused the API key
    │   ├── UnreachableError      no call succeeded for a while: Accoil is down or unreachable
    │   ├── Interrupted           SIGINT or SIGTERM stopped the delivery
    │   └── LedgerError           the ledger can't be read or written
    │       └── LedgerBusyError       another run holds the ledger
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


class UnreachableError(DeliveryError):
    """No call succeeded for a while, only connection errors, timeouts and 5xx: the run
    stopped; the calls not acknowledged stay unsent, so a re-run sends them."""


class Interrupted(DeliveryError):
    """A signal (SIGINT, SIGTERM) stopped the delivery; ``signal`` names it."""

    def __init__(self, signal: str = "SIGINT") -> None:
        super().__init__(
            f"stopped by {signal}: the calls in flight were finished or abandoned and every "
            "acknowledged call is in the ledger; run again to send the rest"
        )
        self.signal = signal


class LedgerError(DeliveryError):
    """The ledger could not be read or written."""


class LedgerBusyError(LedgerError):
    """Another run holds the ledger."""


class ExportError(AccoilTransformError, RuntimeError):
    """The Amplitude export failed. Messages never contain the API or secret key."""


class ExportCredentialsError(ExportError):
    """No Amplitude API key or secret key was given."""


class ExportAuthError(ExportError):
    """The Export API rejected the keys (401/403)."""


class ExportTooLargeError(ExportError):
    """A single hour is over the Export API's 4 GB response limit."""
