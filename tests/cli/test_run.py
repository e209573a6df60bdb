"""``accoil-transform run`` end to end on a generated, realistic Export API zip.

Expected calls come from the plain-Python reference (``tests/rules/reference.py``), fed the
same lines in the order the zip's members are read: (date, hour, n).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from accoil_transform.cli import main as cli_main
from tests.rules.reference import reference_transform, typed

REPO = Path(__file__).resolve().parents[2]
SAMPLE_ZIP = REPO / "sample_data" / "amplitude_export_sample.zip"
PROJ = "203138"
BASE = "https://in.accoil.com"
T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)

STREAM_KEYS = ["userId", "event", "timestamp", "properties", "groupTraits"]
TS_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


@pytest.fixture(autouse=True)
def _in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- the export


def _realistic_members(make_event) -> dict[str, list[Any]]:
    """An Export API download: 4 hourly members (H not zero-padded, n not dense) with
    accounts, multi-valued groups, anonymous and placeholder users, $identify rows,
    overlapping duplicates, several time shapes and one malformed line."""
    members: dict[str, list[Any]] = {}
    hours = [(9, 627), (9, 70), (10, 3), (11, 12)]
    user_plans = ["free", "pro", "enterprise"]
    accounts = {
        "1": {"name": "Acme", "plan": "enterprise", "seats": 40},
        "2": {"name": "Globex", "plan": "pro", "seats": 5, "beta": True},
        "10": {"name": "Initech", "tags": ["a", "b"], "owner": {"id": 7}},
        "9": {},
    }
    types = ["Doc Opened", "Report Run", "Invite Sent", "[Amplitude] Page Viewed", "Doc Shared 📄"]
    first_hour: list[dict[str, Any]] = []
    k = 0
    for hour, n in hours:
        rows: list[Any] = []
        for i in range(40):
            k += 1
            u = k % 13
            when = T0.replace(hour=hour) + timedelta(
                seconds=i * 61, microseconds=(k * 7919) % 1_000_000
            )
            shapes = [
                when.strftime("%Y-%m-%d %H:%M:%S.%f"),
                when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
                when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            ]
            ev = make_event(
                user_id=f"user-{u}",
                event_type=types[k % len(types)],
                event_time=shapes[k % 3],
                event_properties={"doc_id": f"d-{k}", **({"plan": "trial"} if k % 5 == 0 else {})},
                user_properties={
                    "email": f"user-{u}@example.com",
                    "plan": user_plans[u % 3],
                    **({"name": f"User {u}"} if u % 2 else {}),
                },
            )
            if u % 4 == 0:
                ids = ["1", "2"] if u % 8 == 0 else ["10", "9"]
                ev["groups"] = {"company_id": ids, "org name": ["Acme Ünïcode"]}
                ev["group_properties"] = {
                    "company_id": {i_: accounts[i_] for i_ in ids if accounts[i_]}
                }
            elif u % 4 == 1:
                ev["groups"] = {"company_id": "2"}  # a plain-string value, one id
                ev["group_properties"] = {"company_id": {"2": accounts["2"]}}
            elif u == 3:
                ev["groups"] = {"company_id": ["1"]}
                ev["group_properties"] = None  # groups without group_properties: no candidate
            if k % 17 == 0:
                ev["user_id"] = None  # anonymous
            elif k % 19 == 0:
                ev["user_id"] = [" anonymous ", "NULL", "0", "-1"][k % 4]
            elif k % 23 == 0:
                ev["event_type"] = "$identify"
                ev["user_properties"] = {"$set": {"plan": "pro"}}
            elif k % 29 == 0:
                ev["event_type"] = "$groupidentify"
            rows.append(ev)
        if hour == 9 and n == 627:
            first_hour = rows
        members[f"{PROJ}/{PROJ}_2025-07-01_{hour}#{n}.json.gz"] = rows
    # overlapping export: a later member repeats rows of an earlier one (same uuid),
    # and a row whose uuid is missing repeats ($insert_id, device_id)
    last = members[f"{PROJ}/{PROJ}_2025-07-01_11#12.json.gz"]
    last.extend(dict(e) for e in first_hour[:6])
    no_uuid = make_event(user_id="user-5", uuid=None, event_time="2025-07-01 11:59:00.000000")
    last.extend([no_uuid, dict(no_uuid)])
    last.insert(3, '{"event_type": "Doc Opened", "user_id": "user-1"')  # a cut line
    return members


def _read_order(members: dict[str, list[Any]]) -> list[Any]:
    """Lines in the order the reader must read members: (date, hour, n)."""

    def key(name: str) -> tuple[int, int]:
        hour_n = name.rsplit("_", 1)[1].removesuffix(".json.gz")
        h, n = hour_n.split("#")
        return int(h), int(n)

    return [line for name in sorted(members, key=key) for line in members[name]]


@pytest.fixture
def members(make_event) -> dict[str, list[Any]]:
    return _realistic_members(make_event)


@pytest.fixture
def export_zip(tmp_path: Path, members, make_zip) -> Path:
    # written in a scrambled order: the reader must sort by (date, hour, n)
    names = list(members)
    order = [names[3], names[0], names[2], names[1]]
    return make_zip(tmp_path / "export.zip", {n: members[n] for n in order})


@pytest.fixture
def lines(members) -> list[Any]:
    return _read_order(members)


# --------------------------------------------------------------------------- helpers


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ACCOIL_")}


def _dry_run(source: Path, fmt: str, out: Path, report: Path) -> subprocess.CompletedProcess:
    """``accoil-transform run SOURCE --dry-run`` in ``fmt``, run in ``out``'s folder."""
    args = [str(source), "--dry-run", "--format", fmt, "--out", str(out), "--report", str(report)]
    return run_subprocess(args, cwd=out.parent)


def run_subprocess(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "accoil_transform", "run", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or _env(),
        timeout=120,
    )


def read_calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def kinds_by_url(calls: list[dict[str, Any]], urls: dict[str, str]) -> list[str]:
    back = {v: k for k, v in urls.items()}
    return [back[c["url"]] for c in calls]


def canon(value: Any) -> str:
    """A comparable form of a JSON value that keeps JSON types (True != 1)."""
    return repr(typed(value))


def check_report(report: dict[str, Any]) -> None:
    assert set(report["dropped"]) == {"malformed", "duplicate", "no_user_id", "event_type"}
    placed = report["kept"] + report["trait_rows"] + sum(report["dropped"].values())
    assert report["rows_read"] == placed


def expected_stream(ref) -> list[str]:
    return sorted(canon({k: t[k] for k in STREAM_KEYS}) for t in ref.tracks)


# --------------------------------------------------------------------------- end to end


def _inputs() -> list[str]:
    return ["generated", *(["sample_data"] if SAMPLE_ZIP.exists() else [])]


@pytest.mark.parametrize("which", _inputs())
def test_stream_dry_run_end_to_end(tmp_path: Path, export_zip: Path, lines, which: str) -> None:
    source = export_zip if which == "generated" else SAMPLE_ZIP
    out, report_path = tmp_path / "calls.ndjson", tmp_path / "r.json"
    proc = _dry_run(source, "stream", out, report_path)
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stderr
    report = json.loads(report_path.read_text())
    check_report(report)
    calls = read_calls(out)
    assert len(calls) == report["kept"] == report["calls"]["track"]
    assert report["calls"] == {"track": report["kept"]}
    assert report["rows_read"] > 0 and report["kept"] > 0
    for call in calls:
        assert list(call) == ["method", "url", "body"]
        assert call["method"] == "POST"
        assert call["url"] == f"{BASE}/v2/track"
        body = call["body"]
        assert list(body) == STREAM_KEYS
        assert isinstance(body["userId"], str) and body["userId"] == body["userId"].strip()
        assert body["timestamp"][-1] == "Z" and len(body["timestamp"]) == 24
        assert isinstance(body["properties"], dict)
        assert isinstance(body["groupTraits"], list) and len(body["groupTraits"]) <= 1
        for gt in body["groupTraits"]:
            assert list(gt) == ["groupId", "traits"]
            assert "group_type" in gt["traits"]
    if which == "generated":
        ref = reference_transform(lines)
        assert report["rows_read"] == ref.rows_read == len(lines)
        assert report["dropped"] == ref.dropped
        assert report["kept"] == ref.kept and report["trait_rows"] == ref.trait_rows
        assert report["skipped"] == {"account_group_calls": len(ref.account_groups)}
        assert sorted(canon(c["body"]) for c in calls) == expected_stream(ref)


def test_generated_export_exercises_every_rule(lines) -> None:
    """Guard for the fixture itself: the export has something for each rule."""
    ref = reference_transform(lines, include_events=["Doc Opened", "Report Run"])
    assert all(n > 0 for n in ref.dropped.values()), ref.dropped
    assert any(len(t["groupTraits"]) == 1 for t in ref.tracks)
    assert any(t["groupTraits"] == [] for t in ref.tracks)
    assert {t["groupTraits"][0]["groupId"] for t in ref.tracks if t["groupTraits"]} >= {
        "1",
        "10",
        "2",
    }


def test_v2_dry_run_identify_then_group_then_track(tmp_path: Path, export_zip: Path, lines) -> None:
    out, report_path = tmp_path / "v2.ndjson", tmp_path / "r.json"
    proc = _dry_run(export_zip, "v2", out, report_path)
    assert proc.returncode == 0, proc.stderr
    calls = read_calls(out)
    urls = {k: f"{BASE}/v2/{k}" for k in ("identify", "group", "track")}
    kinds = kinds_by_url(calls, urls)
    n_identify, n_group = kinds.count("identify"), kinds.count("group")
    assert kinds == ["identify"] * n_identify + ["group"] * n_group + ["track"] * kinds.count(
        "track"
    )
    report = json.loads(report_path.read_text())
    check_report(report)
    assert report["calls"] == {"identify": n_identify, "group": n_group, "track": report["kept"]}

    ref = reference_transform(lines)
    bodies = [c["body"] for c in calls]
    identifies = {b["userId"]: b for b in bodies[:n_identify]}
    assert len(identifies) == n_identify == len(ref.identifies)
    for uid, exp in ref.identifies.items():
        assert list(identifies[uid]) == ["userId", "traits", "timestamp"]
        assert canon(identifies[uid]["traits"]) == canon(exp["traits"]), uid
        assert identifies[uid]["timestamp"] == exp["timestamp"]
    group_bodies = bodies[n_identify : n_identify + n_group]
    groups = {(b["userId"], b["groupId"]): b for b in group_bodies if "userId" in b}
    assert len(groups) == len(ref.groups)
    accounts = {b["groupId"]: b for b in group_bodies if "userId" not in b}
    assert n_group == len(ref.groups) + len(ref.account_groups) == len(groups) + len(accounts)
    for (_, gid), exp in ref.account_groups.items():
        assert list(accounts[gid]) == ["groupId", "traits", "timestamp"]
        assert canon(accounts[gid]["traits"]) == canon(exp["traits"]), gid
        assert accounts[gid]["timestamp"] == exp["timestamp"]
    for pair, exp in ref.groups.items():
        assert list(groups[pair]) == ["groupId", "userId", "traits", "timestamp"]
        assert canon(groups[pair]["traits"]) == canon(exp["traits"]), pair
        assert groups[pair]["timestamp"] == exp["timestamp"]
    tracks = bodies[n_identify + n_group :]
    assert all(list(b) == ["userId", "event", "timestamp"] for b in tracks)
    assert sorted(canon(b) for b in tracks) == sorted(
        canon({k: t[k] for k in ("userId", "event", "timestamp")}) for t in ref.tracks
    )


def test_v1_dry_run_snake_case_epoch_ms_and_no_api_key(
    tmp_path: Path,
    export_zip: Path,
    lines,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "ak-live-0123456789abcdef"
    monkeypatch.setenv("ACCOIL_API_KEY", secret)
    out, v2_out = tmp_path / "v1.ndjson", tmp_path / "v2.ndjson"
    report_path = tmp_path / "r.json"
    assert (
        cli_main(
            [
                "run",
                str(export_zip),
                "--dry-run",
                "--format",
                "v1",
                "--out",
                str(out),
                "--report",
                str(report_path),
            ]
        )
        == 0
    )
    assert cli_main(["run", str(export_zip), "--dry-run", "--out", str(v2_out)]) == 0
    captured = capsys.readouterr()
    for text in (out.read_text(), report_path.read_text(), captured.out, captured.err):
        assert secret not in text
        assert "api_key" not in text

    calls = read_calls(out)
    urls = {
        "identify": f"{BASE}/v1/users",
        "group": f"{BASE}/v1/groups",
        "track": f"{BASE}/v1/events",
    }
    kinds = kinds_by_url(calls, urls)
    assert kinds == sorted(kinds, key=["identify", "group", "track"].index)
    keys = {
        "identify": ["user_id", "traits", "timestamp"],
        "group": ["group_id", "user_id", "traits", "timestamp"],
        "track": ["user_id", "event", "timestamp"],
    }
    for kind, call in zip(kinds, calls, strict=True):
        assert list(call["body"]) == keys[kind]
        assert isinstance(call["body"]["timestamp"], int)

    # the same calls as v2, with epoch-ms times
    v2 = read_calls(v2_out)
    account_only = [c for c in v2 if "groupId" in c["body"] and "userId" not in c["body"]]
    assert account_only  # v1 makes no account-only group calls, and the report says so
    assert len(v2) == len(calls) + len(account_only)

    def ms(iso: str) -> int:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)

    v2_tracks = sorted(
        (b["userId"], b["event"], ms(b["timestamp"]))
        for b in (c["body"] for c in v2)
        if "event" in b
    )
    v1_tracks = sorted(
        (b["user_id"], b["event"], b["timestamp"])
        for b in (c["body"] for c in calls)
        if "event" in b
    )
    assert v1_tracks == v2_tracks
    assert len(v1_tracks) == reference_transform(lines).kept


def test_segment_dry_run_has_type(tmp_path: Path, export_zip: Path) -> None:
    out = tmp_path / "segment.ndjson"
    assert (
        cli_main(["run", str(export_zip), "--dry-run", "--format", "segment", "--out", str(out)])
        == 0
    )
    calls = read_calls(out)
    types = [c["body"]["type"] for c in calls]
    assert set(types) == {"identify", "group", "track"}
    assert types == sorted(types, key=["identify", "group", "track"].index)
    for c in calls:
        assert c["url"] == f"{BASE}/segment"
        assert c["method"] == "POST"
        assert "userId" in c["body"] and "timestamp" in c["body"]
        if c["body"]["type"] == "track":
            assert "event" in c["body"]
        if c["body"]["type"] == "group":
            assert "groupId" in c["body"]


def test_stream_url_and_base_url(tmp_path: Path, export_zip: Path) -> None:
    hook = "https://hooks.example.test/accoil"
    out = tmp_path / "s.ndjson"
    assert (
        cli_main(["run", str(export_zip), "--format", "stream", "--url", hook, "--out", str(out)])
        == 0
    )
    assert {c["url"] for c in read_calls(out)} == {hook}
    out2 = tmp_path / "b.ndjson"
    assert (
        cli_main(["run", str(export_zip), "--base-url", "http://127.0.0.1:9/", "--out", str(out2)])
        == 0
    )
    assert {c["url"] for c in read_calls(out2)} == {
        f"http://127.0.0.1:9/v2/{k}" for k in ("identify", "group", "track")
    }


def test_without_api_key_it_is_a_dry_run_to_the_default_path(
    tmp_path: Path, export_zip: Path, lines
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = run_subprocess([str(export_zip)], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "dry run: nothing was sent" in proc.stderr
    default = work / "accoil-dry-run.ndjson"
    assert default.exists()
    calls = read_calls(default)
    ref = reference_transform(lines)
    assert len(calls) == len(ref.identifies) + len(ref.groups) + len(ref.account_groups) + ref.kept
    # the quarantine of the malformed line lands beside it, nothing else is written
    assert sorted(p.name for p in work.iterdir()) == [
        "accoil-dry-run.ndjson",
        "accoil-dry-run.quarantine.ndjson",
    ]
    # the summary is for people: on stderr, so that stdout stays clean for pipes
    assert "rows read" in proc.stderr and proc.stdout == ""


# --------------------------------------------------------------------------- flags


def _stream(
    tmp_path: Path, export_zip: Path, *flags: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out, rep = tmp_path / "f.ndjson", tmp_path / "f.json"
    code = cli_main(
        [
            "run",
            str(export_zip),
            "--format",
            "stream",
            "--out",
            str(out),
            "--report",
            str(rep),
            *flags,
        ]
    )
    assert code == 0
    return [c["body"] for c in read_calls(out)], json.loads(rep.read_text())


def test_include_event(tmp_path: Path, export_zip: Path, lines) -> None:
    bodies, report = _stream(
        tmp_path, export_zip, "--include-event", "Doc Opened", "--include-event", "Doc Shared 📄"
    )
    assert {b["event"] for b in bodies} == {"Doc Opened", "Doc Shared 📄"}
    ref = reference_transform(lines, include_events=["Doc Opened", "Doc Shared 📄"])
    assert report["dropped"] == ref.dropped
    assert sorted(canon(b) for b in bodies) == expected_stream(ref)


def test_exclude_event(tmp_path: Path, export_zip: Path, lines) -> None:
    bodies, report = _stream(tmp_path, export_zip, "--exclude-event", "[Amplitude] Page Viewed")
    assert "[Amplitude] Page Viewed" not in {b["event"] for b in bodies}
    ref = reference_transform(lines, exclude_events=["[Amplitude] Page Viewed"])
    assert report["dropped"]["event_type"] == ref.dropped["event_type"] > 0
    assert sorted(canon(b) for b in bodies) == expected_stream(ref)


def test_property_flags(tmp_path: Path, export_zip: Path, lines) -> None:
    bodies, _ = _stream(
        tmp_path, export_zip, "--property", "plan", "--property", "event_properties.doc_id"
    )
    ref = reference_transform(lines, properties=["plan", "event_properties.doc_id"])
    assert sorted(canon(b) for b in bodies) == expected_stream(ref)
    # event_properties.plan wins over user_properties.plan
    assert {b["properties"].get("plan") for b in bodies} == {
        "trial",
        "free",
        "pro",
        "enterprise",
        None,
    }
    assert (
        sum("doc_id" in b["properties"] for b in bodies) == len(bodies) - 1
    )  # the no-uuid row has none

    out = tmp_path / "v2.ndjson"
    assert cli_main(["run", str(export_zip), "--out", str(out), "--property", "plan"]) == 0
    identifies = {
        c["body"]["userId"]: c["body"] for c in read_calls(out) if c["url"].endswith("/identify")
    }
    ref_plan = reference_transform(lines, properties=["plan"])
    assert set(identifies) == set(ref_plan.identifies)
    for uid, exp in ref_plan.identifies.items():
        assert canon(identifies[uid]["traits"]) == canon(exp["traits"]), uid
    assert any("plan" in b["traits"] for b in identifies.values())


def test_user_id_from_user_properties(tmp_path: Path, export_zip: Path, lines) -> None:
    bodies, report = _stream(tmp_path, export_zip, "--user-id", "user_properties.email")
    ref = reference_transform(lines, user_id="user_properties.email")
    assert report["kept"] == ref.kept
    assert report["dropped"] == ref.dropped
    assert all(b["userId"].endswith("@example.com") for b in bodies)
    assert sorted(canon(b) for b in bodies) == expected_stream(ref)


def test_run_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "accoil_transform", "run", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 0
    for flag in (
        "--dry-run",
        "--out",
        "--format",
        "--user-id",
        "--include-event",
        "--exclude-event",
        "--property",
        "--report",
        "--strict",
        "--quarantine",
    ):
        assert flag in proc.stdout
    assert proc.stdout.startswith("usage: accoil-transform run")


def test_usage_errors_exit_2(
    tmp_path: Path, export_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(["run"])
    assert info.value.code == 2
    assert cli_main(["run", str(export_zip), "--format", "json"]) == 2
    assert "format" in capsys.readouterr().err
    assert cli_main(["run", str(export_zip), "--include-event", "A", "--exclude-event", "A"]) == 2
    assert "A" in capsys.readouterr().err
    assert not (tmp_path / "accoil-dry-run.ndjson").exists()


def test_several_inputs_and_a_glob(tmp_path: Path, members, make_zip, lines) -> None:
    """Two zips given as a glob read as one input: duplicates across them are dropped."""
    names = list(members)
    make_zip(tmp_path / "part-1.zip", {n: members[n] for n in names[:2]})
    make_zip(tmp_path / "part-2.zip", {n: members[n] for n in names[2:]})
    out, rep = tmp_path / "g.ndjson", tmp_path / "g.json"
    assert (
        cli_main(
            [
                "run",
                str(tmp_path / "part-*.zip"),
                "--format",
                "stream",
                "--out",
                str(out),
                "--report",
                str(rep),
            ]
        )
        == 0
    )
    ref = reference_transform(lines)
    report = json.loads(rep.read_text())
    assert report["dropped"] == ref.dropped
    assert sorted(canon(c["body"]) for c in read_calls(out)) == expected_stream(ref)
