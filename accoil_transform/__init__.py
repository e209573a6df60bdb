"""accoil_transform: move Amplitude product-analytics events into Accoil, with polars.

The pipeline is ``read → normalise → select → map → resolve groups → calls → deliver``:

>>> import accoil_transform as at
>>> config = at.TransformConfig(properties=["plan"])
>>> result = at.transform(at.read_events("sample_data/amplitude_export_sample.zip", config), config)
>>> calls = at.build_calls(result.tracks, result.identifies, result.groups, "v2")
"""

from __future__ import annotations

from . import namespace as namespace  # registers df.accoil and lf.accoil
from .batches import CallBatch, iter_batches
from .calls import build_calls, group_calls, identify_calls, track_calls
from .config import FieldRef, TransformConfig
from .errors import AccoilTransformError, ConfigError, InputError
from .formats import FORMATS, AuthScheme, WireFormat, get_format
from .groups import primary_groups
from .normalize import normalize_frame
from .output import write_dry_run
from .pipeline import RunOptions, RunResult, run, transform_inputs
from .readers import read_events
from .report import DROP_REASONS, TransformReport
from .transform import Transformer, TransformResult, transform

__version__ = "0.1.0"

__all__ = [
    "DROP_REASONS",
    "FORMATS",
    "AccoilTransformError",
    "AuthScheme",
    "CallBatch",
    "ConfigError",
    "FieldRef",
    "InputError",
    "RunOptions",
    "RunResult",
    "TransformConfig",
    "TransformReport",
    "TransformResult",
    "Transformer",
    "WireFormat",
    "build_calls",
    "get_format",
    "group_calls",
    "identify_calls",
    "iter_batches",
    "normalize_frame",
    "primary_groups",
    "read_events",
    "run",
    "track_calls",
    "transform",
    "transform_inputs",
    "write_dry_run",
]
