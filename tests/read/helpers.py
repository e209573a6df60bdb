"""Shared data for the read tests: seven varied export rows, the zip members and folders
they arrive in, and the comparable content of canonical rows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl

import accoil_transform as at

UTC = dt.UTC
PROJ = "203138"

# Members in (date, hour, n) order. Sorting the names as text would give another order:
# "_10#" < "_9#" and "#627" < "#70".
MEMBER_ORDER = [
    f"{PROJ}/{PROJ}_2025-06-30_23#0.json.gz",
    f"{PROJ}/{PROJ}_2025-07-01_9#70.json.gz",
    f"{PROJ}/{PROJ}_2025-07-01_9#627.json.gz",
    f"{PROJ}/{PROJ}_2025-07-01_10#3.json.gz",
]


def sample_events(make_event) -> list[dict[str, Any]]:
    """Seven varied export rows (no empty objects inside group_properties, so that the
    struct-typed Parquet variant can be written)."""
    return [
        make_event(
            event_type="Doc Opened",
            user_id="user-1",
            event_time="2025-06-30 23:10:00.100000",
            groups={"company_id": ["1", "2"], "org name": ["Acme Ünïcode"]},
            group_properties={"company_id": {"1": {"plan": "enterprise", "seats": 40}}},
            event_properties={"plan": "pro", "count": 3},
            user_properties={"email": "one@example.com", "name": "One"},
        ),
        make_event(
            event_type="Report Run 📈",
            user_id=None,
            event_time="2025-06-30 23:20:00.000000",
            event_properties={"nested": {"a": [1, 2, 3], "b": {"c": True}}},
        ),
        make_event(
            event_type="Doc Opened",
            user_id="user-2",
            event_time="2025-07-01 09:00:01.000000",
            groups={"Account": ["210000"]},
            group_properties={"Account": {"210000": {"domain": "accoil.com", "name": "Released"}}},
            user_properties={"email": "two@example.com"},
        ),
        make_event(
            event_type="Invite Sent",
            user_id="user-3",
            event_time="2025-07-01 09:30:00.250000",
            event_properties={"city": "St. John's", "rtl": "שלום"},
        ),
        make_event(
            event_type="$identify",
            user_id="user-3",
            event_time="2025-07-01 09:45:00.000000",
            user_properties={"$set": {"plan": "pro"}},
        ),
        make_event(
            event_type="Doc Opened",
            user_id="007",
            event_time="2025-07-01 10:05:00.999000",
            groups={"org": ["acme"]},
            group_properties={"org": {"acme": {"tier": 2}}},
        ),
        make_event(
            event_type="Doc Closed",
            user_id="user-1",
            event_time="2025-07-01 10:15:00.000000",
        ),
    ]


# rows per member, in MEMBER_ORDER
MEMBER_SPLIT = [2, 1, 2, 2]


def members_of(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out, i = {}, 0
    for name, n in zip(MEMBER_ORDER, MEMBER_SPLIT, strict=True):
        out[name] = events[i : i + n]
        i += n
    return out


def scrambled(members: dict[str, Any]) -> dict[str, Any]:
    """The same members, written into the zip in a different order than the read order."""
    names = list(members)
    order = [names[2], names[3], names[0], names[1]]
    return {n: members[n] for n in order}


def read_all(inputs: Any, config: at.TransformConfig | None = None) -> pl.DataFrame:
    return pl.concat(list(at.read_events(inputs, config)))


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def content(frame: pl.DataFrame, *, struct_nulls: bool = False) -> list[dict[str, Any]]:
    """The comparable content of canonical rows: ids, times, and the JSON columns decoded.

    ``struct_nulls`` drops null object members: a struct column can't tell a missing
    key from a null one.
    """
    rows = []
    for row in frame.select(
        "uuid",
        "insert_id",
        "device_id",
        "user_id",
        "event_type",
        "event_time",
        "event_properties",
        "user_properties",
        "groups",
        "group_properties",
    ).iter_rows(named=True):
        for col in ("event_properties", "user_properties", "groups", "group_properties"):
            decoded = None if row[col] is None else json.loads(row[col])
            row[col] = strip_nulls(decoded) if struct_nulls else decoded
        rows.append(row)
    return rows


def expected_content(
    events: list[dict[str, Any]], *, struct_nulls: bool = False
) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        row = {
            "uuid": e["uuid"],
            "insert_id": e["$insert_id"],
            "device_id": e["device_id"],
            "user_id": e["user_id"],
            "event_type": e["event_type"],
            "event_time": dt.datetime.fromisoformat(e["event_time"]).replace(tzinfo=UTC),
        }
        for col in ("event_properties", "user_properties", "groups", "group_properties"):
            row[col] = strip_nulls(e[col]) if struct_nulls else e[col]
        rows.append(row)
    return rows


def s3_folder(root: Path, events: list[dict[str, Any]], write_lines) -> Path:
    """The S3/GCS layout: ``<prefix>/<proj>/<proj>_<date>_<H>#<n>.json.gz`` plus markers."""
    for name, rows in scrambled(members_of(events)).items():
        write_lines(root, rows, name, gz=True)
    (root / PROJ / "complete").write_text("complete\n")  # marker: not NDJSON, must be skipped
    (root / PROJ / f"{PROJ}_2025-07-01_11#0.json.gz").write_bytes(b"")  # empty hour
    return root


def json_text_frame(events: list[dict[str, Any]]) -> pl.DataFrame:
    """The events as a warehouse extract: nested columns as JSON text."""
    nested = ("event_properties", "user_properties", "groups", "group_properties", "data", "plan")
    records = [
        {
            k: (json.dumps(v, ensure_ascii=False) if k in nested and v is not None else v)
            for k, v in e.items()
        }
        for e in events
    ]
    return pl.DataFrame(records, infer_schema_length=None)


def wh_row(**kw: Any) -> dict[str, Any]:
    base = {
        "EVENT_TYPE": "Doc Opened",
        "EVENT_TIME": "2025-07-01 16:34:54.837000",
        "USER_ID": "u-1",
    }
    base.update(kw)
    return base
