"""Property-based tests: the vectorised transform agrees with the plain-Python reference.

Events are generated export-shaped, written as NDJSON files, read with
``at.read_events`` and transformed; ``tests/rules/reference.py`` computes what SPEC §2–5 says
the result must be. Each test focuses on one area, so that a bug in one area does not
hide the others; the last one mixes everything.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

import accoil_transform as at
from tests.rules.reference import PLACEHOLDER_USER_IDS, reference_transform, typed

MISSING = object()
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
#: For the known-bug tests: stop at the first failure without shrinking (shrinking several
#: distinct failures takes minutes; the other modules of tests/rules hold the minimal
#: examples).
BUG_SETTINGS = {
    **SETTINGS,
    "max_examples": 100,
    "phases": [Phase.explicit, Phase.generate],
    "report_multiple_bugs": False,
}

# --------------------------------------------------------------------------- strategies

EVENT_TYPES = [
    "Page Viewed",
    "Doc Opened",
    "page viewed",
    "Ünïcode 🚀",
    "$identify",
    "$groupidentify",
]
REAL_IDS = ["alice", "Bob", "10", "9", "007", "ünï", "🚀user", "NULLABLE", "none1", "0.0", "-10"]
CASES = st.sampled_from([str, str.upper, str.lower, str.title, str.swapcase])
SAFE_WS = ["", " ", "  ", "\u00a0", " \u3000"]
FULL_WS = [*SAFE_WS, "\t", "\n", "\r\n"]
PROP_NAMES = ["plan", "name", "ü", "🚀 key", "nested", "group_type", "domain", "x y"]
PROP_KEYS = st.sampled_from(PROP_NAMES)
SAFE_TYPES = [
    "Account",
    "org name",
    "[Segment] Group",
    "ü型",
    "🚀",
    "a'b",
    "a.b",
    "group_type",
    "$",
]
FULL_TYPES = [*SAFE_TYPES, 'q"t', "back\\slash"]
SAFE_GROUP_IDS = ["210000", "10", "9", "007", "", "ü", "🚀", "a b", "Z", "a'b", "[x]", "Ω"]
FULL_GROUP_IDS = [*SAFE_GROUP_IDS, 'i"d', "x\\y", "tab\tid"]
SAFE_SPECIAL_TEXT = ["", "ü", "🚀", 'say "hi"', "line\nbreak", "שלום", "group_type", "\u2028"]
FULL_SPECIAL_TEXT = [*SAFE_SPECIAL_TEXT, "a\\b", "C:\\new", "tab\t", "bell\u0007", "\\u0041"]


@dataclass(frozen=True)
class Gen:
    """Which values the event strategies may produce."""

    full_text: bool = False  # trigger 1
    full_numbers: bool = False  # trigger 2
    nested_prop_keys: bool = False  # trigger 3
    rich_values: bool = True  # every JSON type in properties/traits (else a few scalars)

    @property
    def nested_ws(self) -> st.SearchStrategy[str]:
        return st.sampled_from(FULL_WS if self.full_text else SAFE_WS)

    @property
    def group_types(self) -> list[str]:
        return FULL_TYPES if self.full_text else SAFE_TYPES

    @property
    def group_ids(self) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.sampled_from(FULL_GROUP_IDS if self.full_text else SAFE_GROUP_IDS),
            st.sampled_from([0, 9, 10, -3, 2**53 + 1, 2**63 - 1]),
        )

    @property
    def json_values(self) -> st.SearchStrategy[Any]:
        if not self.rich_values:
            return st.sampled_from(["v", 1, 2.5, True, None, [1], {"inner": 1}])
        chars = st.characters(
            codec="utf-8",
            exclude_categories=("Cs",) if self.full_text else ("Cs", "Cc"),
            exclude_characters="" if self.full_text else "\\",
        )
        special = FULL_SPECIAL_TEXT if self.full_text else SAFE_SPECIAL_TEXT
        text = st.text(alphabet=chars, max_size=8) | st.sampled_from(special)
        if self.full_numbers:
            numbers = st.integers(-(2**70), 2**70) | st.floats(
                allow_nan=False, allow_infinity=False
            )
        else:
            numbers = (
                st.integers(-(2**63), 2**63 - 1)
                | st.integers(-(10**6), 10**6).map(lambda i: i / 64)
                | st.sampled_from([0.1, 1e20, 1.5e300, -2.5e-10])
            )
        scalars = st.none() | st.booleans() | numbers | text
        keys = PROP_KEYS if self.nested_prop_keys else st.sampled_from(["inner", "deep", "ключ"])
        return st.recursive(
            scalars,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
            max_leaves=6,
        )


MAIN = Gen(full_text=True, full_numbers=True, nested_prop_keys=True)


@st.composite
def placeholder_ids(draw: st.DrawFn, ws: st.SearchStrategy[str]) -> str:
    base = draw(st.sampled_from(sorted(PLACEHOLDER_USER_IDS)))
    return draw(ws) + draw(CASES)(base) + draw(ws)


@st.composite
def real_ids(draw: st.DrawFn, ws: st.SearchStrategy[str]) -> str:
    return draw(ws) + draw(st.sampled_from(REAL_IDS)) + draw(ws)


def user_ids(ws: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Real and placeholder ids with whitespace and case, nulls and numbers."""
    return st.one_of(
        real_ids(ws), placeholder_ids(ws), st.none(), st.sampled_from([0, -1, 7, 10, 42, 2**40])
    )


#: The top-level user_id column: full whitespace is safe there (not nested JSON).
TOP_USER_IDS = user_ids(st.sampled_from(FULL_WS))

BASE_TIMES = [
    datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC),
    datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
    datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]
OFFSETS = [None, "Z", "+00:00", "+05:30", "-08:00", "+14:00", "-12:00"]


@st.composite
def time_strings(draw: st.DrawFn) -> str:
    """A SPEC §1 time string: space or T, 0/3/6 digits, no zone, Z or an offset.

    Few base instants, so that equal event times (ties) in different formats are common.
    """
    base = draw(st.sampled_from(BASE_TIMES))
    base += timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 999, 1000, 123456])))
    zone = draw(st.sampled_from(OFFSETS))
    sep = draw(st.sampled_from([" ", "T"]))
    digits = draw(st.sampled_from([0, 3, 6]))
    if zone in (None, "Z"):
        local, suffix = base, zone or ""
    else:
        sign = 1 if zone[0] == "+" else -1
        delta = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        local, suffix = base + delta, zone
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    return text + suffix


BAD_TIMES = st.sampled_from(
    ["", "yesterday", "2024-13-01 00:00:00", "2024-01-01", "01/02/2024 10:00"]
)
BAD_LINES = st.sampled_from(
    ["not json", "[1, 2]", "42", '"text"', '{"event_type": "Doc', "null", "{,}"]
)


def _id_key(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


@st.composite
def group_fields(draw: st.DrawFn, gen: Gen) -> dict[str, Any]:
    """``groups`` and ``group_properties`` in all the shapes SPEC §4 talks about:
    missing/null/{}; lists, scalars, numbers and nulls as ids; several types; ids missing
    from ``group_properties``; traits of every JSON type, some with a ``group_type`` key."""
    out: dict[str, Any] = {}
    # Odd ids (an object or a list inside a list) are not candidates, and are counted.
    id_or_null = gen.group_ids | st.none() | st.sampled_from([{"a": 1}, [1]])
    types = draw(st.lists(st.sampled_from(gen.group_types), max_size=3, unique=True))
    groups: dict[str, Any] = {}
    for t in types:
        if draw(st.booleans()):
            groups[t] = draw(st.lists(id_or_null, max_size=4))
        else:
            groups[t] = draw(id_or_null)
    groups_choice = draw(
        st.sampled_from(["dict", "dict", "dict", "missing", "null", "empty", "odd", "text"])
    )
    if groups_choice == "dict":
        out["groups"] = groups
    elif groups_choice == "odd":  # not an object: no group, counted
        out["groups"] = draw(st.sampled_from([5, [1, "2"], "text", '["1"]', True]))
    elif groups_choice == "text":  # JSON text of an object, as warehouse extracts write it
        out["groups"] = json.dumps(groups, indent=draw(st.sampled_from([None, 2])))
    elif groups_choice == "null":
        out["groups"] = None
    elif groups_choice == "empty":
        out["groups"] = {}

    traits = st.dictionaries(PROP_KEYS, gen.json_values, max_size=4)
    props: dict[str, Any] = {}
    for t, value in groups.items():
        if not draw(st.booleans()) and t != "Account":
            continue  # type missing from group_properties
        ids = value if isinstance(value, list) else [value]
        entry: dict[str, Any] = {}
        for i in ids:
            key = _id_key(i)
            if key is not None and draw(st.booleans()):
                entry[key] = draw(traits)
        if draw(st.booleans()):
            entry[draw(st.sampled_from(["other", "11"]))] = draw(traits)
        props[t] = entry
    if draw(st.booleans()):
        props["Unused Type"] = {"1": {"name": "unused"}}
    gp_choice = draw(st.sampled_from(["dict", "dict", "dict", "missing", "null", "empty"]))
    if gp_choice == "dict":
        out["group_properties"] = props
    elif gp_choice == "null":
        out["group_properties"] = None
    elif gp_choice == "empty":
        out["group_properties"] = {}
    return out


@st.composite
def prop_container(draw: st.DrawFn, id_key: str, gen: Gen) -> Any:
    """event_properties / user_properties: missing, null, {} or an object.

    ``id_key`` (``email`` / ``x``) can be the user-id source, so it holds id-like values.
    """
    choice = draw(st.sampled_from(["dict", "dict", "dict", "missing", "null", "empty"]))
    if choice == "missing":
        return MISSING
    if choice == "null":
        return None
    if choice == "empty":
        return {}
    out = dict(draw(st.dictionaries(PROP_KEYS, gen.json_values, max_size=4)))
    if draw(st.booleans()):
        out[id_key] = draw(user_ids(gen.nested_ws))
    return out


@st.composite
def events(
    draw: st.DrawFn,
    *,
    gen: Gen = MAIN,
    with_groups: bool = False,
    with_props: bool = False,
    malformed: bool = True,
) -> dict[str, Any] | str:
    """One export-shaped event (or, rarely, a raw malformed line)."""
    if malformed and draw(st.integers(0, 14)) == 0:
        return draw(BAD_LINES)
    ev: dict[str, Any] = {}
    uuid = draw(st.sampled_from([MISSING, None, "", "u1", "u2", "u3", "u4", "u5", "u6"]))
    if uuid is not MISSING:
        ev["uuid"] = uuid
    insert_id = draw(st.sampled_from([MISSING, None, "i1", "i2", "i3"]))
    if insert_id is not MISSING:
        ev["$insert_id"] = insert_id
    ev["device_id"] = draw(st.sampled_from([None, "d1", "d2"]))
    uid = draw(TOP_USER_IDS | st.just(MISSING))
    if uid is not MISSING:
        ev["user_id"] = uid
    et_choice = draw(st.integers(0, 30)) if malformed else 2
    if et_choice == 0:
        pass  # no event_type: malformed
    elif et_choice == 1:
        ev["event_type"] = None
    else:
        ev["event_type"] = draw(st.sampled_from(EVENT_TYPES))
    if malformed and draw(st.integers(0, 25)) == 0:
        bad = draw(BAD_TIMES | st.none() | st.just(MISSING))
        if bad is not MISSING:
            ev["event_time"] = bad
    else:
        ev["event_time"] = draw(time_strings())
    for name, id_key in (("event_properties", "x"), ("user_properties", "email")):
        if with_props:
            value = draw(prop_container(id_key, gen))
        else:
            value = draw(st.sampled_from([MISSING, {}, {id_key: "carol"}, {id_key: " 0 "}]))
        if value is not MISSING:
            ev[name] = value
    if with_groups:
        ev.update(draw(group_fields(gen)))
    return ev


@st.composite
def configs(draw: st.DrawFn, *, with_props: bool = False) -> dict[str, Any]:
    kinds = sorted(set(EVENT_TYPES))
    include = (
        draw(st.lists(st.sampled_from(kinds), max_size=3, unique=True))
        if draw(st.booleans())
        else []
    )
    exclude = draw(
        st.lists(st.sampled_from([k for k in kinds if k not in include]), max_size=2, unique=True)
    )
    cfg: dict[str, Any] = {
        "user_id": draw(
            st.sampled_from(["user_id", "user_id", "user_properties.email", "event_properties.x"])
        ),
        "include_events": tuple(include),
        "exclude_events": tuple(exclude),
        "event_rename": draw(
            st.sampled_from([{}, {"Page Viewed": "page_viewed", "Ünïcode 🚀": "ü"}])
        ),
        "user_traits": draw(st.sampled_from([None, None, ("email", "name")])),
        "exclude_user_traits": draw(st.sampled_from([(), (), ("email",)])),
        "properties": (),
    }
    if with_props:
        # Bare output names are unique: plan, nested, name, ü, x, email.
        pool = ["plan", "event_properties.nested", "user_properties.name", "ü", "x", "email"]
        cfg["properties"] = tuple(draw(st.lists(st.sampled_from(pool), max_size=4, unique=True)))
        cfg["user_traits"] = draw(
            st.sampled_from([None, ("email", "name"), ("email",), (), ("name", "🚀 key")])
        )
    return cfg


@st.composite
def input_files(draw: st.DrawFn, **event_kw: Any) -> list[list[dict[str, Any] | str]]:
    """One or two NDJSON files of 1–10 lines; each has at least one JSON object line
    (a file with no JSON object at all is rejected as not NDJSON, by design)."""
    files = []
    for _ in range(draw(st.integers(1, 2))):
        lines = list(draw(st.lists(events(**event_kw), min_size=1, max_size=10)))
        if all(isinstance(line, str) for line in lines):
            lines.append(draw(events(**{**event_kw, "malformed": False})))
        files.append(lines)
    return files


# --------------------------------------------------------------------------- harness


def _user_id_column_anywhere(files: list[list[dict[str, Any] | str]], config: Any) -> bool:
    """Whether some parseable line has the top-level user id column (any letter case)."""
    column = config.user_id_column
    if column is None:
        return True
    for lines in files:
        for line in lines:
            try:
                obj = json.loads(line) if isinstance(line, str) else line
            except ValueError:
                continue
            if isinstance(obj, dict) and any(k.lower() == column.lower() for k in obj):
                return True
    return False


def run_both(
    files: list[list[dict[str, Any] | str]], cfg: dict[str, Any], *, ascii_json: bool = True
) -> tuple[at.TransformResult, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n, lines in enumerate(files):
            path = Path(tmp) / f"part{n}.jsonl"
            with open(path, "w", encoding="utf-8") as fh:
                for line in lines:
                    text = (
                        line if isinstance(line, str) else json.dumps(line, ensure_ascii=ascii_json)
                    )
                    fh.write(text + "\n")
            paths.append(path)
        config = at.TransformConfig(**cfg)
        if not _user_id_column_anywhere(files, config):
            # A column that no row has is a wrong --user-id, not a file of anonymous events.
            with pytest.raises(at.InputError, match="no row has the column"):
                list(at.read_events(paths, config))
            reject()  # checked: the error is the result; nothing to compare
        result = at.transform(list(at.read_events(paths, config)), config)
    ref = reference_transform([line for lines in files for line in lines], **cfg)
    return result, ref


def assert_report(result: at.TransformResult, ref: Any) -> None:
    report = result.report.to_dict()
    assert report["rows_read"] == ref.rows_read
    placed = report["kept"] + report["trait_rows"] + sum(report["dropped"].values())
    assert report["rows_read"] == placed
    assert report["dropped"] == ref.dropped
    assert report["kept"] == ref.kept
    assert report["trait_rows"] == ref.trait_rows
    assert report["odd_values"] == ref.odd_values
    assert report["calls"]["track"] == result.tracks.height == ref.kept


def impl_tracks(result: at.TransformResult) -> dict[int, dict[str, Any]]:
    out = {}
    for r in result.tracks.iter_rows(named=True):
        out[r["_row"]] = {
            "userId": r["userId"],
            "event": r["event"],
            "timestamp": r["timestamp"],
            "properties": typed(json.loads(r["properties"])),
            "groupTraits": typed(json.loads(r["groupTraits"])),
        }
    return out


def ref_tracks(ref: Any) -> dict[int, dict[str, Any]]:
    return {
        t["row"]: {
            "userId": t["userId"],
            "event": t["event"],
            "timestamp": t["timestamp"],
            "properties": typed(t["properties"]),
            "groupTraits": typed(t["groupTraits"]),
        }
        for t in ref.tracks
    }


def assert_tracks(result: at.TransformResult, ref: Any) -> None:
    got, want = impl_tracks(result), ref_tracks(ref)
    assert sorted(got) == sorted(want)
    for row in want:
        assert got[row] == want[row], f"row {row}: got {got[row]!r}, want {want[row]!r}"


def assert_identifies(result: at.TransformResult, ref: Any) -> None:
    got = {
        r["userId"]: (typed(json.loads(r["traits"])), r["timestamp"])
        for r in result.identifies.iter_rows(named=True)
    }
    assert result.identifies.height == len(got), "one identify per distinct userId"
    want = {u: (typed(v["traits"]), v["timestamp"]) for u, v in ref.identifies.items()}
    assert got == want, f"identifies: got {got!r}, want {want!r}"


def assert_groups(result: at.TransformResult, ref: Any) -> None:
    rows = list(result.groups.iter_rows(named=True))
    got = {
        (r["userId"], r["groupId"]): (typed(json.loads(r["traits"])), r["timestamp"])
        for r in rows
        if r["userId"] is not None
    }
    accounts = {
        (r["groupType"], r["groupId"]): (typed(json.loads(r["traits"])), r["timestamp"])
        for r in rows
        if r["userId"] is None
    }
    assert len(rows) == len(got) + len(accounts), "one group record per pair or account"
    want = {p: (typed(v["traits"]), v["timestamp"]) for p, v in ref.groups.items()}
    assert got == want, f"groups: got {got!r}, want {want!r}"
    want = {g: (typed(v["traits"]), v["timestamp"]) for g, v in ref.account_groups.items()}
    assert accounts == want, f"account-only groups: got {accounts!r}, want {want!r}"


# --------------------------------------------------------------------------- properties


@settings(max_examples=150, **SETTINGS)
@given(files=input_files(), cfg=configs())
def test_selection_and_drop_reasons_match_reference(files, cfg):
    """Placeholders, dedup (uuid, then insert_id+device_id), identify calls, include/exclude,
    malformed lines and reason precedence; timestamps in every input format."""
    result, ref = run_both(files, cfg)
    assert_report(result, ref)
    assert_tracks(result, ref)


@settings(max_examples=100, **SETTINGS)
@given(
    files=input_files(gen=Gen(rich_values=False), with_groups=True, malformed=False),
    cfg=configs(),
    ascii_json=st.booleans(),
)
def test_group_selection_matches_reference(files, cfg, ascii_json):
    """Group candidates, primary group order and group records, with simple trait values."""
    result, ref = run_both(files, cfg, ascii_json=ascii_json)
    assert_report(result, ref)
    assert_tracks(result, ref)
    assert_groups(result, ref)


@settings(max_examples=60, **SETTINGS)
@given(
    files=input_files(with_groups=True, malformed=False),
    cfg=configs(),
    ascii_json=st.booleans(),
)
def test_group_trait_values_keep_json_types(files, cfg, ascii_json):
    """Trait values of every JSON type (nested, unicode, a group_type key) survive as-is."""
    result, ref = run_both(files, cfg, ascii_json=ascii_json)
    assert_tracks(result, ref)
    assert_groups(result, ref)


@settings(max_examples=100, **SETTINGS)
@given(
    files=input_files(gen=Gen(rich_values=False), with_props=True, malformed=False),
    cfg=configs(with_props=True),
)
def test_properties_and_identifies_match_reference(files, cfg):
    """Property lookup order, qualified names, and identify = the user's latest event."""
    result, ref = run_both(files, cfg)
    assert_report(result, ref)
    assert_tracks(result, ref)
    assert_identifies(result, ref)


@settings(max_examples=60, **SETTINGS)
@given(
    files=input_files(with_props=True, with_groups=True),
    cfg=configs(with_props=True),
    ascii_json=st.booleans(),
)
def test_everything_matches_reference(files, cfg, ascii_json):
    """All rules at once, with property and trait values of every JSON type."""
    result, ref = run_both(files, cfg, ascii_json=ascii_json)
    assert_report(result, ref)
    assert_tracks(result, ref)
    assert_identifies(result, ref)
    assert_groups(result, ref)


# --------------------------------------------------------------------------- hard inputs
# Focused generators for inputs that once broke the reader (escapes, numbers, nested keys).


def _compare_all(files, cfg, ascii_json=True):
    result, ref = run_both(files, cfg, ascii_json=ascii_json)
    assert_report(result, ref)
    assert_tracks(result, ref)
    assert_identifies(result, ref)
    assert_groups(result, ref)


FULL_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",))
ESCAPE_TEXT = st.text(alphabet=FULL_CHARS, max_size=6) | st.sampled_from(FULL_SPECIAL_TEXT)


@st.composite
def escape_events(draw: st.DrawFn) -> dict[str, Any]:
    """Nested strings with backslashes/control characters; group types/ids with quotes."""
    gtype = draw(st.sampled_from(FULL_TYPES))
    gid = draw(st.sampled_from(FULL_GROUP_IDS))
    return {
        "user_id": draw(st.sampled_from(["alice", "bob"])),
        "event_type": "Doc Opened",
        "event_time": draw(time_strings()),
        "event_properties": {"plan": draw(ESCAPE_TEXT), "ü": draw(ESCAPE_TEXT)},
        "user_properties": {
            "email": draw(st.sampled_from(FULL_WS)) + "a@x.com" + draw(st.sampled_from(FULL_WS)),
            "name": draw(ESCAPE_TEXT),
        },
        "groups": {gtype: [gid]},
        "group_properties": {gtype: {gid: {"name": draw(ESCAPE_TEXT), "domain": "d"}}},
    }


NUMBERS = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def number_events(draw: st.DrawFn) -> dict[str, Any]:
    """Numbers of any size and precision in properties and traits."""
    return {
        "user_id": draw(st.sampled_from(["alice", "bob"])),
        "event_type": "Doc Opened",
        "event_time": draw(time_strings()),
        "event_properties": {"plan": draw(NUMBERS), "ü": [draw(NUMBERS)]},
        "user_properties": {"name": draw(NUMBERS)},
        "groups": {"Account": ["1"]},
        "group_properties": {"Account": {"1": {"seats": draw(NUMBERS), "name": "Acme"}}},
    }


@settings(**BUG_SETTINGS)
@given(
    files=st.lists(escape_events(), min_size=1, max_size=3).map(lambda lines: [lines]),
    user_id=st.sampled_from(["user_id", "user_properties.email"]),
    ascii_json=st.booleans(),
)
def test_nested_strings_with_escapes_survive(files, user_id, ascii_json):
    """Trigger 1: backslashes/control characters in nested strings, quotes in nested keys."""
    cfg = {"user_id": user_id, "properties": ("plan", "ü", "name")}
    _compare_all(files, cfg, ascii_json)


@settings(**BUG_SETTINGS)
@given(files=st.lists(number_events(), min_size=1, max_size=3).map(lambda lines: [lines]))
def test_nested_numbers_keep_their_value(files):
    """Trigger 2: any float or integer in properties and traits keeps its exact value."""
    _compare_all(files, {"properties": ("plan", "ü")})


SCALAR_VALUES = st.sampled_from(["5", 5, None, True, "x", 1.5, "null", "true"])


@st.composite
def nested_name_events(draw: st.DrawFn) -> dict[str, Any]:
    """Events whose properties hold a nested object reusing the configured names."""
    names = ["plan", "name", "ü"]

    def container() -> dict[str, Any]:
        top = draw(st.dictionaries(st.sampled_from(names), SCALAR_VALUES, max_size=2))
        inner = draw(st.dictionaries(st.sampled_from(names), SCALAR_VALUES, min_size=1, max_size=3))
        return {**top, "wrapper": inner}

    return {
        "user_id": "alice",
        "event_type": "Doc Opened",
        "event_time": draw(time_strings()),
        "event_properties": container(),
        "user_properties": container(),
    }


@settings(**BUG_SETTINGS)
@given(files=st.lists(nested_name_events(), min_size=1, max_size=4).map(lambda lines: [lines]))
def test_property_lookup_reads_only_top_level_keys(files):
    """Trigger 3: a nested object that reuses a property name must not affect the lookup."""
    cfg = {"properties": ("plan", "user_properties.ü"), "user_traits": ("name",)}
    _compare_all(files, cfg)
