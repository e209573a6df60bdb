"""Tests for the deterministic synthetic Amplitude export generator."""

from __future__ import annotations

import gzip
import re
import shlex
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from accoil_transform.read import EXPORT_MEMBER
from accoil_transform.testing.synthetic import (
    CASE_KEY,
    EDGE_CASES,
    EXPORT_KEYS,
    MALFORMED_KINDS,
    generate_events,
    main,
    to_warehouse_frame,
    write_export_zip,
    write_ndjson_gz,
    write_s3_layout,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "amplitude_export_sample.zip"
README = ROOT / "sample_data" / "README.md"
Event = dict[str, Any]

SPEC_PLACEHOLDERS = {
    "", "null", "none", "nil", "undefined", "anonymous", "0", "-1",
    "00000000-0000-0000-0000-000000000000",
}  # fmt: skip


def read_zip(path: Path, malformed: list[bytes] | None = None) -> dict[str, list[Event]]:
    """Member name → its events, in zip order; every member must be gzip NDJSON.

    Lines that are not event objects (the sample's deliberate malformed lines) go to
    ``malformed`` when it is given, and fail otherwise.
    """
    out: dict[str, list[Event]] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            out[name] = []
            for line in gzip.decompress(zf.read(name)).splitlines():
                event = _event_or_none(line)
                if event is None and malformed is not None:
                    malformed.append(line)
                    continue
                assert event is not None, line[:80]
                out[name].append(event)
    return out


def _event_or_none(line: bytes) -> Event | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("event_time"), str):
        return None
    try:
        utc(value["event_time"])
    except ValueError:
        return None
    return value


def utc(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    return dt.astimezone(UTC) if dt.tzinfo else dt.replace(tzinfo=UTC)


SAMPLE_MALFORMED: list[bytes] = []


@pytest.fixture(scope="module")
def sample_members() -> dict[str, list[Event]]:
    SAMPLE_MALFORMED.clear()
    return read_zip(SAMPLE, SAMPLE_MALFORMED)


def test_sample_has_one_malformed_line_of_each_kind(sample_members: dict[str, list[Event]]) -> None:
    assert len(SAMPLE_MALFORMED) == len(MALFORMED_KINDS) == 4
    assert any(line.startswith(b"[") for line in SAMPLE_MALFORMED)
    assert any(b'"yesterday"' in line for line in SAMPLE_MALFORMED)


@pytest.fixture(scope="module", params=["n=200", "sample"])
def events(request: pytest.FixtureRequest, sample_members: dict[str, list[Event]]) -> list[Event]:
    """The smallest run that promises every case, and the committed sample."""
    if request.param == "n=200":
        return list(generate_events(200, seed=0))
    return [ev for member in sample_members.values() for ev in member]


# ----------------------------------------------------------------------- edge cases


def _groups(ev: Event) -> dict[str, Any]:
    return ev["groups"] if isinstance(ev.get("groups"), dict) else {}


def _pairs(ev: Event) -> list[tuple[str, Any]]:
    """(group type, id) pairs, scalars treated as one id."""
    return [(t, i) for t, v in _groups(ev).items() for i in (v if isinstance(v, list) else [v])]


def _gp(ev: Event) -> dict[str, Any]:
    gp = ev.get("group_properties")
    return gp if isinstance(gp, dict) and "$set" not in gp else {}


def _traits(evs: list[Event]) -> list[dict[str, Any]]:
    return [t for ev in evs for per_type in _gp(ev).values() for t in per_type.values()]


def _user_ids(evs: list[Event]) -> list[str]:
    return [ev["user_id"] for ev in evs if isinstance(ev.get("user_id"), str)]


def _placeholders(evs: list[Event]) -> list[str]:
    return [u for u in _user_ids(evs) if u.strip().lower() in SPEC_PLACEHOLDERS]


TIME_FORMATS = {
    "6 digits, space": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$",
    "3 digits": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$",
    "no fraction": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$",
    "T separator": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$",
    "Z": r"^\d{4}-\d\d-\d\dT[\d:.]+Z$",
    "+02:00": r"^\d{4}-\d\d-\d\dT[\d:.]+\+02:00$",
}


def _any_time(pattern: str, evs: list[Event]) -> bool:
    return any(re.match(pattern, e["event_time"]) for e in evs)


CHECKS: dict[str, Callable[[list[Event]], bool]] = {
    "anonymous": lambda evs: any(e["user_id"] is None and e["device_id"] for e in evs),
    "neither user_id nor device_id": lambda evs: any(
        e["user_id"] is None and e["device_id"] is None for e in evs
    ),
    "every SPEC placeholder id": lambda evs: (
        {u.strip().lower() for u in _placeholders(evs)} == SPEC_PLACEHOLDERS
    ),
    "placeholders with whitespace and upper case": lambda evs: (
        any(u != u.strip() for u in _placeholders(evs))
        and any(u.strip() != u.strip().lower() for u in _placeholders(evs))
    ),
    "real user id needing a trim": lambda evs: any(
        u != u.strip() and u.strip().lower() not in SPEC_PLACEHOLDERS for u in _user_ids(evs)
    ),
    "$identify with operation map": lambda evs: any(
        e["event_type"] == "$identify" and "$set" in e["user_properties"] for e in evs
    ),
    "$groupidentify with operation map": lambda evs: any(
        e["event_type"] == "$groupidentify" and "$set" in e["group_properties"] for e in evs
    ),
    "several group types": lambda evs: any(len(_groups(e)) >= 3 for e in evs),
    "ids '10' and '9' in one event": lambda evs: any(
        {"10", "9"} <= {i for _, i in _pairs(e)} for e in evs
    ),
    "one id under two types": lambda evs: any(
        len(_pairs(e)) > len({i for _, i in _pairs(e)}) for e in evs
    ),
    "scalar group value": lambda evs: any(
        not isinstance(v, list) for e in evs for v in _groups(e).values()
    ),
    "numeric group id (list and scalar)": lambda evs: (
        any(isinstance(i, int) for e in evs for _, i in _pairs(e))
        and any(isinstance(v, int) for e in evs for v in _groups(e).values())
    ),
    "null inside an id list": lambda evs: any(
        isinstance(v, list) and None in v and len(v) > 1 for e in evs for v in _groups(e).values()
    ),
    "only nulls / empty id list": lambda evs: (
        any(v == [None] for e in evs for v in _groups(e).values())
        and any(v == [] for e in evs for v in _groups(e).values())
    ),
    "id missing from group_properties": lambda evs: any(
        t in _gp(e) and i is not None and str(i) not in _gp(e)[t] for e in evs for t, i in _pairs(e)
    ),
    "type missing from group_properties": lambda evs: any(
        _gp(e) and any(t not in _gp(e) for t in _groups(e)) for e in evs
    ),
    "type in group_properties, not in groups": lambda evs: any(
        _groups(e) and set(_gp(e)) - set(_groups(e)) for e in evs
    ),
    "group_properties entry {}": lambda evs: any(t == {} for t in _traits(evs)),
    "group_properties absent": lambda evs: any("group_properties" not in e for e in evs),
    "group_properties null": lambda evs: any(
        "group_properties" in e and e["group_properties"] is None and _groups(e) for e in evs
    ),
    "group_properties {} with groups": lambda evs: any(
        e.get("group_properties") == {} and _groups(e) for e in evs
    ),
    "groups null": lambda evs: any("groups" in e and e["groups"] is None for e in evs),
    "groups {} with group_properties": lambda evs: any(
        e.get("groups") == {} and _gp(e) for e in evs
    ),
    "groups absent": lambda evs: any("groups" not in e for e in evs),
    "trait values of every JSON type": lambda evs: (
        {type(v) for t in _traits(evs) for v in t.values()}
        >= {str, int, float, bool, type(None), dict, list}
    ),
    "group_type inside traits": lambda evs: any("group_type" in t for t in _traits(evs)),
    "event type with emoji and RTL": lambda evs: (
        any("📊" in e["event_type"] for e in evs)
        and any(re.search("[\u0590-\u08ff]", e["event_type"]) for e in evs)
    ),
    "unicode property keys and emoji values": lambda evs: any(
        any(not k.isascii() for k in e["event_properties"])
        and any(isinstance(v, str) and "🚀" in v for v in e["event_properties"].values())
        for e in evs
    ),
    "group types with spaces/brackets": lambda evs: (
        {"[Segment] Group", "org name"} <= {t for e in evs for t in _groups(e)}
    ),
    "duplicate uuid": lambda evs: (
        Counter(e["uuid"] for e in evs if e.get("uuid")).most_common(1)[0][1] > 1
    ),
    "uuid absent and uuid null": lambda evs: (
        any("uuid" not in e for e in evs) and any("uuid" in e and e["uuid"] is None for e in evs)
    ),
    "duplicate ($insert_id, device_id) without uuid": lambda evs: (
        Counter((e["$insert_id"], e["device_id"]) for e in evs if not e.get("uuid")).most_common(1)[
            0
        ][1]
        > 1
    ),
    "same $insert_id on another device": lambda evs: any(
        len(devices) > 1
        for devices in _group_by(
            evs, lambda e: e.get("$insert_id"), lambda e: e["device_id"]
        ).values()
    ),
    **{
        f"event_time {label}": partial(_any_time, pattern)
        for label, pattern in TIME_FORMATS.items()
    },
    "session_id -1": lambda evs: any(e["session_id"] == -1 for e in evs),
    "large property map": lambda evs: any(len(e["event_properties"]) >= 200 for e in evs),
    "late arrival (event_time days before upload)": lambda evs: any(
        utc(e["server_upload_time"]) - utc(e["event_time"]) > timedelta(days=2) for e in evs
    ),
    "two events of one user at the same event_time": lambda evs: any(
        len(uuids) > 1
        for uuids in _group_by(
            evs, lambda e: (e["user_id"], e["event_time"]), lambda e: e.get("$insert_id")
        ).values()
    ),
}


def _group_by(evs: list[Event], key: Callable[[Event], Any], value: Callable[[Event], Any]) -> dict[Any, set[Any]]:  # fmt: skip
    """key → set of values, skipping events whose key is None."""
    out: dict[Any, set[Any]] = defaultdict(set)
    for e in evs:
        if (k := key(e)) is not None:
            out[k].add(value(e))
    return out


@pytest.mark.parametrize("case", list(CHECKS))
def test_every_edge_case_is_present(events: list[Event], case: str) -> None:
    assert CHECKS[case](events), case


def test_every_named_case_is_marked(events: list[Event]) -> None:
    assert {e["event_properties"].get(CASE_KEY) for e in events} - {None} == set(EDGE_CASES)


def test_edge_cases_are_a_few_percent() -> None:
    evs = list(generate_events(20_000, seed=3))
    share = sum(CASE_KEY in e["event_properties"] for e in evs) / len(evs)
    assert 0.01 < share < 0.06


def test_edge_cases_off_gives_clean_events() -> None:
    evs = list(generate_events(1000, seed=3, edge_cases=False))
    assert len(evs) == 1000
    for e in evs:
        assert tuple(e) == EXPORT_KEYS
        assert CASE_KEY not in e["event_properties"]
        assert e["user_id"] and e["user_id"].strip().lower() not in SPEC_PLACEHOLDERS
        assert e["groups"]["Account"] and e["group_properties"]["Account"]
    assert len({e["uuid"] for e in evs}) == len(evs)


def test_event_shape_and_times(events: list[Event]) -> None:
    plain = [e for e in events if CASE_KEY not in e["event_properties"]]
    assert all(tuple(e) == EXPORT_KEYS for e in plain)
    for e in events:
        assert utc(e["event_time"]) <= utc(e["server_upload_time"])
        assert re.fullmatch(TIME_FORMATS["6 digits, space"], e["server_upload_time"])
    types = Counter(e["event_type"] for e in plain)
    assert {
        "[Amplitude] Page Viewed",
        "session_start",
        "Report Created",
        "Dashboard Viewed",
    } <= set(types)
    assert {t for e in plain for t in e["groups"]} == {"Account", "Workspace"}


# ----------------------------------------------------------------------- files


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.zip" for i in range(3)]
    for path, seed in zip(paths, (1, 1, 2), strict=True):
        write_export_zip(path, generate_events(400, seed=seed))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    assert list(generate_events(50, seed=5)) == list(generate_events(50, seed=5))


def test_member_names_and_hours(sample_members: dict[str, list[Event]]) -> None:
    assert len(sample_members) >= 20
    hours = set()
    for name, member in sample_members.items():
        match = EXPORT_MEMBER.search(name)
        assert match and name.startswith(f"{match[1]}/"), name
        assert match[3] == str(int(match[3]))  # not zero-padded
        hours.add(int(match[3]))
        for ev in member:  # grouped by the hour of server_upload_time
            assert ev["server_upload_time"][:13] == f"{match[2]} {int(match[3]):02d}"
            assert ev["app"] == int(match[1])
    assert {9, 10} <= hours  # both `_9#` and `_10#`
    assert len({int(EXPORT_MEMBER.search(n)[4]) for n in sample_members}) > 1  # type: ignore[index]


def test_uuid_duplicated_across_members(sample_members: dict[str, list[Event]]) -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for name, member in sample_members.items():
        for ev in member:
            if ev.get("uuid"):
                where[ev["uuid"]].append(name)
    assert any(len(set(names)) > 1 for names in where.values())
    assert any(len(names) > len(set(names)) for names in where.values())  # and within one


def test_forced_member_count(tmp_path: Path) -> None:
    for members in (1, 6, 40):
        names = write_export_zip(tmp_path / "m.zip", generate_events(600, seed=4), members=members)
        got = read_zip(tmp_path / "m.zip")
        assert list(got) == names and len(names) == members == len(set(names))
        assert sum(map(len, got.values())) == 600
        assert all(EXPORT_MEMBER.search(n) for n in names)


def test_empty_zip_and_raw_lines(tmp_path: Path) -> None:
    assert write_export_zip(tmp_path / "empty.zip", []) == []
    assert zipfile.ZipFile(tmp_path / "empty.zip").namelist() == []
    ev = next(generate_events(1, seed=1))
    write_export_zip(tmp_path / "raw.zip", [ev, "{not json", b'{"x": 1}\n'])
    with zipfile.ZipFile(tmp_path / "raw.zip") as zf:
        (name,) = zf.namelist()
        lines = gzip.decompress(zf.read(name)).splitlines()
    assert lines[1:] == [b"{not json", b'{"x": 1}'] and orjson.loads(lines[0]) == ev


def test_s3_layout_and_ndjson_gz(tmp_path: Path) -> None:
    evs = list(generate_events(300, seed=2))
    files = write_s3_layout(tmp_path / "s3", evs)
    assert files and all(
        f.parent == tmp_path / "s3" and EXPORT_MEMBER.search(f.name) for f in files
    )
    assert sum(len(gzip.decompress(f.read_bytes()).splitlines()) for f in files) == 300
    assert write_ndjson_gz(tmp_path / "one.json.gz", evs) == 300
    lines = gzip.decompress((tmp_path / "one.json.gz").read_bytes()).splitlines()
    assert [orjson.loads(line) for line in lines] == evs


@pytest.mark.parametrize("edge_cases", [False, True])
def test_event_bytes(edge_cases: bool) -> None:
    target = 2048
    sizes = [len(orjson.dumps(e)) + 1 for e in generate_events(500, seed=6, event_bytes=target, edge_cases=edge_cases)]  # fmt: skip
    within = [0.8 * target <= s <= 1.2 * target for s in sizes]
    assert all(within) if not edge_cases else sum(within) / len(within) > 0.95
    assert abs(sorted(sizes)[len(sizes) // 2] - target) < 0.05 * target


def test_committed_sample_matches_documented_command(tmp_path: Path, sample_members: dict[str, list[Event]]) -> None:  # fmt: skip
    assert SAMPLE.stat().st_size < 1_000_000
    (command,) = re.findall(
        r"^python -m accoil_transform\.testing\.synthetic .*$", README.read_text(), re.M
    )
    argv = shlex.split(command)[3:]
    out = argv.index("--out") + 1
    assert Path(argv[out]) == SAMPLE.relative_to(ROOT)
    argv[out] = str(tmp_path / "fresh.zip")
    assert main(argv) == 0
    fresh_malformed: list[bytes] = []
    fresh = read_zip(tmp_path / "fresh.zip", fresh_malformed)
    assert list(fresh) == list(sample_members)
    assert fresh == sample_members, "sample_data is stale: re-run the command in its README"
    assert fresh_malformed == SAMPLE_MALFORMED
    assert 1500 <= sum(map(len, fresh.values())) <= 3000


# ----------------------------------------------------------------------- warehouse


@pytest.mark.parametrize(
    ("style", "insert_id", "time_dtype"),
    [
        ("snowflake", "INSERT_ID", pl.Datetime("us")),
        ("bigquery", "insert_id", pl.Datetime("us", "UTC")),
        ("fivetran", "_insert_id", pl.String),
        ("airbyte", "$insert_id", pl.String),
    ],
)
def test_warehouse_frames(style: str, insert_id: str, time_dtype: pl.DataType) -> None:
    evs = list(generate_events(300, seed=8))
    df = to_warehouse_frame(evs, style=style)  # type: ignore[arg-type]
    upper = style == "snowflake"
    col = (lambda c: c.upper()) if upper else (lambda c: c)
    assert df.height == 300
    assert (
        insert_id in df.columns and col("event_type") in df.columns and col("user_id") in df.columns
    )
    assert (
        all(c == c.upper() for c in df.columns)
        if upper
        else all(c == c.lower() for c in df.columns)
    )
    for nested in ("event_properties", "user_properties", "groups", "group_properties", "data"):
        assert df.schema[col(nested)] == pl.String
    assert df.schema[col("event_time")] == time_dtype
    assert df.schema[col("amplitude_id")] == pl.Int64
    times = df[col("server_upload_time")]
    if style == "fivetran":
        assert times.str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$").all()
    elif style == "airbyte":
        assert times.str.ends_with("+00:00").all() and times.str.contains("T").all()
    # JSON text round-trips (absent and null both become null)
    groups = [None if g is None else orjson.loads(g) for g in df[col("groups")]]
    assert groups == [e.get("groups") for e in evs]
    # a +02:00 event_time is converted to UTC
    i = next(k for k, e in enumerate(evs) if e["event_time"].endswith("+02:00"))
    expected = utc(evs[i]["event_time"]).replace(tzinfo=None)
    value = df[col("event_time")][i]
    if style == "fivetran":
        assert value == expected.isoformat(timespec="milliseconds")
    elif style == "airbyte":
        assert value == expected.isoformat(timespec="microseconds") + "+00:00"
    else:
        assert value.replace(tzinfo=None) == expected
