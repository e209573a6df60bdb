"""The Transformer's records and state: one identify per user and one group record per
(user, group) (docs/rules.md §5), and results that do not depend on how the input is cut
into batches or on hash collisions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform.rules import GroupResolver, Transformer
from tests.rules.helpers import ev, group_records, identifies, run, write_ndjson

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "amplitude_export_sample.zip"


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


# =========================================================================== batch invariance


def _transform(frames: list[pl.DataFrame]) -> at.TransformResult:
    return at.transform(frames, at.TransformConfig())


def test_transform_results_do_not_depend_on_the_batches() -> None:
    """Dedup keys and group texts remembered between batches give the one-batch result."""
    whole = _transform([pl.concat(list(at.read_events(SAMPLE)))])
    batches = list(at.read_events(SAMPLE, options=at.ReadOptions(chunk_bytes=20_000)))
    assert len(batches) > 20
    result = _transform(batches)
    assert result.report.to_dict() == whole.report.to_dict()
    assert result.report.dropped["duplicate"] > 0  # some duplicates are in other batches
    for name in ("tracks", "identifies", "groups", "quarantine"):
        assert_frame_equal(getattr(result, name), getattr(whole, name), check_row_order=False)


def test_hash_collisions_cost_time_not_correctness() -> None:
    """Every dedup key and every group text pair hashed alike: results are unchanged."""
    batches = list(at.read_events(SAMPLE, options=at.ReadOptions(chunk_bytes=50_000)))
    expected = _transform(batches)
    colliding = Transformer(
        at.TransformConfig(),
        key_hash=lambda keys: keys.is_null().cast(pl.UInt64),
        resolver=GroupResolver(hash_texts=lambda: pl.lit(7, pl.UInt64)),
    )
    tracks = pl.concat([colliding.feed(batch) for batch in batches])
    identifies, groups = colliding.finish()
    result = at.TransformResult(tracks, identifies, groups, colliding.quarantine, colliding.report)
    result.report.calls["track"] = tracks.height
    assert result.report.to_dict() == expected.report.to_dict()
    for name in ("tracks", "identifies", "groups"):
        assert_frame_equal(getattr(result, name), getattr(expected, name), check_row_order=False)


def test_track_calls_only_keep_no_user_or_account_state(tmp_path: Path) -> None:
    """A format of track calls only (stream): the same tracks and report, no identify
    records, and group records only for the account-only groups (counted as skipped)."""
    account_only = write_ndjson(
        tmp_path / "accounts.jsonl",
        [
            ev(
                user_id=None,
                event_type="$groupidentify",
                groups={"Account": ["no-event-has-it"]},
                group_properties={"Account": {"no-event-has-it": {"name": "Quiet"}}},
            )
        ],
    )
    full, tracks_only = Transformer(), Transformer(identify_and_group=False)
    # It reads less, too: no user_properties.
    narrow = at.read_events([SAMPLE, account_only], only_needed=tracks_only.json_columns_needed())
    for batch, narrow_batch in zip(at.read_events([SAMPLE, account_only]), narrow, strict=True):
        assert narrow_batch["user_properties"].is_null().all()
        assert batch["user_properties"].is_not_null().any()
        assert_frame_equal(tracks_only.feed(narrow_batch), full.feed(batch))
    identifies_, groups = tracks_only.finish()
    all_identifies, all_groups = full.finish()
    assert tracks_only._users is None and tracks_only._pairs is None
    assert tracks_only._group_traits is None
    assert identifies_.is_empty() and all_identifies.height > 0
    expected = all_groups.filter(pl.col("userId").is_null()).select("groupId", "groupType")
    assert expected.rows() == [("no-event-has-it", "Account")]
    assert_frame_equal(groups.select("groupId", "groupType"), expected)
    assert tracks_only.report.to_dict() | {"calls": None} == full.report.to_dict() | {"calls": None}


def test_track_calls_only_read_user_properties_when_a_reference_needs_them() -> None:
    assert "user_properties" in Transformer().json_columns_needed()
    assert "user_properties" not in Transformer(identify_and_group=False).json_columns_needed()
    for config in (
        at.TransformConfig(user_id="user_properties.email"),
        at.TransformConfig(properties=("plan",)),  # a bare name is looked for there second
    ):
        tracks_only = Transformer(config, identify_and_group=False)
        assert "user_properties" in tracks_only.json_columns_needed()


def test_stream_run_reports_what_a_full_transform_reports(tmp_path: Path) -> None:
    run_ = at.run(SAMPLE, options=at.RunOptions(format="stream", out=tmp_path / "calls.ndjson"))
    assert run_.report.calls == {"track": run_.report.kept}
    full = at.transform(SAMPLE)
    assert (
        run_.report.skipped["account_group_calls"]
        == full.groups.filter(pl.col("userId").is_null()).height
    )
