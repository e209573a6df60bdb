"""One focused example per rule of docs/rules.md §2-6, through the realistic path:
NDJSON files → ``at.read_events`` → ``at.transform`` → ``at.build_calls``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

import accoil_transform as at
from accoil_transform.calls import with_body_api_key

T0 = "2024-05-01 10:00:00.000000"


def ev(**fields: Any) -> dict[str, Any]:
    """An export-shaped event with the required fields filled in."""
    base: dict[str, Any] = {"event_type": "Doc Opened", "event_time": T0, "user_id": "alice"}
    base.update(fields)
    return base


def write_ndjson(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(
                (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n"
            )
    return path


def run(tmp_path: Path, *files: list[dict[str, Any] | str], **config: Any) -> at.TransformResult:
    """Write each list of lines as one NDJSON file and transform them in order."""
    paths = [write_ndjson(tmp_path / f"part{i}.jsonl", lines) for i, lines in enumerate(files)]
    cfg = at.TransformConfig(**config)
    return at.transform(list(at.read_events(paths, cfg)), cfg)


def dropped(res: at.TransformResult) -> dict[str, int]:
    return {k: v for k, v in res.report.to_dict()["dropped"].items() if v}


def tracks(res: at.TransformResult) -> list[dict[str, Any]]:
    """Track records in input order, JSON columns parsed."""
    out = []
    for r in res.tracks.sort("_row").iter_rows(named=True):
        out.append(
            {
                "userId": r["userId"],
                "event": r["event"],
                "timestamp": r["timestamp"],
                "properties": json.loads(r["properties"]),
                "groupTraits": json.loads(r["groupTraits"]),
            }
        )
    return out


def group_traits(res: at.TransformResult) -> list[Any]:
    return [t["groupTraits"] for t in tracks(res)]


def one_group_traits(tmp_path: Path, **fields: Any) -> Any:
    res = run(tmp_path, [ev(**fields)])
    assert res.report.kept == 1
    return group_traits(res)[0]


def identifies(res: at.TransformResult) -> dict[str, dict[str, Any]]:
    return {
        r["userId"]: {"traits": json.loads(r["traits"]), "timestamp": r["timestamp"]}
        for r in res.identifies.iter_rows(named=True)
    }


def group_records(res: at.TransformResult) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["userId"], r["groupId"]): {
            "traits": json.loads(r["traits"]),
            "timestamp": r["timestamp"],
        }
        for r in res.groups.iter_rows(named=True)
    }


def assert_balanced(res: at.TransformResult) -> None:
    rep = res.report.to_dict()
    assert rep["rows_read"] == rep["kept"] + rep["trait_rows"] + sum(rep["dropped"].values())


# =========================================================================== §2 selection

PLACEHOLDERS = [
    "",
    "null",
    "none",
    "nil",
    "undefined",
    "anonymous",
    "0",
    "-1",
    "00000000-0000-0000-0000-000000000000",
]


@pytest.mark.parametrize("base", PLACEHOLDERS)
def test_every_placeholder_user_id_is_no_user_id_in_any_case_and_padding(tmp_path, base):
    variants = [base, base.upper(), base.title(), f"  {base}  ", f"\t{base.upper()}\n"]
    res = run(tmp_path, [ev(user_id=v, uuid=f"u{i}") for i, v in enumerate(variants)])
    assert dropped(res) == {"no_user_id": len(variants)}
    assert res.tracks.height == 0


def test_null_or_absent_user_id_is_no_user_id(tmp_path):
    absent = ev()
    del absent["user_id"]
    res = run(tmp_path, [ev(user_id=None), absent, ev(user_id="bob")])
    assert dropped(res) == {"no_user_id": 2}
    assert [t["userId"] for t in tracks(res)] == ["bob"]


def test_ids_that_merely_resemble_placeholders_are_kept(tmp_path):
    ids = ["none1", "0.0", "00", "-10", "nullable", "anonymous user", "00000000"]
    res = run(tmp_path, [ev(user_id=i) for i in ids])
    assert dropped(res) == {}
    assert [t["userId"] for t in tracks(res)] == ids


def test_user_id_is_trimmed(tmp_path):
    res = run(tmp_path, [ev(user_id="  alice \t"), ev(user_id="\u00a0bob\u3000")])
    assert [t["userId"] for t in tracks(res)] == ["alice", "bob"]


def test_numeric_user_id_is_sent_as_decimal_string(tmp_path):
    res = run(tmp_path, [ev(user_id=42), ev(user_id=10), ev(user_id=0), ev(user_id=-1)])
    assert [t["userId"] for t in tracks(res)] == ["42", "10"]
    assert dropped(res) == {"no_user_id": 2}


def test_user_id_from_user_properties_email(tmp_path):
    lines = [
        ev(user_id="ignored", user_properties={"email": "  a@x.com "}),
        ev(user_id="ignored", user_properties={"email": "NULL"}),
        ev(user_id="ignored", user_properties={"name": "no email"}),
        ev(user_id="ignored", user_properties=None),
        ev(user_id=None, user_properties={"email": 1234}),
    ]
    res = run(tmp_path, lines, user_id="user_properties.email")
    assert [t["userId"] for t in tracks(res)] == ["a@x.com", "1234"]
    assert dropped(res) == {"no_user_id": 3}


def test_user_id_from_event_properties(tmp_path):
    lines = [
        ev(user_id="ignored", event_properties={"x": " acct-7 "}),
        ev(user_id="ignored", event_properties={"x": 7}),
        ev(user_id="ignored", event_properties={"x": "anonymous"}),
        ev(user_id="ignored", event_properties={}),
        ev(user_id="ignored"),
    ]
    res = run(tmp_path, lines, user_id="event_properties.x")
    assert [t["userId"] for t in tracks(res)] == ["acct-7", "7"]
    assert dropped(res) == {"no_user_id": 3}


def test_all_event_types_kept_by_default(tmp_path):
    res = run(
        tmp_path, [ev(event_type=t) for t in ["A", "B", "Ünïcode 🚀", "[Amplitude] Page Viewed"]]
    )
    assert res.report.kept == 4 and dropped(res) == {}


def test_include_events_keeps_only_listed_types(tmp_path):
    res = run(tmp_path, [ev(event_type=t) for t in ["A", "B", "a", "C"]], include_events=("A", "C"))
    assert [t["event"] for t in tracks(res)] == ["A", "C"]
    assert dropped(res) == {"event_type": 2}


def test_exclude_events_drops_listed_types(tmp_path):
    res = run(tmp_path, [ev(event_type=t) for t in ["A", "B", "b", "C"]], exclude_events=("B",))
    assert [t["event"] for t in tracks(res)] == ["A", "b", "C"]
    assert dropped(res) == {"event_type": 1}


def test_include_and_exclude_lists_together(tmp_path):
    res = run(
        tmp_path,
        [ev(event_type=t) for t in ["A", "B", "C", "D"]],
        include_events=("A", "B"),
        exclude_events=("C",),
    )
    assert [t["event"] for t in tracks(res)] == ["A", "B"]
    assert dropped(res) == {"event_type": 2}


def test_duplicate_uuid_first_occurrence_kept_across_two_files(tmp_path):
    first = [ev(uuid="u1", user_id="first"), ev(uuid="u2", user_id="other")]
    second = [
        ev(uuid="u1", user_id="second"),
        ev(uuid="u3", user_id="third"),
        ev(uuid="u1", user_id="again"),
    ]
    res = run(tmp_path, first, second)
    assert [t["userId"] for t in tracks(res)] == ["first", "other", "third"]
    assert dropped(res) == {"duplicate": 2}


def test_duplicate_by_insert_id_and_device_id_when_uuid_missing(tmp_path):
    lines = [
        ev(user_id="a", **{"$insert_id": "i1", "device_id": "d1"}),
        ev(user_id="b", **{"$insert_id": "i1", "device_id": "d1"}),  # duplicate
        ev(user_id="c", **{"$insert_id": "i1", "device_id": "d2"}),  # other device: kept
        ev(user_id="d", **{"$insert_id": "i2", "device_id": "d1"}),  # other insert id: kept
        ev(user_id="e", uuid="u9", **{"$insert_id": "i1", "device_id": "d1"}),  # has uuid: kept
        ev(
            user_id="f", uuid=None, **{"$insert_id": "i2", "device_id": "d1"}
        ),  # null uuid: duplicate
    ]
    res = run(tmp_path, lines)
    assert [t["userId"] for t in tracks(res)] == ["a", "c", "d", "e"]
    assert dropped(res) == {"duplicate": 2}


def test_rows_without_uuid_or_insert_id_are_never_duplicates(tmp_path):
    res = run(tmp_path, [ev(), ev(), ev(device_id="d1"), ev(device_id="d1")])
    assert res.report.kept == 4 and dropped(res) == {}


@pytest.mark.parametrize("spelling", ["insert_id", "_insert_id"])
def test_insert_id_spelled_without_dollar_dedupes_in_ndjson(tmp_path, spelling):
    """SPEC §1: `$insert_id` may be spelled `_insert_id` or `insert_id`; §2 dedups on it."""
    lines = [ev(user_id=u, device_id="d1", **{spelling: "i1"}) for u in ("a", "b")]
    res = run(tmp_path, lines)
    assert dropped(res) == {"duplicate": 1}
    assert [t["userId"] for t in tracks(res)] == ["a"]


@pytest.mark.parametrize("spelling", ["insert_id", "_insert_id", "$INSERT_ID"])
def test_insert_id_spelled_without_dollar_dedupes_in_dataframe(spelling):
    frame = pl.DataFrame(
        {
            "EVENT_TYPE": ["E", "E"],
            "EVENT_TIME": [T0, T0],
            "USER_ID": ["a", "b"],
            "DEVICE_ID": ["d1", "d1"],
            spelling: ["i1", "i1"],
        }
    )
    cfg = at.TransformConfig()
    res = at.transform(list(at.read_events(frame, cfg)), cfg)
    assert dropped(res) == {"duplicate": 1}


def test_duplicate_is_judged_before_other_filters(tmp_path):
    lines = [
        ev(uuid="u1", user_id=None),  # no_user_id, but it is the first occurrence
        ev(uuid="u1", user_id="alice"),  # a duplicate of it: duplicate, not kept
        ev(uuid="u2", event_type="$identify"),
        ev(uuid="u2", user_id="anonymous"),  # duplicate beats no_user_id
        ev(uuid="u3", event_type="Excluded"),
        ev(uuid="u3", event_type="Kept"),  # duplicate of an excluded row
    ]
    res = run(tmp_path, lines, exclude_events=("Excluded",))
    assert dropped(res) == {"no_user_id": 1, "duplicate": 3, "event_type": 1}
    assert res.report.trait_rows == 1
    assert res.tracks.height == 0


def test_identify_and_groupidentify_rows_are_trait_rows_not_events(tmp_path):
    lines = [
        ev(event_type="$identify", user_properties={"$set": {"plan": "pro"}}),
        ev(event_type="$groupidentify", groups={"org": "1"}, group_properties={"$set": {"a": 1}}),
        ev(event_type="identify"),
    ]
    res = run(tmp_path, lines, include_events=("identify",))
    assert dropped(res) == {}
    assert res.report.trait_rows == 2  # the include list applies to product events only
    assert [t["event"] for t in tracks(res)] == ["identify"]
    assert_balanced(res)


def test_malformed_lines_are_counted_and_quarantined(tmp_path):
    no_type = ev(uuid="m1")
    del no_type["event_type"]
    no_time = ev(uuid="m2")
    del no_time["event_time"]
    lines = [
        ev(uuid="ok"),
        "this is not json",
        "[1, 2, 3]",
        no_type,
        no_time,
        ev(uuid="m3", event_type=None),
        ev(uuid="m4", event_time="not a time"),
        ev(uuid="m5", event_time="2024-02-30 00:00:00"),
    ]
    res = run(tmp_path, lines)
    assert dropped(res) == {"malformed": 7}
    assert res.report.kept == 1
    assert sorted(res.quarantine["line"].to_list()) == [2, 3, 4, 5, 6, 7, 8]
    assert_balanced(res)


def test_place_precedence(tmp_path):
    """malformed > duplicate > $groupidentify > no_user_id > $identify > event_type."""
    lines = [
        ev(uuid="k", event_type="Excluded"),  # event_type
        ev(uuid="k", user_id=None, event_type="$identify", event_time="bad"),  # malformed
        ev(uuid="k", user_id=None, event_type="$identify"),  # duplicate
        ev(uuid="n", user_id="null", event_type="$identify"),  # no_user_id
        ev(uuid="g", user_id="null", event_type="$groupidentify"),  # a trait row: needs no user
        ev(uuid="i", event_type="$identify", user_id="u"),  # a trait row
    ]
    res = run(tmp_path, lines, include_events=("Kept",), exclude_events=("Excluded",))
    assert dropped(res) == {"malformed": 1, "duplicate": 1, "no_user_id": 1, "event_type": 1}
    assert res.report.trait_rows == 2
    assert_balanced(res)


def test_every_row_ends_in_exactly_one_place(tmp_path):
    lines = [ev(uuid=f"u{i % 4}", user_id=["a", None, "b"][i % 3]) for i in range(12)] + ["{bad"]
    res = run(tmp_path, lines)
    rep = res.report.to_dict()
    assert rep["rows_read"] == 13
    assert_balanced(res)
    assert rep["kept"] == res.tracks.height == rep["calls"]["track"]


# =========================================================================== §3 mapping


def test_event_rename_maps_names_and_leaves_others(tmp_path):
    res = run(
        tmp_path,
        [ev(event_type="Doc Opened"), ev(event_type="Other")],
        event_rename={"Doc Opened": "doc_opened"},
    )
    assert [t["event"] for t in tracks(res)] == ["doc_opened", "Other"]


def test_include_list_applies_to_the_amplitude_name_before_rename(tmp_path):
    res = run(
        tmp_path,
        [ev(event_type="Doc Opened")],
        include_events=("Doc Opened",),
        event_rename={"Doc Opened": "doc_opened"},
    )
    assert [t["event"] for t in tracks(res)] == ["doc_opened"]


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        ("2020-11-24 09:59:58.880000", "2020-11-24T09:59:58.880Z"),
        ("2020-11-24T09:59:58.880000", "2020-11-24T09:59:58.880Z"),
        ("2020-11-24 09:59:58.880", "2020-11-24T09:59:58.880Z"),
        ("2020-11-24T09:59:58", "2020-11-24T09:59:58.000Z"),
        ("2020-11-24 09:59:58", "2020-11-24T09:59:58.000Z"),
        ("2020-11-24T09:59:58.880Z", "2020-11-24T09:59:58.880Z"),
        ("2020-11-24 09:59:58Z", "2020-11-24T09:59:58.000Z"),
        ("2020-11-24T09:59:58.880000+00:00", "2020-11-24T09:59:58.880Z"),
        ("2020-11-24T15:29:58.880+05:30", "2020-11-24T09:59:58.880Z"),
        ("2020-11-24T01:59:58.880000-08:00", "2020-11-24T09:59:58.880Z"),
        ("2020-11-24T02:00:00+05:30", "2020-11-23T20:30:00.000Z"),  # crosses midnight
        ("2020-12-31T23:30:00-01:00", "2021-01-01T00:30:00.000Z"),  # crosses the year
        ("2020-11-24 09:59:58.000999", "2020-11-24T09:59:58.000Z"),  # sub-ms is cut, not rounded
        ("2020-11-24 09:59:58.999999", "2020-11-24T09:59:58.999Z"),
    ],
)
def test_timestamp_is_utc_iso8601_with_milliseconds_and_z(tmp_path, event_time, expected):
    res = run(tmp_path, [ev(event_time=event_time)])
    assert [t["timestamp"] for t in tracks(res)] == [expected]


def test_properties_looked_up_in_event_properties_then_user_properties(tmp_path):
    lines = [
        ev(event_properties={"plan": "event"}, user_properties={"plan": "user"}),
        ev(event_properties={"other": 1}, user_properties={"plan": "user"}),
        ev(event_properties={"plan": None}, user_properties={"plan": "user"}),  # present null
        ev(event_properties=None, user_properties={"plan": "user"}),
        ev(),  # absent everywhere: left out
    ]
    res = run(tmp_path, lines, properties=("plan",))
    assert [t["properties"] for t in tracks(res)] == [
        {"plan": "event"},
        {"plan": "user"},
        {"plan": None},
        {"plan": "user"},
        {},
    ]


def test_qualified_property_names_read_only_their_scope(tmp_path):
    lines = [
        ev(event_properties={"a": "ev-a", "b": "ev-b"}, user_properties={"a": "up-a", "b": "up-b"}),
        ev(event_properties={}, user_properties={"a": "up-a"}),
        ev(event_properties={"b": "ev-b"}, user_properties={}),
    ]
    res = run(tmp_path, lines, properties=("user_properties.a", "event_properties.b"))
    assert [t["properties"] for t in tracks(res)] == [
        {"a": "up-a", "b": "ev-b"},
        {"a": "up-a"},
        {"b": "ev-b"},
    ]


def test_property_values_keep_their_json_types(tmp_path):
    values = {
        "s": "5",
        "i": 5,
        "f": 2.5,
        "neg": -7,
        "big": 2**62,
        "t": True,
        "fl": False,
        "n": None,
        "obj": {"a": [1, "2", None, {"b": False}]},
        "arr": ["x", 1, 1.5, None, True, []],
        "empty_obj": {},
        "uni": "Fátima 🚀 שלום",
        "quote": 'say "hi"',
        "nl": "two\nlines",
        "str_true": "true",
        "str_null": "null",
    }
    res = run(tmp_path, [ev(event_properties=values)], properties=tuple(values))
    props = tracks(res)[0]["properties"]
    assert props == values
    for key, value in values.items():
        assert type(props[key]) is type(value), key


def test_property_lookup_ignores_nested_keys_of_the_same_name(tmp_path):
    """Only the top-level key counts: a nested {"plan": ...} must not change the type."""
    lines = [
        ev(event_properties={"nested": {"plan": "5"}, "plan": 5}),
        ev(event_properties={"nested": {"plan": None}}),
        ev(event_properties={"nested": {"plan": None}, "plan": 1}),
    ]
    res = run(tmp_path, lines, properties=("plan",))
    assert [t["properties"] for t in tracks(res)] == [{"plan": 5}, {}, {"plan": 1}]


@pytest.mark.parametrize("value", ["C:\\dir\\new", "tab\there", "bell\u0007", "\\", "a\\nb"])
def test_property_strings_with_escapes_keep_their_exact_value(tmp_path, value):
    lines = [
        ev(event_properties={"plan": value, "other": "kept"}, user_properties={"email": "a@x"})
    ]
    res = run(tmp_path, lines, properties=("plan", "other"))
    assert tracks(res)[0]["properties"] == {"plan": value, "other": "kept"}
    assert identifies(res)["alice"]["traits"] == {"email": "a@x", "plan": value, "other": "kept"}


def test_backslash_elsewhere_in_user_properties_does_not_lose_the_user_id(tmp_path):
    lines = [ev(user_id=None, user_properties={"email": "a@x.com", "path": "C:\\dir"})]
    res = run(tmp_path, lines, user_id="user_properties.email")
    assert dropped(res) == {}
    assert [t["userId"] for t in tracks(res)] == ["a@x.com"]


def test_user_id_with_tab_padding_in_user_properties_is_trimmed(tmp_path):
    res = run(
        tmp_path, [ev(user_properties={"email": "\ta@x.com\t"})], user_id="user_properties.email"
    )
    assert [t["userId"] for t in tracks(res)] == ["a@x.com"]


# =========================================================================== §4 groups

SEED_EVENT = {
    "groups": {"Account": ["210000"]},
    "group_properties": {
        "Account": {"210000": {"domain": "accoil.com", "name": "Released Import Test"}}
    },
}


def test_seed_group_traits_example_exactly(tmp_path):
    res = run(tmp_path, [ev(**SEED_EVENT)])
    raw = res.tracks["groupTraits"][0]
    assert orjson.loads(raw) == [
        {
            "groupId": "210000",
            "traits": {
                "domain": "accoil.com",
                "group_type": "Account",
                "name": "Released Import Test",
            },
        }
    ]


def test_multi_id_sorted_by_code_point_so_10_before_9(tmp_path):
    gt = one_group_traits(
        tmp_path,
        groups={"Account": ["9", "10", "100", "09"]},
        group_properties={"Account": {"10": {"n": "ten"}, "9": {"n": "nine"}}},
    )
    assert gt == [{"groupId": "09", "traits": {"group_type": "Account"}}]
    gt = one_group_traits(
        tmp_path,
        groups={"Account": ["9", "10"]},
        group_properties={"Account": {"10": {"n": "ten"}, "9": {"n": "nine"}}},
    )
    assert gt == [{"groupId": "10", "traits": {"n": "ten", "group_type": "Account"}}]


def test_multi_type_candidates_sorted_by_id_then_type(tmp_path):
    props = {"Org": {"5": {"o": 1}}, "Account": {"5": {"a": 1}, "7": {"x": 1}}}
    gt = one_group_traits(
        tmp_path, groups={"Org": ["5"], "Account": ["7", "5"]}, group_properties=props
    )
    assert gt == [{"groupId": "5", "traits": {"a": 1, "group_type": "Account"}}]
    gt = one_group_traits(tmp_path, groups={"Zeta": ["1"], "Account": ["2"]}, group_properties={})
    assert gt == [{"groupId": "1", "traits": {"group_type": "Zeta"}}]


def test_code_point_order_not_locale_or_case_order(tmp_path):
    gt = one_group_traits(tmp_path, groups={"T": ["b", "B", "ä", "a", "Z"]}, group_properties={})
    assert gt[0]["groupId"] == "B"  # "B" (66) < "Z" (90) < "a" (97) < "b" < "ä" (228)
    gt = one_group_traits(tmp_path, groups={"T": ["🚀", "\uffff", "ü"]}, group_properties={})
    assert gt[0]["groupId"] == "ü"  # U+00FC < U+FFFF < U+1F680 (not UTF-16 order)


def test_scalar_group_value_gives_one_id(tmp_path):
    gt = one_group_traits(
        tmp_path, groups={"org": "acme"}, group_properties={"org": {"acme": {"plan": "pro"}}}
    )
    assert gt == [{"groupId": "acme", "traits": {"plan": "pro", "group_type": "org"}}]


def test_numeric_group_ids_become_decimal_strings(tmp_path):
    props = {"A": {"42": {"n": 1}}}
    assert one_group_traits(tmp_path, groups={"A": 42}, group_properties=props) == [
        {"groupId": "42", "traits": {"n": 1, "group_type": "A"}}
    ]
    assert (
        one_group_traits(tmp_path, groups={"A": [42, 100]}, group_properties=props)[0]["groupId"]
        == "100"
    )
    assert one_group_traits(tmp_path, groups={"A": [2**60]}, group_properties={})[0][
        "groupId"
    ] == str(2**60)
    assert (
        one_group_traits(tmp_path, groups={"A": [-3, "x"]}, group_properties={})[0]["groupId"]
        == "-3"
    )


def test_null_group_ids_are_skipped(tmp_path):
    assert one_group_traits(tmp_path, groups={"A": [None, "b", None]}, group_properties={}) == [
        {"groupId": "b", "traits": {"group_type": "A"}}
    ]
    assert one_group_traits(tmp_path, groups={"A": None}, group_properties={}) == []
    assert one_group_traits(tmp_path, groups={"A": [None]}, group_properties={}) == []


def test_id_missing_from_group_properties_gets_only_group_type(tmp_path):
    for props in (
        {},
        {"Account": {}},
        {"Account": {"other": {"x": 1}}},
        {"Other": {"1": {"x": 1}}},
    ):
        gt = one_group_traits(tmp_path, groups={"Account": ["1"]}, group_properties=props)
        assert gt == [{"groupId": "1", "traits": {"group_type": "Account"}}], props


@pytest.mark.parametrize("missing", ["groups", "group_properties"])
@pytest.mark.parametrize("how", ["absent", "null"])
def test_groups_or_group_properties_absent_or_null_gives_no_group(tmp_path, missing, how):
    fields = dict(SEED_EVENT)
    if how == "absent":
        del fields[missing]
    else:
        fields[missing] = None
    assert one_group_traits(tmp_path, **fields) == []


def test_empty_group_properties_object_counts_as_present(tmp_path):
    assert one_group_traits(tmp_path, groups={"Account": ["1"]}, group_properties={}) == [
        {"groupId": "1", "traits": {"group_type": "Account"}}
    ]


def test_empty_groups_object_gives_empty_group_traits(tmp_path):
    assert (
        one_group_traits(tmp_path, groups={}, group_properties=SEED_EVENT["group_properties"]) == []
    )
    assert one_group_traits(tmp_path, groups={"Account": []}, group_properties={}) == []


def test_trait_values_keep_their_json_types(tmp_path):
    traits = {
        "s": "5",
        "i": 5,
        "f": 0.5,
        "big": 2**62,
        "t": True,
        "fl": False,
        "n": None,
        "obj": {"nested": {"deep": [1, {"x": None}]}},
        "arr": [1, "1", None, False, {"k": "v"}],
        "empty": {},
        "uni": "Santarém 🚀 שלום",
        "quote": 'say "hi"',
    }
    gt = one_group_traits(tmp_path, groups={"A": ["1"]}, group_properties={"A": {"1": traits}})
    got = gt[0]["traits"]
    assert got == {**traits, "group_type": "A"}
    for key, value in traits.items():
        assert type(got[key]) is type(value), key


def as_doubles(value: Any) -> Any:
    """JSON numbers as the doubles a JSON reader (JavaScript's, Accoil's) makes of them."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [as_doubles(v) for v in value]
    return {k: as_doubles(v) for k, v in value.items()}


@pytest.mark.parametrize("number", [2**64 + 1, -(2**63) - 1, 12345678901234567890123], ids=repr)
def test_trait_integers_keep_their_exact_value(tmp_path, number):
    gt = one_group_traits(
        tmp_path,
        groups={"A": ["1"]},
        group_properties={"A": {"1": {"v": number}}},
    )
    got = gt[0]["traits"]["v"]
    assert (type(got), got) == (int, number)


@pytest.mark.parametrize(
    "number", [900719925474099.5, 2.7510243960976976e225, 5e-324, 0.1, -1.5e-10], ids=repr
)
def test_trait_floats_keep_their_double_value(tmp_path, number):
    # Written with an exponent, a float may come back in plain decimal notation
    # (1e20 as 100000000000000000000): the same JSON number, the same double.
    gt = one_group_traits(
        tmp_path,
        groups={"A": ["1"]},
        group_properties={"A": {"1": {"v": number}}},
    )
    assert float(gt[0]["traits"]["v"]) == number


def test_largest_float_in_traits_does_not_drop_the_other_traits(tmp_path):
    big = 1.7976931348623157e308
    fields = {
        "groups": {"A": ["1"]},
        "group_properties": {"A": {"1": {"v": big, "name": "Acme"}}},
        "event_properties": {"v": big, "plan": "pro"},
    }
    res = run(tmp_path, [ev(**fields)], properties=("v", "plan"))
    t = tracks(res)[0]
    assert as_doubles(t["groupTraits"]) == [
        {"groupId": "1", "traits": {"v": big, "name": "Acme", "group_type": "A"}}
    ]
    assert as_doubles(t["properties"]) == {"v": big, "plan": "pro"}


def test_unicode_and_emoji_in_group_types_ids_and_trait_keys(tmp_path):
    gt = one_group_traits(
        tmp_path,
        groups={"[Segment] Gröup 🚀": ["Ünïcode Acme 🏢"], "org name": ["🙂zzz"]},
        group_properties={
            "[Segment] Gröup 🚀": {"Ünïcode Acme 🏢": {"ключ": "значение", "🔑": "🚀"}}
        },
    )
    assert gt == [
        {
            "groupId": "Ünïcode Acme 🏢",
            "traits": {"ключ": "значение", "🔑": "🚀", "group_type": "[Segment] Gröup 🚀"},
        }
    ]


def test_group_type_and_id_with_quotes_dots_and_backslashes(tmp_path):
    for gtype, gid in [
        ("a'b", "c'd"),
        ("a.b", "c.d"),
        ('q"t', 'i"d'),
        ("back\\slash", "x\\y"),
        ("[x]", "$"),
    ]:
        gt = one_group_traits(
            tmp_path, groups={gtype: [gid]}, group_properties={gtype: {gid: {"name": "N"}}}
        )
        assert gt == [{"groupId": gid, "traits": {"name": "N", "group_type": gtype}}], (gtype, gid)


def test_group_type_key_in_traits_is_overridden(tmp_path):
    gt = one_group_traits(
        tmp_path,
        groups={"Account": ["1"]},
        group_properties={
            "Account": {"1": {"group_type": "Wrong", "name": "Acme", "x": "group_type"}}
        },
    )
    assert gt == [
        {"groupId": "1", "traits": {"group_type": "Account", "name": "Acme", "x": "group_type"}}
    ]
    gt = one_group_traits(
        tmp_path,
        groups={"Account": ["1"]},
        group_properties={"Account": {"1": {"group_type": None}}},
    )
    assert gt == [{"groupId": "1", "traits": {"group_type": "Account"}}]


def test_track_carries_primary_group_id_and_type(tmp_path):
    res = run(tmp_path, [ev(groups={"B": ["2"], "A": ["2", "3"]}, group_properties={})])
    assert res.tracks.select("groupId", "groupType").row(0) == ("2", "A")


# =========================================================================== §5 identify/group


def test_identify_uses_the_users_latest_event_and_last_row_on_ties(tmp_path):
    lines = [
        ev(
            user_id="u",
            event_time="2024-01-02 00:00:00",
            user_properties={"email": "latest@x", "name": "L"},
        ),
        ev(
            user_id="u",
            event_time="2024-01-01 00:00:00",
            user_properties={"email": "older@x", "name": "O"},
        ),
        ev(user_id="v", event_time="2024-01-01T00:00:00Z", user_properties={"email": "first@x"}),
        # same instant in another format and zone: a tie, so the later row wins
        ev(
            user_id="v",
            event_time="2024-01-01T05:30:00.000+05:30",
            user_properties={"email": "second@x"},
        ),
        ev(
            user_id="v",
            event_time="2023-12-31 23:59:59.999999",
            user_properties={"email": "before@x"},
        ),
    ]
    res = run(tmp_path, lines)
    assert identifies(res) == {
        "u": {
            "traits": {"email": "latest@x", "name": "L"},
            "timestamp": "2024-01-02T00:00:00.000Z",
        },
        "v": {"traits": {"email": "second@x"}, "timestamp": "2024-01-01T00:00:00.000Z"},
    }
    assert res.identifies.height == 2


def test_identify_tie_is_decided_across_input_files(tmp_path):
    first = [ev(user_id="u", user_properties={"email": "file1@x"})]
    second = [ev(user_id="u", user_properties={"email": "file2@x"})]
    res = run(tmp_path, first, second)
    assert identifies(res)["u"]["traits"] == {"email": "file2@x"}
    res = run(tmp_path, second, first)
    assert identifies(res)["u"]["traits"] == {"email": "file1@x"}


def test_identify_traits_are_user_traits_plus_additional_properties(tmp_path):
    lines = [
        ev(
            user_id="u",
            user_properties={"email": "a@x", "name": "Ann", "role": "admin", "plan": "from-user"},
            event_properties={"plan": "from-event", "seats": 3},
        )
    ]
    res = run(tmp_path, lines, properties=("plan", "seats", "user_properties.role"))
    assert identifies(res)["u"]["traits"] == {
        "email": "a@x",
        "name": "Ann",
        "plan": "from-event",
        "seats": 3,
        "role": "admin",
    }


def test_identify_comes_from_kept_events_and_identify_rows(tmp_path):
    lines = [
        ev(user_id="u", event_time="2024-01-01 00:00:00", user_properties={"email": "kept@x"}),
        ev(
            user_id="u",
            event_time="2024-06-01 00:00:00",
            event_type="$identify",
            user_properties={"email": "id@x"},
        ),
        ev(
            user_id="u",
            event_time="2024-06-01 00:00:00",
            event_type="Excluded",
            user_properties={"email": "ex@x"},
        ),
        ev(user_id="w", event_type="Excluded"),
    ]
    res = run(tmp_path, lines, exclude_events=("Excluded",))
    assert identifies(res) == {
        "u": {"traits": {"email": "id@x"}, "timestamp": "2024-06-01T00:00:00.000Z"}
    }


def test_group_record_per_user_and_primary_group_from_latest_event(tmp_path):
    def g(gid: str, name: str) -> dict[str, Any]:
        return {
            "groups": {"Account": [gid]},
            "group_properties": {"Account": {gid: {"name": name}}},
        }

    lines = [
        ev(user_id="u", event_time="2024-01-03 00:00:00", **g("1", "newest")),
        ev(user_id="u", event_time="2024-01-01 00:00:00", **g("1", "old")),
        ev(user_id="u", event_time="2024-01-02 00:00:00", **g("2", "two")),
        ev(user_id="v", event_time="2024-01-02 00:00:00", **g("1", "v-first")),
        ev(user_id="v", event_time="2024-01-02T00:00:00Z", **g("1", "v-tie-last")),
        ev(user_id="v", event_time="2024-01-05 00:00:00"),  # no group: no group record
    ]
    res = run(tmp_path, lines)
    assert group_records(res) == {
        ("u", "1"): {
            "traits": {"name": "newest", "group_type": "Account"},
            "timestamp": "2024-01-03T00:00:00.000Z",
        },
        ("u", "2"): {
            "traits": {"name": "two", "group_type": "Account"},
            "timestamp": "2024-01-02T00:00:00.000Z",
        },
        ("v", "1"): {  # the group's latest traits, whoever sent them
            "traits": {"name": "newest", "group_type": "Account"},
            "timestamp": "2024-01-02T00:00:00.000Z",
        },
    }
    assert res.groups.height == 3


# =========================================================================== §5 calls


def sample_result(tmp_path: Path) -> at.TransformResult:
    lines = [
        ev(
            uuid="e1",
            user_id="u1",
            event_time="2024-01-01 00:00:01.250000",
            user_properties={"email": "u1@x"},
            event_properties={"plan": "pro"},
            **SEED_EVENT,
        ),
        ev(uuid="e2", user_id="u2", event_time="2024-01-01 00:00:00", event_type="Other"),
        ev(uuid="e3", user_id="u1", event_time="2024-01-01 00:00:02"),
        ev(
            **{"$insert_id": "i1", "device_id": "d1"},
            user_id="u2",
            event_time="2024-01-01 00:00:03",
        ),
        ev(user_id="u2", event_time="2024-01-01 00:00:03"),
        ev(user_id="u2", event_time="2024-01-01 00:00:03"),
    ]
    return run(tmp_path, lines, properties=("plan",))


def calls(res: at.TransformResult, fmt: str) -> list[dict[str, Any]]:
    frame = at.build_calls(res.tracks, res.identifies, res.groups, fmt)
    return [{**r, "body": json.loads(r["body"])} for r in frame.iter_rows(named=True)]


def test_v2_call_bodies(tmp_path):
    cs = calls(sample_result(tmp_path), "v2")
    kinds = [c["kind"] for c in cs]
    assert kinds.count("identify") == 2 and kinds.count("group") == 1 and kinds.count("track") == 6
    for c in cs:
        body = c["body"]
        if c["kind"] == "track":
            assert set(body) == {"userId", "event", "timestamp"}
        elif c["kind"] == "identify":
            assert set(body) == {"userId", "traits", "timestamp"}
            assert isinstance(body["traits"], dict)
        else:
            assert set(body) == {"groupId", "userId", "traits", "timestamp"}
        assert isinstance(body["userId"], str) and body["timestamp"].endswith("Z")
    group = next(c["body"] for c in cs if c["kind"] == "group")
    assert group == {
        "groupId": "210000",
        "userId": "u1",
        "traits": {"domain": "accoil.com", "group_type": "Account", "name": "Released Import Test"},
        "timestamp": "2024-01-01T00:00:01.250Z",
    }
    ident = {c["body"]["userId"]: c["body"] for c in cs if c["kind"] == "identify"}
    assert ident["u1"] == {
        "userId": "u1",
        "traits": {"email": "u1@x", "plan": "pro"},  # from the latest row holding each
        "timestamp": "2024-01-01T00:00:02.000Z",
    }
    first = next(
        c["body"]
        for c in cs
        if c["kind"] == "track" and c["body"]["timestamp"].startswith("2024-01-01T00:00:01")
    )
    assert first == {"userId": "u1", "event": "Doc Opened", "timestamp": "2024-01-01T00:00:01.250Z"}


def test_stream_call_bodies_are_the_destination_shape(tmp_path):
    cs = calls(sample_result(tmp_path), "stream")
    assert {c["kind"] for c in cs} == {"track"} and len(cs) == 6
    for c in cs:
        assert set(c["body"]) == {"userId", "event", "timestamp", "properties", "groupTraits"}
        assert isinstance(c["body"]["properties"], dict)
        assert isinstance(c["body"]["groupTraits"], list)
    first = next(c["body"] for c in cs if c["body"]["timestamp"] == "2024-01-01T00:00:01.250Z")
    assert first == {
        "userId": "u1",
        "event": "Doc Opened",
        "timestamp": "2024-01-01T00:00:01.250Z",
        "properties": {"plan": "pro"},
        "groupTraits": [
            {
                "groupId": "210000",
                "traits": {
                    "domain": "accoil.com",
                    "group_type": "Account",
                    "name": "Released Import Test",
                },
            }
        ],
    }
    others = [c["body"] for c in cs if c["body"] is not first and c["body"]["userId"] == "u2"]
    assert all(b["groupTraits"] == [] and b["properties"] == {} for b in others)


def test_segment_call_bodies_carry_type(tmp_path):
    cs = calls(sample_result(tmp_path), "segment")
    for c in cs:
        assert c["body"]["type"] == c["kind"]
        assert isinstance(c["body"]["userId"], str)
        assert isinstance(c["body"]["timestamp"], str) and c["body"]["timestamp"].endswith("Z")
    track = next(c["body"] for c in cs if c["kind"] == "track")
    assert set(track) == {"type", "event", "userId", "timestamp"}
    group = next(c["body"] for c in cs if c["kind"] == "group")
    assert set(group) == {"type", "userId", "groupId", "traits", "timestamp"}
    ident = next(c["body"] for c in cs if c["kind"] == "identify")
    assert set(ident) == {"type", "userId", "traits", "timestamp"}


def test_v1_call_bodies_are_snake_case_with_epoch_ms(tmp_path):
    cs = calls(sample_result(tmp_path), "v1")
    track = next(
        c["body"] for c in cs if c["kind"] == "track" and c["body"]["timestamp"] == 1704067201250
    )
    assert track == {"user_id": "u1", "event": "Doc Opened", "timestamp": 1704067201250}
    group = next(c["body"] for c in cs if c["kind"] == "group")
    assert set(group) == {"group_id", "user_id", "traits", "timestamp"}
    assert group["group_id"] == "210000" and group["timestamp"] == 1704067201250
    ident = next(c["body"] for c in cs if c["kind"] == "identify")
    assert set(ident) == {"user_id", "traits", "timestamp"}
    for c in cs:
        assert type(c["body"]["timestamp"]) is int
        assert "userId" not in c["body"]
    keyed = orjson.loads(with_body_api_key(orjson.dumps(track), "KEY"))
    assert keyed == {"api_key": "KEY", **track}


@pytest.mark.parametrize("fmt", ["v2", "stream", "segment", "v1"])
def test_call_ids_are_deterministic_across_runs_and_unique_per_event(tmp_path, fmt):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = at.build_calls(*_three(sample_result(tmp_path / "a")), fmt)
    second = at.build_calls(*_three(sample_result(tmp_path / "b")), fmt)
    assert first["call_id"].to_list() == second["call_id"].to_list()
    assert first["body"].to_list() == second["body"].to_list()
    assert first["call_id"].n_unique() == first.height
    tracks_only = first.filter(pl.col("kind") == "track")
    assert tracks_only.height == 6  # includes the two rows without uuid/insert_id


def _three(res: at.TransformResult) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    return res.tracks, res.identifies, res.groups


@pytest.mark.parametrize("fmt", ["v2", "segment", "v1"])
def test_delivery_order_is_identify_then_group_then_track(tmp_path, fmt):
    kinds = at.build_calls(*_three(sample_result(tmp_path)), fmt)["kind"].to_list()
    assert kinds == ["identify"] * 2 + ["group"] + ["track"] * 6
