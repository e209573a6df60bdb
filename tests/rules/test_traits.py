"""User data and account data: $identify and $groupidentify rows, every user trait, each
group's latest traits, account-only group calls, and odd values (docs/rules.md §2, §5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import accoil_transform as at
from tests.rules.helpers import calls, ev, group_records, identifies, run


def account(gid: str, **traits: Any) -> dict[str, Any]:
    return {"groups": {"Account": [gid]}, "group_properties": {"Account": {gid: traits}}}


def test_a_user_known_only_from_identify_rows_gets_an_identify(tmp_path: Path) -> None:
    lines = [
        ev(user_id="u", event_type="$identify", user_properties={"email": "a@x", "role": "admin"}),
        ev(user_id="u", event_type="$identify", event_time="2024-05-02 00:00:00"),  # no object
    ]
    res = run(tmp_path, lines)
    assert res.report.kept == 0 and res.report.trait_rows == 2
    assert identifies(res) == {
        "u": {"traits": {"email": "a@x", "role": "admin"}, "timestamp": "2024-05-02T00:00:00.000Z"}
    }
    assert [c["kind"] for c in calls(res, "v2")] == ["identify"]


def test_identify_rows_need_a_user_id_group_identify_rows_do_not(tmp_path: Path) -> None:
    lines = [
        ev(user_id=None, event_type="$identify"),
        ev(user_id=None, event_type="$groupidentify", **account("9", name="Nine")),
    ]
    res = run(tmp_path, lines)
    assert res.report.dropped == {"no_user_id": 1}
    assert res.report.trait_rows == 1


def test_every_user_trait_by_default_narrowed_by_keep_and_drop(tmp_path: Path) -> None:
    props = {"email": "a@x", "name": "A", "createdAt": "2024-01-01", "ssn": "secret", "n": 1}
    lines = [ev(user_id="u", user_properties=props, event_properties={"plan": "pro"})]
    assert identifies(run(tmp_path, lines))["u"]["traits"] == props
    narrowed = run(tmp_path, lines, exclude_user_traits=("ssn",), properties=("plan",))
    assert identifies(narrowed)["u"]["traits"] == {
        "email": "a@x", "name": "A", "createdAt": "2024-01-01", "n": 1, "plan": "pro"
    }  # fmt: skip
    kept = run(tmp_path, lines, user_traits=("name", "email"))
    assert list(identifies(kept)["u"]["traits"]) == ["name", "email"]


def test_traits_come_whole_from_the_latest_row_with_an_object(tmp_path: Path) -> None:
    lines = [
        ev(user_id="u", event_time="2024-01-01 00:00:00", user_properties={"a": 1, "b": 2}),
        ev(user_id="u", event_time="2024-01-02 00:00:00", user_properties={"a": 3}),
        ev(user_id="u", event_time="2024-01-03 00:00:00", user_properties=None),
    ]
    res = run(tmp_path, lines)
    # not merged with older objects: the latest snapshot, whole
    assert identifies(res)["u"] == {"traits": {"a": 3}, "timestamp": "2024-01-03T00:00:00.000Z"}


def test_a_group_call_carries_the_groups_latest_traits_across_users(tmp_path: Path) -> None:
    lines = [
        ev(user_id="u", event_time="2024-01-01 00:00:00", **account("1", plan="free")),
        ev(user_id="v", event_time="2024-01-05 00:00:00", **account("1", plan="pro")),
        ev(
            user_id=None,
            event_type="$groupidentify",
            event_time="2024-01-09 00:00:00",
            **account("1", plan="enterprise"),
        ),
    ]
    res = run(tmp_path, lines)
    records = group_records(res)
    assert set(records) == {("u", "1"), ("v", "1")}  # named group 1 is a primary: no account call
    for pair, timestamp in ((("u", "1"), "2024-01-01"), (("v", "1"), "2024-01-05")):
        assert records[pair] == {
            "traits": {"plan": "enterprise", "group_type": "Account"},
            "timestamp": f"{timestamp}T00:00:00.000Z",
        }


def test_a_group_with_no_known_traits_has_only_its_type(tmp_path: Path) -> None:
    res = run(tmp_path, [ev(user_id="u", groups={"Account": "7"}, group_properties={})])
    assert group_records(res)[("u", "7")]["traits"] == {"group_type": "Account"}


def test_account_only_group_calls_in_v2_counted_elsewhere(tmp_path: Path) -> None:
    lines = [
        ev(user_id="u", **account("1", name="One")),
        ev(
            event_type="$groupidentify",
            event_time="2024-05-03 00:00:00",
            groups={"Account": ["2", "1"]},
            group_properties={"Account": {"2": {"name": "Two", "mrr": 10000}}},
        ),
    ]
    res = run(tmp_path, lines)
    v2 = [c["body"] for c in calls(res, "v2") if c["kind"] == "group"]
    assert {"groupId": "2", "traits": {"name": "Two", "mrr": 10000, "group_type": "Account"},
            "timestamp": "2024-05-03T00:00:00.000Z"} in v2  # fmt: skip
    assert len(v2) == 2  # the pair (u, 1) and the account-only 2; 1 is a primary group
    for fmt in ("segment", "v1", "stream"):
        assert all("groupId" not in c["body"] or "userId" in c["body"] for c in calls(res, fmt))
        assert at.calls.skipped_account_groups(res.groups, fmt) == 1
    assert at.calls.skipped_account_groups(res.groups, "v2") == 0


def test_the_run_report_counts_skipped_account_calls(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(ev(event_type="$groupidentify", **account("2", name="T"))) + "\n")
    for fmt, skipped, groups in (("v2", 0, 1), ("segment", 1, 0)):
        out = at.run(path, options=at.RunOptions(format=fmt, out=tmp_path / f"{fmt}.ndjson"))
        assert out.to_dict()["skipped"] == {"account_group_calls": skipped}
        assert out.report.calls.get("group", 0) == groups


@pytest.mark.parametrize("value", [123, True, ["Doc"], {"a": 1}, "", "   ", "\t"])
def test_event_type_must_be_a_non_blank_string(tmp_path: Path, value: Any) -> None:
    res = run(tmp_path, [ev(event_type=value), ev()])
    assert res.report.dropped == {"malformed": 1} and res.report.kept == 1
    (reason,) = res.quarantine["reason"].to_list()
    assert "event_type" in reason


def test_odd_groups_and_group_ids_are_counted_not_reshaped(tmp_path: Path) -> None:
    lines = [
        ev(user_id="a", groups=5, group_properties={}),
        ev(user_id="b", groups=["1"], group_properties={}),
        ev(user_id="c", groups="not json", group_properties={}),
        ev(user_id="d", groups={"Account": [{"id": 1}, ["2"], "3"]}, group_properties={}),
        ev(user_id="e", groups=json.dumps({"Account": ["4"]}, indent=2), group_properties={}),
    ]
    res = run(tmp_path, lines)
    assert res.report.odd_values == {"groups_not_object": 3, "group_id_not_scalar": 2}
    assert res.tracks.sort("_row")["groupId"].to_list() == [None, None, None, "3", "4"]


@pytest.mark.parametrize("value", [["u1"], {"id": "u1"}])
def test_a_user_id_that_is_a_list_or_object_is_no_user_id(tmp_path: Path, value: Any) -> None:
    res = run(tmp_path, [ev(user_id=value)])
    assert res.report.dropped == {"no_user_id": 1}
    prop = run(tmp_path, [ev(user_properties={"email": value})], user_id="user_properties.email")
    assert prop.report.dropped == {"no_user_id": 1}
