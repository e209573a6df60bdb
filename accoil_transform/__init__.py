"""accoil_transform: move Amplitude product-analytics events into Accoil, with polars.

The pipeline is ``read → transform → calls → deliver``, one subpackage a stage
(:mod:`.read`, :mod:`.rules`, :mod:`.calls`, :mod:`.delivery`; :mod:`.jobs` ties them):

>>> import accoil_transform as at
>>> config = at.TransformConfig(properties=["plan"])
>>> result = at.transform("sample_data/amplitude_export_sample.zip", config)
>>> report = result.report
>>> report.rows_read == report.kept + report.trait_rows + sum(report.dropped.values())
True
>>> calls = at.build_calls(result.tracks, result.identifies, result.groups, "v2")
>>> calls.columns
['kind', 'call_id', 'user_id', 'body']

``import accoil_transform`` also registers the ``accoil`` namespace on polars frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .calls import build_calls
from .config import DeliveryOptions, FieldRef, ReadOptions, RetryPolicy, RunOptions, TransformConfig
from .errors import (
    AccoilTransformError,
    AuthenticationError,
    ConfigError,
    DeliveryError,
    ExportError,
    InputError,
    LedgerError,
)
from .integrations import polars_namespace as _polars_namespace  # registers df/lf.accoil
from .jobs import RunResult, run, transform
from .read import DatabaseSource, read_events
from .rules import TransformReport, TransformResult

if TYPE_CHECKING:
    from .delivery import DeliveryReport, send
    from .jobs import SyncResult, sync

__version__ = "0.1.0"

#: Names imported on first use: they pull in an HTTP client a dry run never needs.
_LAZY = {
    "send": "delivery",
    "DeliveryReport": "delivery",
    "sync": "jobs._sync",
    "SyncResult": "jobs._sync",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccoilTransformError",
    "AuthenticationError",
    "ConfigError",
    "DatabaseSource",
    "DeliveryError",
    "DeliveryOptions",
    "DeliveryReport",
    "ExportError",
    "FieldRef",
    "InputError",
    "LedgerError",
    "ReadOptions",
    "RetryPolicy",
    "RunOptions",
    "RunResult",
    "SyncResult",
    "TransformConfig",
    "TransformReport",
    "TransformResult",
    "build_calls",
    "read_events",
    "run",
    "send",
    "sync",
    "transform",
]

del _polars_namespace
