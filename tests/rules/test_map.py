"""One focused example per rule of docs/rules.md §3 (mapping: event names, timestamps,
properties and their JSON types), through the realistic path: NDJSON files →
``at.read_events`` → ``at.transform``.
"""

from __future__ import annotations

import pytest

from tests.rules.helpers import dropped, ev, identifies, run, tracks


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
