"""The pure batch function: canonical events in, Accoil calls out, as Arrow.

:func:`transform_batch` is the whole transform (SPEC §2–5) on one batch of canonical
events: no I/O, no global state, and a fixed output schema. The single-machine path
(:func:`accoil_transform.pipeline.run`) composes the same two core functions,
:func:`~accoil_transform.transform.transform` and
:func:`~accoil_transform.calls.build_calls`; engines that partition the input by user
(:mod:`accoil_transform.spark`) call this function once per partition.

A batch is self-contained: identify and group calls come from the latest event of
each user (and user/account pair) *in the batch*, and duplicates are judged within
the batch unless it carries a boolean ``_duplicate`` column judged over the whole
input. So a batch must hold every event of each of its users.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from .calls import build_calls
from .config import TransformConfig
from .formats import get_format
from .schema import CANONICAL_SCHEMA
from .transform import transform

#: The output schema, fixed whatever the input: plain ``string`` (32-bit offsets), the
#: type Spark's ``StringType`` maps to; never ``large_string`` or ``string_view``.
CALLS_ARROW_SCHEMA = pa.schema(
    [
        pa.field("endpoint", pa.string()),
        pa.field("call_id", pa.string()),
        pa.field("body", pa.string()),
    ]
)

#: Rows per output record batch: keeps each batch's string data far below 2 GiB.
_OUT_ROWS = 65_536


def transform_batch(
    batch: pa.RecordBatch | pa.Table | pl.DataFrame,
    config: TransformConfig | None = None,
    format: str = "v2",
) -> pa.Table:
    """Map a batch of canonical events to its calls, in delivery order.

    ``batch`` has the :data:`~accoil_transform.schema.CANONICAL_SCHEMA` columns (as
    made by :func:`~accoil_transform.normalize.normalize_frame`) and optionally a
    boolean ``_duplicate``. The result has :data:`CALLS_ARROW_SCHEMA`: ``endpoint``
    (the call kind: ``identify``, ``group`` or ``track``), ``call_id`` and ``body``
    (JSON text); identify calls first, then group, then track, as ``build_calls`` orders
    them.

    >>> from accoil_transform.normalize import empty_canonical
    >>> transform_batch(empty_canonical()).schema == CALLS_ARROW_SCHEMA
    True
    """
    frame = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    columns = [*CANONICAL_SCHEMA, *(["_duplicate"] if "_duplicate" in frame.columns else [])]
    config = config or TransformConfig()
    result = transform(frame.select(columns), config)
    calls = build_calls(result.tracks, result.identifies, result.groups, get_format(format))
    calls = calls.rename({"kind": "endpoint"})
    batches = [
        pa.RecordBatch.from_arrays(
            [chunk[name].to_arrow().cast(pa.string()) for name in CALLS_ARROW_SCHEMA.names],
            schema=CALLS_ARROW_SCHEMA,
        )
        for chunk in calls.iter_slices(_OUT_ROWS)
    ]
    return pa.Table.from_batches(batches, schema=CALLS_ARROW_SCHEMA)
