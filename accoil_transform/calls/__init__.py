"""Calls: Accoil's wire formats, call bodies and ids, and batches of calls to send.

:func:`build_calls` turns the records of a transform into a calls frame
(:data:`CALLS_SCHEMA`: ``kind``, ``call_id``, ``user_id``, ``body``) in delivery order;
:func:`iter_batches` chunks it for delivery.
"""

from ._batches import CallBatch, iter_batches
from ._bodies import (
    CALLS_SCHEMA,
    build_calls,
    group_calls,
    identify_calls,
    skipped_account_groups,
    track_calls,
)
from ._formats import (
    CALL_KINDS,
    FORMATS,
    AuthScheme,
    CallKind,
    WireFormat,
    auth_headers,
    get_format,
    with_body_api_key,
)

__all__ = [
    "CALLS_SCHEMA",
    "CALL_KINDS",
    "FORMATS",
    "AuthScheme",
    "CallBatch",
    "CallKind",
    "WireFormat",
    "auth_headers",
    "build_calls",
    "get_format",
    "group_calls",
    "identify_calls",
    "iter_batches",
    "skipped_account_groups",
    "track_calls",
    "with_body_api_key",
]
