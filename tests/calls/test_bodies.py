"""Call bodies of every format, call ids and delivery order (docs/rules.md §5), from the
realistic path: NDJSON files → ``at.read_events`` → ``at.transform`` → ``at.build_calls``.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl
import pytest

import accoil_transform as at
from accoil_transform.calls import with_body_api_key
from tests.rules.helpers import SEED_EVENT, calls, ev, run


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
