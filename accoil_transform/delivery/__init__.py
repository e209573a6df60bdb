"""Delivery: send calls to Accoil concurrently, retried, rate-limited, and once each.

:func:`send` delivers batches of calls; :class:`Ledger` records what Accoil
acknowledged so that a re-run skips it; :class:`DeliveryReport` says what happened.
"""

from .._retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from ..config import DeliveryOptions
from ..errors import AuthenticationError, DeliveryError, LedgerError
from ._client import AccoilClient, HttpResult, TransportError
from ._flow import FlowControl
from ._ledger import Ledger
from ._report import DeliveryReport, EndpointStats
from ._sender import send

__all__ = [
    "RETRY_STATUSES",
    "AccoilClient",
    "AuthenticationError",
    "DeliveryError",
    "DeliveryOptions",
    "DeliveryReport",
    "EndpointStats",
    "FlowControl",
    "HttpResult",
    "Ledger",
    "LedgerError",
    "RetryPolicy",
    "TransportError",
    "parse_retry_after",
    "send",
]
