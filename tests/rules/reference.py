"""A small, plain-Python reference implementation of SPEC §2–5, written from the SPEC text.

It is deliberately naive (one dict per event, no polars) so that the vectorised transform
can be compared with it. It takes export-shaped events as parsed JSON objects (``dict``),
or raw lines (``str``) that are parsed here, in input order across all input files.

Interpretations where the SPEC is silent (kept in one place so they are easy to revisit):

* Malformed: a line that is not valid JSON, or not a JSON object, or whose ``event_type``
  is absent/null/not a string, or whose ``event_time`` is absent/null/unparseable. A
  required field with a JSON ``null`` value counts as lacking it.
* The user id is the exception: a user-id source that is absent or null is
  ``no_user_id``, not ``malformed`` (anonymous exports carry ``"user_id": null``).
  A string user id is trimmed (``str.strip``); an integer becomes its decimal string.
  Then it is a placeholder if ``trimmed.lower()`` is in :data:`PLACEHOLDER_USER_IDS`.
* Duplicates: ``uuid`` counts as missing when absent, null or ``""``; then the key is
  (``$insert_id``, ``device_id``) when ``$insert_id`` is a non-empty string (spelled
  ``$insert_id``, ``insert_id`` or ``_insert_id``, first one found); an absent/null
  ``device_id`` is part of the key as null. Without either, a row is never a duplicate.
  Keys are compared exactly. Malformed rows neither are duplicates nor make later rows
  duplicates; every other row (whatever its other drop reason) takes part.
* Include/exclude compare ``event_type`` exactly (case-sensitive), before renaming.
* Times: ``YYYY-MM-DD``, a space or ``T``, ``HH:MM:SS``, optionally ``.`` + 3 or 6
  digits, optionally ``Z`` or ``±HH:MM``. No zone means UTC. The output timestamp
  truncates to milliseconds (it does not round).
* Properties: a key present with a JSON ``null`` value is present (value ``null``, and
  the lookup stops there); an absent key is left out of ``properties``. The output key
  of a qualified name (``event_properties.x``) is the bare name (``x``). A container that
  is absent, null or not an object has no keys.
* Identify traits: ``{name: user_properties[name]}`` for each configured user trait that
  is present, then the additional properties that are found (a property overrides a user
  trait of the same name). Only kept events count for "the user's latest event".
* Groups: ``groups`` and ``group_properties`` must both be present keys with non-null
  values. A ``groups`` value that is not an object gives no candidate. An entry
  ``group_properties[type][id]`` that is not an object counts as missing (``{}``).
  Integer ids become ``str(int)``; ``""`` is a (valid) id; only nulls are skipped.
* Group records: keyed by (userId, primary groupId); the latest kept event of the pair
  (greatest event_time, tie → last in input order) gives traits and timestamp.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

PLACEHOLDER_USER_IDS = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "0",
        "-1",
        "00000000-0000-0000-0000-000000000000",
    }
)
DROP_REASONS = ("malformed", "duplicate", "no_user_id", "identify_call", "event_type")
IDENTIFY_TYPES = ("$identify", "$groupidentify")

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})"
    r"(?:\.(\d{3}|\d{6}))?"
    r"(Z|[+-]\d{2}:\d{2})?$"
)


class Unsupported(ValueError):
    """The input uses a shape the reference makes no claim about (a test-generator bug)."""


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime, or None when ``value`` is not a SPEC §1 time string."""
    if not isinstance(value, str):
        return None
    m = _TIME.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micro = int(frac.ljust(6, "0")) if frac else 0
    zone = m.group(8)
    if zone is None or zone == "Z":
        tz = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(UTC)


def format_timestamp(instant: datetime) -> str:
    """``2026-11-24T09:59:58.880Z``: UTC, milliseconds (truncated), ``Z``."""
    utc = instant.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


def _id_text(value: Any) -> str | None:
    """User/group id as text: strings as-is, integers in decimal, null → None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Unsupported(f"boolean id {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise Unsupported(f"id of type {type(value).__name__}: {value!r}")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _split_ref(spec: str) -> tuple[str | None, str]:
    for scope in ("event_properties", "user_properties"):
        if spec.startswith(scope + "."):
            return scope, spec[len(scope) + 1 :]
    return None, spec


def user_id_of(event: dict[str, Any], source: str) -> str | None:
    """The usable userId of an event, or None (absent, null or placeholder)."""
    scope, name = _split_ref(source)
    raw = event.get(name) if scope is None else _obj(event.get(scope)).get(name)
    text = _id_text(raw)
    if text is None:
        return None
    text = text.strip()
    if text.lower() in PLACEHOLDER_USER_IDS:
        return None
    return text


def lookup_property(event: dict[str, Any], spec: str) -> tuple[str, bool, Any]:
    """(output name, found, value): event_properties then user_properties unless qualified."""
    scope, name = _split_ref(spec)
    scopes = [scope] if scope else ["event_properties", "user_properties"]
    for s in scopes:
        container = _obj(event.get(s))
        if name in container:
            return name, True, container[name]
    return name, False, None


def group_candidates(event: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(groupId, type, traits) for every candidate, sorted per SPEC §4.3."""
    if "groups" not in event or "group_properties" not in event:
        return []
    groups, props = event["groups"], event["group_properties"]
    if groups is None or props is None or not isinstance(groups, dict):
        return []
    out = []
    for gtype, value in groups.items():
        ids = value if isinstance(value, list) else [value]
        for raw in ids:
            gid = _id_text(raw)
            if gid is None:
                continue
            entry = _obj(props).get(gtype)
            traits = dict(_obj(_obj(entry).get(gid)))
            traits["group_type"] = gtype
            out.append((gid, gtype, traits))
    out.sort(key=lambda c: (c[0], c[1]))  # Python compares str by code point
    return out


def group_traits(event: dict[str, Any]) -> list[dict[str, Any]]:
    cands = group_candidates(event)
    if not cands:
        return []
    gid, _, traits = cands[0]
    return [{"groupId": gid, "traits": traits}]


@dataclass
class RefResult:
    """What the reference produces.

    ``tracks``: one dict per kept event, in input order, with ``row`` (0-based position in
    the input), ``userId``, ``event``, ``timestamp``, ``properties``, ``groupTraits``.
    ``identifies``: ``{userId: {"traits", "timestamp"}}``.
    ``groups``: ``{(userId, groupId): {"traits", "timestamp"}}``.
    """

    rows_read: int = 0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    identifies: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    reasons: list[str | None] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return len(self.tracks)


def _parse_line(line: dict[str, Any] | str) -> tuple[dict[str, Any] | None, datetime | None]:
    if isinstance(line, str):
        try:
            line = json.loads(line)
        except ValueError:
            return None, None
    if not isinstance(line, dict):
        return None, None
    if not isinstance(line.get("event_type"), str):
        return None, None
    instant = parse_time(line.get("event_time"))
    if instant is None:
        return None, None
    return line, instant


def _dedup_key(event: dict[str, Any]) -> tuple | None:
    uuid = event.get("uuid")
    if isinstance(uuid, str) and uuid != "":
        return ("uuid", uuid)
    if uuid not in (None, ""):
        raise Unsupported(f"uuid {uuid!r}")
    for name in ("$insert_id", "insert_id", "_insert_id"):
        insert_id = event.get(name)
        if isinstance(insert_id, str) and insert_id != "":
            return ("insert_id", insert_id, event.get("device_id"))
    return None


def reference_transform(
    lines: list[dict[str, Any] | str],
    *,
    user_id: str = "user_id",
    include_events: tuple[str, ...] | list[str] = (),
    exclude_events: tuple[str, ...] | list[str] = (),
    properties: tuple[str, ...] | list[str] = (),
    user_traits: tuple[str, ...] | list[str] = ("email", "name"),
    event_rename: dict[str, str] | None = None,
) -> RefResult:
    """Apply SPEC §2–5 to ``lines`` (all input files concatenated in input order)."""
    rename = event_rename or {}
    res = RefResult(rows_read=len(lines))
    seen: set[tuple] = set()
    latest_user: dict[str, tuple[datetime, int, dict[str, Any]]] = {}
    latest_pair: dict[tuple[str, str], tuple[datetime, int, dict[str, Any]]] = {}

    for row, line in enumerate(lines):
        event, instant = _parse_line(line)
        reason: str | None = None
        if event is None or instant is None:
            reason = "malformed"
        else:
            key = _dedup_key(event)
            if key is not None and key in seen:
                reason = "duplicate"
            elif key is not None:
                seen.add(key)
            uid = user_id_of(event, user_id)
            et = event["event_type"]
            if reason is not None:
                pass
            elif uid is None:
                reason = "no_user_id"
            elif et in IDENTIFY_TYPES:
                reason = "identify_call"
            elif (include_events and et not in include_events) or et in exclude_events:
                reason = "event_type"
        res.reasons.append(reason)
        if reason is not None:
            res.dropped[reason] += 1
            continue
        assert event is not None and instant is not None and uid is not None

        props: dict[str, Any] = {}
        for spec in properties:
            name, found, value = lookup_property(event, spec)
            if found:
                props[name] = value
        gt = group_traits(event)
        stamp = format_timestamp(instant)
        res.tracks.append(
            {
                "row": row,
                "userId": uid,
                "event": rename.get(et, et),
                "timestamp": stamp,
                "properties": props,
                "groupTraits": gt,
            }
        )

        traits: dict[str, Any] = {}
        ups = _obj(event.get("user_properties"))
        for name in user_traits:
            if name in ups:
                traits[name] = ups[name]
        traits.update(props)
        if uid not in latest_user or (instant, row) >= latest_user[uid][:2]:
            latest_user[uid] = (instant, row, {"traits": traits, "timestamp": stamp})
        if gt:
            pair = (uid, gt[0]["groupId"])
            if pair not in latest_pair or (instant, row) >= latest_pair[pair][:2]:
                latest_pair[pair] = (
                    instant,
                    row,
                    {"traits": gt[0]["traits"], "timestamp": stamp},
                )

    res.identifies = {u: v[2] for u, v in latest_user.items()}
    res.groups = {p: v[2] for p, v in latest_pair.items()}
    return res


def typed(value: Any) -> Any:
    """A JSON value made comparable with its JSON type kept (``True`` ≠ ``1``, ``"5"`` ≠ ``5``).

    Numbers compare as the IEEE doubles a JSON reader such as JavaScript's makes of
    them: ``1e20`` and ``100000000000000000000`` are the same JSON number.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null",)
    if isinstance(value, list):
        return ("array", tuple(typed(v) for v in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, typed(v)) for k, v in value.items())))
    raise TypeError(type(value))
