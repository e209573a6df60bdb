"""One focused example per rule of docs/rules.md §2 (selection: user ids, event types,
duplicates, malformed rows, and the one place each row ends in), through the realistic
path: NDJSON files → ``at.read_events`` → ``at.transform``.
"""

from __future__ import annotations

import polars as pl
import pytest

import accoil_transform as at
from tests.rules.helpers import T0, assert_balanced, dropped, ev, run, tracks

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
