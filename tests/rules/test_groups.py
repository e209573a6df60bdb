"""One focused example per rule of docs/rules.md §4 (groups: ids, order, group traits and
the primary group), through the realistic path: NDJSON files → ``at.read_events`` →
``at.transform``; and the group resolver's bounded memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform.rules import GroupResolver, primary_groups
from tests.rules.helpers import SEED_EVENT, ev, one_group_traits, run, tracks

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "amplitude_export_sample.zip"


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
        ("O'Brien's", "'quoted'"),  # two quotes: polars' JSONPath can't select the key
        ("a.b", "c.d"),
        ('q"t', 'i"d'),
        ("back\\slash", "x\\y"),
        ("\\", "\\"),  # a lone backslash can't be written in JSONPath at all
        ("end\\", "id\\"),
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


# --------------------------------------------------------------------------- the resolver's memory


def test_group_resolver_memory_is_bounded_and_restarts_without_changing_results() -> None:
    frame = pl.concat(list(at.read_events(SAMPLE))).with_columns(pl.col("_row").cast(pl.UInt64))
    expected = primary_groups(frame).sort("_row")
    resolver = GroupResolver(max_texts=5)
    for start in range(0, frame.height, 300):
        batch = frame.slice(start, 300)
        part = resolver.primary_groups(batch).drop("groupTraits")
        assert_frame_equal(
            part.sort("_row"), expected.filter(pl.col("_row").is_in(batch["_row"].implode()))
        )
        assert "known=" in repr(resolver)
    assert resolver.primaries.height <= 300


def test_rows_with_pairs_of_their_own_are_resolved_directly() -> None:
    """A trait that changes on every event: no pair repeats, and the results are those of
    the remembered way."""
    frame = pl.concat(list(at.read_events(SAMPLE))).with_columns(pl.col("_row").cast(pl.UInt64))
    counter = pl.lit('{"Counter":{"c":{"seen":') + pl.col("_row").cast(pl.String) + pl.lit("}},")
    volatile = frame.with_columns(
        group_properties=pl.when(pl.col("group_properties").str.starts_with("{"))
        .then(counter + pl.col("group_properties").str.strip_prefix("{"))
        .otherwise(pl.col("group_properties"))
    )
    direct, remembered = GroupResolver(), GroupResolver(repeat_ratio=2.0)
    for start in range(0, volatile.height, 400):
        batch = volatile.slice(start, 400)
        got = direct.primary_groups(batch)
        assert direct._texts.is_empty()  # nothing remembered
        assert_frame_equal(got, remembered.primary_groups(batch), check_row_order=False)
    assert remembered._texts.height > 0


# --------------------------------------------------------------------------- one group's text


def resolve(groups: str, group_properties: str) -> dict[str, Any]:
    """The primary group of one event, its texts given as they are written."""
    frame = pl.DataFrame(
        {"_row": [0], "groups": [groups], "group_properties": [group_properties]},
        schema={"_row": pl.UInt64, "groups": pl.String, "group_properties": pl.String},
    )
    return primary_groups(frame).row(0, named=True)


def test_text_of_one_group_gives_its_traits_exactly_as_written() -> None:
    # The form of almost every event: one type, one id, flat traits. Numbers keep their
    # spelling, escapes stay escapes.
    traits = '{"v":1.50,"e":1E3,"s":"\\u00e9 \\"q\\" }},{","a":[1,2.0,"]"],"n":null}'
    got = resolve('{"A":["1"]}', '{"A":{"1":' + traits + "}}")
    assert got["group_traits"] == traits[:-1] + ',"group_type":"A"}'
    assert orjson.loads(got["group_traits"]) == {**orjson.loads(traits), "group_type": "A"}


@pytest.mark.parametrize(
    "group_properties",
    [
        '{"A":{"1":{"v":1,}}}',  # not JSON: a trailing comma
        '{"A":{"1":{"v":01}}}',  # not JSON: a leading zero
        '{"A":{"1":{"v":"a\tb"}}}',  # not JSON: a raw tab in a string
        '{"A":{"1":{"v":1}}}}',  # not JSON: a brace too many
    ],
)
def test_text_of_one_group_that_is_not_json_gives_no_traits(group_properties: str) -> None:
    assert resolve('{"A":["1"]}', group_properties)["group_traits"] == '{"group_type":"A"}'


@pytest.mark.parametrize(
    ("groups", "group_properties", "traits"),
    [
        ('{"A":["2"]}', '{"A":{"1":{"v":1}}}', {}),  # another id
        ('{"B":["1"]}', '{"A":{"1":{"v":1}}}', {}),  # another type
        ('{"A":["1"]}', '{"A":{"1":{"o":{"v":1}}}}', {"o": {"v": 1}}),  # nested: parsed
        ('{"A":["1"]}', '{"A": {"1": {"v": 1}}}', {"v": 1}),  # spaced: parsed
        ('{"A":["1"]}', '{"A":{"1":{"v":1},"2":{"v":2}}}', {"v": 1}),  # two ids: parsed
        ('{"a\\"b":["1"]}', '{"a\\"b":{"1":{"v":1}}}', {"v": 1}),  # escaped key: parsed
        ('{"A":["1"]}', '{"\\u0041":{"1":{"v":1}}}', {"v": 1}),  # escaped key: parsed
        ('{"A":["1\\"x"]}', '{"A":{"1\\"x":{"v":1}}}', {"v": 1}),  # escaped id: parsed
    ],
)
def test_text_of_one_group_against_other_candidates_and_forms(
    groups: str, group_properties: str, traits: dict[str, Any]
) -> None:
    got = resolve(groups, group_properties)
    expected = {**traits, "group_type": orjson.loads(groups).popitem()[0]}
    assert orjson.loads(got["group_traits"]) == expected


_SCALARS = (
    st.text()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.booleans()
    | st.none()
)


@settings(max_examples=200, deadline=None)
@given(
    gtype=st.text(min_size=1),
    gid=st.text(min_size=1),
    traits=st.dictionaries(st.text(), _SCALARS | st.lists(_SCALARS, max_size=3), max_size=5),
    ascii_only=st.booleans(),
)
def test_text_of_one_group_any_keys_and_flat_traits(
    gtype: str, gid: str, traits: dict[str, Any], ascii_only: bool
) -> None:
    """Whatever the keys and values, the traits mean what the text says (compact JSON,
    with or without escapes: the exact slice or the parser's reading agree)."""
    compact = {"separators": (",", ":"), "ensure_ascii": ascii_only}
    got = resolve(
        json.dumps({gtype: [gid]}, **compact),  # type: ignore[arg-type]
        json.dumps({gtype: {gid: traits}}, **compact),  # type: ignore[arg-type]
    )
    assert got["group_id"] == gid
    assert json.loads(got["group_traits"]) == {**traits, "group_type": gtype}
