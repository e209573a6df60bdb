"""Delivery: send calls to Accoil concurrently, retried, rate-limited, and once each.

:func:`send` delivers batches of calls; :class:`Ledger` records what Accoil
acknowledged so that a re-run skips it; :class:`DeliveryReport` says what happened.
"""

from .._destination import STAGING_BASE_URL, Destination
from .._retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from ..config import DeliveryOptions
from ..errors import (
    AuthenticationError,
    DeliveryError,
    Interrupted,
    LedgerBusyError,
    LedgerError,
    UnreachableError,
)
from ._client import AccoilClient, HttpResult, TransportError
from ._flow import FlowControl
from ._ledger import AckSink, Ledger
from ._report import DeliveryReport, EndpointStats
from ._sender import send

__all__ = [
    "RETRY_STATUSES",
    "STAGING_BASE_URL",
    "AccoilClient",
    "AckSink",
    "AuthenticationError",
    "DeliveryError",
    "DeliveryOptions",
    "DeliveryReport",
    "Destination",
    "EndpointStats",
    "FlowControl",
    "HttpResult",
    "Interrupted",
    "Ledger",
    "LedgerBusyError",
    "LedgerError",
    "RetryPolicy",
    "TransportError",
    "UnreachableError",
    "parse_retry_after",
    "send",
]
