"""The one factory of Export-API-shaped events, for tests, stand-ins and the generator.

:func:`make_event` gives a row with the full key set of a 2025 Export API record
(``null`` where unknown), deterministic ids, and any key overridden; times may be
given as datetimes. :data:`EXPORT_KEYS` is that key set, in the order Amplitude writes it.
"""

from __future__ import annotations

import itertools
import uuid as uuidlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

Event = dict[str, Any]

#: Keys of a 2025 export record, in the (alphabetical) order Amplitude writes them.
EXPORT_KEYS = (
    "$insert_id", "$insert_key", "$schema", "adid", "amplitude_attribution_ids",
    "amplitude_event_type", "amplitude_id", "app", "city", "client_event_time",
    "client_upload_time", "country", "data", "data_type", "device_brand", "device_carrier",
    "device_family", "device_id", "device_manufacturer", "device_model", "device_type", "dma",
    "event_id", "event_properties", "event_time", "event_type", "global_user_properties",
    "group_properties", "groups", "idfa", "ip_address", "is_attribution_event", "language",
    "library", "location_lat", "location_lng", "os_name", "os_version", "partner_id", "paying",
    "plan", "platform", "processed_time", "region", "sample_rate", "server_received_time",
    "server_upload_time", "session_id", "source_id", "start_version", "user_creation_time",
    "user_id", "user_properties", "uuid", "version_name",
)  # fmt: skip
#: Keys that hold times (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC).
TIME_KEYS = (
    "client_event_time", "client_upload_time", "event_time", "processed_time",
    "server_received_time", "server_upload_time", "user_creation_time",
)  # fmt: skip
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

_counter = itertools.count(1)


def format_time(value: datetime | str) -> str:
    """A time as the Export API writes it: ``2025-07-01 16:34:54.837000``, UTC."""
    if isinstance(value, str):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime(TIME_FORMAT)


def make_event(**overrides: Any) -> Event:
    """One event with the full 2025 Export API key set (``null`` where unknown).

    ``uuid``, ``$insert_id`` and ``event_id`` are deterministic and unique per call;
    every key can be overridden, times also as datetimes. Without an ``event_time``, an
    event given a ``server_upload_time`` happened at that time.
    """
    n = next(_counter)
    user_id = overrides.get("user_id", f"user-{n % 7}")
    times = {k: format_time(v) for k, v in overrides.items() if k in TIME_KEYS and v is not None}
    if "server_upload_time" in times and "event_time" not in overrides:
        times["event_time"] = times["client_event_time"] = times["server_upload_time"]
    event: Event = dict.fromkeys(EXPORT_KEYS)
    event.update(
        {
            "$insert_id": f"ins-{n:06d}",
            "amplitude_id": 1_263_130_950_000 + n,
            "app": 203138,
            "city": "Santarém",
            "client_event_time": "2025-07-01 16:34:54.837000",
            "client_upload_time": "2025-07-01 16:34:55.120000",
            "country": "Portugal",
            "data": {"path": "/2/httpapi", "group_ids": {}, "group_first_event": {}},
            "data_type": "event",
            "device_family": "Mac",
            "device_id": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"device-{user_id}")),
            "device_type": "Mac",
            "event_id": n,
            "event_properties": {},
            "event_time": "2025-07-01 16:34:54.837000",
            "event_type": "Doc Opened",
            "group_properties": {},
            "groups": {},
            "ip_address": "192.0.2.10",
            "language": "English",
            "library": "amplitude-ts/2.16.1",
            "os_name": "Chrome",
            "os_version": "126",
            "plan": {},
            "platform": "Web",
            "processed_time": "2025-07-01 17:14:34.001000",
            "region": "Santarém",
            "server_received_time": "2025-07-01 16:34:55.300000",
            "server_upload_time": "2025-07-01 17:14:33.149000",
            "session_id": -1,
            "user_id": user_id,
            "user_properties": {},
            "uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_OID, f"event-{n}")),
        }
    )
    event.update(overrides)
    event.update(times)
    return event


def make_events(
    start: datetime, hours: int, per_hour: int = 3, **overrides: Any
) -> Iterator[Event]:
    """``per_hour`` events in each of ``hours`` consecutive hours from ``start`` (UTC),
    uploaded 30 s after they happened, by five users and three event types."""
    for h in range(hours):
        for i in range(per_hour):
            upload = start + timedelta(hours=h, minutes=(i * 7) % 60, seconds=i % 60)
            yield make_event(
                server_upload_time=upload,
                event_time=upload - timedelta(seconds=30),
                user_id=f"user-{i % 5}",
                event_type=("Page Viewed", "Report Run", "Invite Sent")[i % 3],
                event_properties={"n": i, "hour": h},
                **overrides,
            )
