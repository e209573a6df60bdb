"""A small, plain-Python reference implementation of docs/rules.md §2-6, written from the text.

It is deliberately naive (one dict per event, no polars) so that the vectorised transform
can be compared with it. It takes export-shaped events as parsed JSON objects (``dict``),
or raw lines (``str``) that are parsed here, in input order across all input files.

Interpretations where the rules are silent (kept in one place so they are easy to revisit):

* Malformed: a line that is not valid JSON, or not a JSON object, or whose ``event_type``
  is absent, null, not a string, empty or only white space, or whose ``event_time`` is
  absent/null/unparseable.
* The user id is the exception: a user-id source that is absent, null, a list or an
  object is ``no_user_id``, not ``malformed``. A string user id is trimmed; an integer
  becomes its decimal string. Then it is a placeholder if ``trimmed.lower()`` is in
  :data:`PLACEHOLDER_USER_IDS`.
* A nested column (``groups``, ``group_properties``, ``event_properties``,
  ``user_properties``) that holds a string which is JSON text of an object means that
  object (warehouse extracts write them so).
* Duplicates: ``uuid`` counts as missing when absent, null or ``""``; then the key is
  (``$insert_id``, ``device_id``) when ``$insert_id`` is a non-empty string (spelled
  ``$insert_id``, ``insert_id`` or ``_insert_id``, first one found); an absent/null
  ``device_id`` is part of the key as null. Without either, a row is never a duplicate.
  Malformed rows neither are duplicates nor make later rows duplicates; every other row
  (whatever its other place) takes part.
* Places, the first that applies: malformed, duplicate, ``$groupidentify`` (a trait row),
  no_user_id, ``$identify`` (a trait row), event_type; else kept.
* Include/exclude compare ``event_type`` exactly (case-sensitive), before renaming.
* Times: ``YYYY-MM-DD``, a space or ``T``, ``HH:MM:SS``, optionally ``.`` + 3 or 6
  digits, optionally ``Z`` or ``±HH:MM``. No zone means UTC. The output timestamp
  truncates to milliseconds (it does not round).
* Properties: a key present with a JSON ``null`` value is present (value ``null``, and
  the lookup stops there); an absent key is left out of ``properties``. The output key
  of a qualified name (``event_properties.x``) is the bare name (``x``). A container that
  is absent, null or not an object has no keys.
* "Latest" everywhere: the greatest event time, on a tie the last in input order.
* Identify: one per distinct userId among kept events and ``$identify`` rows. Traits are
  the whole ``user_properties`` object of the user's latest such row that has one
  (narrowed by ``user_traits``, in that order, and ``exclude_user_traits``); then each
  additional property from the user's latest such row where it is found (it overrides a
  trait of the same name). ``timestamp``: the user's latest such row.
* Groups: ``groups`` and ``group_properties`` must both be present keys with non-null
  values; a ``groups`` that is present and not an object gives no candidate (counted under
  ``groups_not_object`` among kept events and ``$groupidentify`` rows). A group id that
  is an object or a list is not a candidate (counted under ``group_id_not_scalar``).
  Integer ids become ``str(int)``; ``""`` is a (valid) id; only nulls are skipped.
* A group's known traits: from the latest kept event or ``$groupidentify`` row that names
  the (type, id) among its candidates and holds an object at
  ``group_properties[type][id]``; that object plus ``group_type``.
* Group records: keyed by (userId, primary groupId); timestamp the pair's latest kept
  event; traits the group's known traits (the group is the primary (type, id) of that
  latest event), else ``{"group_type": type}``.
* Account-only groups: every (type, id) candidate of a ``$groupidentify`` row that is not
  the primary group of any kept event; traits as above; timestamp the latest
  ``$groupidentify`` row naming it.
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
DROP_REASONS = ("malformed", "duplicate", "no_user_id", "event_type")
NESTED = ("groups", "group_properties", "event_properties", "user_properties")

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


def _nested(event: dict[str, Any]) -> dict[str, Any]:
    """The event with nested columns given as JSON text of an object parsed."""
    out = dict(event)
    for name in NESTED:
        value = out.get(name)
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                out[name] = parsed
    return out


def _split_ref(spec: str) -> tuple[str | None, str]:
    for scope in ("event_properties", "user_properties"):
        if spec.startswith(scope + "."):
            return scope, spec[len(scope) + 1 :]
    return None, spec


def user_id_of(event: dict[str, Any], source: str) -> str | None:
    """The usable userId of an event, or None (absent, null or placeholder)."""
    scope, name = _split_ref(source)
    raw = event.get(name) if scope is None else _obj(event.get(scope)).get(name)
    if isinstance(raw, list | dict):
        return None
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


def group_candidates(
    event: dict[str, Any], odd: dict[str, int] | None = None
) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(groupId, type, traits, traits found) of every candidate, sorted by id then type.

    ``odd`` counts a ``groups`` that is not an object and ids that are not scalars.
    """
    groups = event.get("groups")
    if groups is not None and not isinstance(groups, dict) and odd is not None:
        odd["groups_not_object"] += 1
    if "groups" not in event or "group_properties" not in event:
        return []
    props = event["group_properties"]
    if groups is None or props is None or not isinstance(groups, dict):
        return []
    out = []
    for gtype, value in groups.items():
        ids = value if isinstance(value, list) else [value]
        for raw in ids:
            if isinstance(raw, list | dict):
                if odd is not None:
                    odd["group_id_not_scalar"] += 1
                continue
            gid = _id_text(raw)
            if gid is None:
                continue
            entry = _obj(_obj(props).get(gtype)).get(gid)
            traits = dict(_obj(entry))
            traits["group_type"] = gtype
            out.append((gid, gtype, traits, isinstance(entry, dict)))
    out.sort(key=lambda c: (c[0], c[1]))  # Python compares str by code point
    return out


def group_traits(event: dict[str, Any]) -> list[dict[str, Any]]:
    cands = group_candidates(event)
    if not cands:
        return []
    gid, _, traits, _ = cands[0]
    return [{"groupId": gid, "traits": traits}]


@dataclass
class RefResult:
    """What the reference produces.

    ``tracks``: one dict per kept event, in input order, with ``row`` (0-based position in
    the input), ``userId``, ``event``, ``timestamp``, ``properties``, ``groupTraits``.
    ``identifies``: ``{userId: {"traits", "timestamp"}}``.
    ``groups``: ``{(userId, groupId): {"traits", "timestamp"}}``.
    ``account_groups``: ``{(type, groupId): {"traits", "timestamp"}}``.
    """

    rows_read: int = 0
    trait_rows: int = 0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    identifies: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    account_groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    odd_values: dict[str, int] = field(
        default_factory=lambda: {"groups_not_object": 0, "group_id_not_scalar": 0}
    )
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
    event_type = line.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        return None, None
    instant = parse_time(line.get("event_time"))
    if instant is None:
        return None, None
    return _nested(line), instant


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


Latest = tuple[datetime, int]


def _later(stamp: Latest, current: dict[Any, tuple[Latest, Any]], key: Any, value: Any) -> None:
    """Keep ``value`` under ``key`` if ``stamp`` is the latest seen for it."""
    if key not in current or stamp >= current[key][0]:
        current[key] = (stamp, value)


def reference_transform(
    lines: list[dict[str, Any] | str],
    *,
    user_id: str = "user_id",
    include_events: tuple[str, ...] | list[str] = (),
    exclude_events: tuple[str, ...] | list[str] = (),
    properties: tuple[str, ...] | list[str] = (),
    user_traits: tuple[str, ...] | list[str] | None = None,
    exclude_user_traits: tuple[str, ...] | list[str] = (),
    event_rename: dict[str, str] | None = None,
) -> RefResult:
    """Apply the rules to ``lines`` (all input files concatenated in input order)."""
    rename = event_rename or {}
    res = RefResult(rows_read=len(lines))
    seen: set[tuple] = set()
    user_last: dict[Any, tuple[Latest, Any]] = {}  # userId -> timestamp
    user_props: dict[Any, tuple[Latest, Any]] = {}  # userId -> user_properties object
    user_prop_values: dict[Any, tuple[Latest, Any]] = {}  # (userId, name) -> value
    group_known: dict[Any, tuple[Latest, Any]] = {}  # (type, id) -> traits
    pairs: dict[Any, tuple[Latest, Any]] = {}  # (userId, groupId) -> (type, timestamp)
    primaries: set[tuple[str, str]] = set()
    named: dict[Any, tuple[Latest, Any]] = {}  # (type, id) of $groupidentify -> timestamp

    for row, line in enumerate(lines):
        event, instant = _parse_line(line)
        place: str | None = None
        if event is None or instant is None:
            place = "malformed"
        else:
            key = _dedup_key(event)
            uid = user_id_of(event, user_id)
            et = event["event_type"]
            if key is not None and key in seen:
                place = "duplicate"
            elif et == "$groupidentify":
                place = "trait_rows"
            elif uid is None:
                place = "no_user_id"
            elif et == "$identify":
                place = "trait_rows"
            elif (include_events and et not in include_events) or et in exclude_events:
                place = "event_type"
            if key is not None:
                seen.add(key)
        res.reasons.append(place)
        if place == "trait_rows":
            res.trait_rows += 1
        elif place is not None:
            res.dropped[place] += 1
            continue
        assert event is not None and instant is not None
        stamp: Latest = (instant, row)
        timestamp = format_timestamp(instant)
        kept = place is None

        if kept or et == "$groupidentify":
            candidates = group_candidates(event, res.odd_values)
            for gid, gtype, traits, found in candidates:
                if found:
                    _later(stamp, group_known, (gtype, gid), traits)
                if not kept:
                    _later(stamp, named, (gtype, gid), timestamp)
        if kept or et == "$identify":
            assert uid is not None
            _later(stamp, user_last, uid, timestamp)
            if isinstance(event.get("user_properties"), dict):
                _later(stamp, user_props, uid, event["user_properties"])
            for spec in properties:
                name, found, value = lookup_property(event, spec)
                if found:
                    _later(stamp, user_prop_values, (uid, name), value)
        if not kept:
            continue
        assert uid is not None

        props: dict[str, Any] = {}
        for spec in properties:
            name, found, value = lookup_property(event, spec)
            if found:
                props[name] = value
        gt = group_traits(event)
        res.tracks.append(
            {
                "row": row,
                "userId": uid,
                "event": rename.get(et, et),
                "timestamp": timestamp,
                "properties": props,
                "groupTraits": gt,
            }
        )
        if candidates:
            gid, gtype = candidates[0][0], candidates[0][1]
            primaries.add((gtype, gid))
            _later(stamp, pairs, (uid, gid), (gtype, timestamp))

    for uid, (_, timestamp) in user_last.items():
        ups = user_props.get(uid, (None, {}))[1]
        if user_traits is None:
            traits = dict(ups)
        else:
            traits = {name: ups[name] for name in user_traits if name in ups}
        for name in exclude_user_traits:
            traits.pop(name, None)
        for spec in properties:
            name = _split_ref(spec)[1]
            if (uid, name) in user_prop_values:
                traits[name] = user_prop_values[uid, name][1]
        res.identifies[uid] = {"traits": traits, "timestamp": timestamp}

    def known(gtype: str, gid: str) -> dict[str, Any]:
        return group_known.get((gtype, gid), (None, {"group_type": gtype}))[1]

    for (uid, gid), (_, (gtype, timestamp)) in pairs.items():
        res.groups[uid, gid] = {"traits": known(gtype, gid), "timestamp": timestamp}
    for (gtype, gid), (_, timestamp) in named.items():
        if (gtype, gid) not in primaries:
            res.account_groups[gtype, gid] = {"traits": known(gtype, gid), "timestamp": timestamp}
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
