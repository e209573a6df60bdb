"""Deliver Accoil calls: concurrent, rate-limited, retried, and recorded in a ledger."""

from .client import AccoilClient, DeliveryError, HttpResult, Secret, TransportError
from .ledger import Ledger, LedgerError
from .retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from .sender import (
    AuthenticationError,
    DeliveryOptions,
    DeliveryReport,
    EndpointStats,
    FlowControl,
    send,
)

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
    "Secret",
    "TransportError",
    "parse_retry_after",
    "send",
]
