"""Reading: sources, line chunking, NDJSON decoding, and the canonical event frame.

:func:`read_events` turns any input into canonical frames (:data:`CANONICAL_SCHEMA`), a
chunk at a time; :func:`normalize_frame` brings one table to that shape.
"""

from ._database import DatabaseSource, Watermark, mask_uri
from ._events import read_events
from ._layout import EXPORT_MEMBER, file_order, member_name, member_order
from ._ndjson import decode_lines, parse_ndjson
from ._normalize import empty_canonical, normalize_frame, parse_event_time
from ._original_lines import with_original_lines
from ._schema import CANONICAL_SCHEMA, canonical_name, ndjson_read_schema
from ._sources import ArrowStreamExportable, RawInput, Source, iter_raw_inputs

__all__ = [
    "CANONICAL_SCHEMA",
    "EXPORT_MEMBER",
    "ArrowStreamExportable",
    "DatabaseSource",
    "RawInput",
    "Source",
    "Watermark",
    "canonical_name",
    "decode_lines",
    "empty_canonical",
    "file_order",
    "iter_raw_inputs",
    "mask_uri",
    "member_name",
    "member_order",
    "ndjson_read_schema",
    "normalize_frame",
    "parse_event_time",
    "parse_ndjson",
    "read_events",
    "with_original_lines",
]
