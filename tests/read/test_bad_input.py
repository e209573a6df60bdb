"""Bad input: a clear error naming the file (and zip member), the line, and what was
expected; malformed lines among good ones are quarantined and counted, or fail in strict
mode."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import accoil_transform as at
from accoil_transform.cli import main as cli_main
from tests.read.helpers import read_all

PROJ = "203138"
MEMBER_9 = f"{PROJ}/{PROJ}_2025-07-01_9#627.json.gz"
MEMBER_10 = f"{PROJ}/{PROJ}_2025-07-01_10#70.json.gz"


@pytest.fixture(autouse=True)
def _in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def input_error(inputs: Any, config: at.TransformConfig | None = None) -> at.InputError:
    with pytest.raises(at.InputError) as info:
        read_all(inputs, config)
    return info.value


def _cut_gzip(events: list[dict[str, Any]], ndjson_bytes) -> bytes:
    data = gzip.compress(ndjson_bytes(events))
    return data[: len(data) // 2]


@pytest.fixture
def good(make_event) -> list[dict[str, Any]]:
    return [make_event(user_id=f"user-{i}", event_type=f"E{i % 3}") for i in range(200)]


# --------------------------------------------------------------------------- zips


def test_zip_without_any_member(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    with zipfile.ZipFile(path, "w"):
        pass
    err = input_error(path)
    assert err.source == str(path)
    assert str(path) in str(err)
    assert "no event members" in str(err)
    assert "<project>_<yyyy-mm-dd>_<H>#<n>.json.gz" in str(err)  # what was expected


def test_zip_with_only_markers_and_folders(tmp_path: Path, make_zip) -> None:
    path = make_zip(tmp_path / "markers.zip", {f"{PROJ}/complete": b"", "__MACOSX/._x": b"x"})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(f"{PROJ}/", b"")
    err = input_error(path)
    assert "no event members" in str(err) and str(path) in str(err)


def test_truncated_gzip_file(tmp_path: Path, good, ndjson_bytes) -> None:
    path = tmp_path / f"{PROJ}_2025-07-01_9#627.json.gz"
    path.write_bytes(_cut_gzip(good, ndjson_bytes))
    err = input_error(path)
    assert err.source == str(path)
    assert str(err).startswith(f"{path}: ")
    assert "truncated gzip" in str(err)


def test_truncated_gzip_zip_member(tmp_path: Path, good, make_zip, ndjson_bytes) -> None:
    path = make_zip(
        tmp_path / "export.zip", {MEMBER_9: good[:5], MEMBER_10: _cut_gzip(good, ndjson_bytes)}
    )
    frames = at.read_events(path)
    assert next(frames).height == 5  # the good member before it is read
    with pytest.raises(at.InputError) as info:
        # The member is streamed: its whole lines may come before the end is found cut.
        for frame in frames:
            assert frame["_source"].unique().to_list() == [f"{path}!{MEMBER_10}"]
    err = info.value
    assert err.source == f"{path}!{MEMBER_10}"
    assert f"{path}!{MEMBER_10}" in str(err)
    assert "truncated gzip" in str(err)


def test_corrupt_gzip_data(tmp_path: Path, good, ndjson_bytes) -> None:
    data = bytearray(gzip.compress(ndjson_bytes(good)))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    path = tmp_path / "corrupt.json.gz"
    path.write_bytes(bytes(data))
    err = input_error(path)
    assert err.source == str(path)
    assert "gzip" in str(err)


def test_corrupt_zip(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    err = input_error(path)
    assert err.source == str(path)
    assert "not a readable zip file" in str(err)


def test_zip_cut_in_the_middle(tmp_path: Path, good, make_zip) -> None:
    whole = make_zip(tmp_path / "whole.zip", {MEMBER_9: good, MEMBER_10: good}).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(whole[: len(whole) // 2])
    err = input_error(path)
    assert err.source == str(path)
    assert "zip" in str(err)


def test_zip_member_with_bad_crc(tmp_path: Path, good, make_zip) -> None:
    path = make_zip(tmp_path / "export.zip", {MEMBER_9: good})
    data = bytearray(path.read_bytes())
    at_byte = data.index(b"\x1f\x8b") + 100  # inside the stored member's bytes
    data[at_byte] ^= 0xFF
    path.write_bytes(bytes(data))
    err = input_error(path)
    assert err.source == f"{path}!{MEMBER_9}"
    assert "corrupt" in str(err)


# --------------------------------------------------------------------------- not NDJSON


def test_csv_file_without_a_header_row(tmp_path: Path) -> None:
    # A CSV with a header row naming event_type is read (tests/read/test_warehouse_forms.py);
    # without one (Redshift UNLOAD's default) it is neither, and the error lists the formats.
    path = tmp_path / "events.csv"
    path.write_text("Doc Opened,2025-07-01 00:00:00,u1\n")
    err = input_error(path)
    assert err.source == str(path)
    assert err.line == 1
    assert str(err).startswith(f"{path}, line 1: ")
    assert "not an NDJSON event file" in str(err)
    assert "JSON" in err.reason
    assert "CSV with a header row" in err.reason


def test_csv_named_json_in_a_zip(tmp_path: Path) -> None:
    member = f"{PROJ}/{PROJ}_2025-07-01_9#1.json.gz"
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, gzip.compress(b"\n\nevent_type,event_time\nx,y\n"))
    err = input_error(path)
    assert err.source == f"{path}!{member}"
    assert err.line == 3  # blank lines count
    assert f"{path}!{member}, line 3" in str(err)


def test_file_of_json_scalars(tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    path.write_text("1\n2\n")
    err = input_error(path)
    assert err.line == 1
    assert "expected a JSON object" in str(err)


def test_pretty_printed_json_array(tmp_path: Path, good) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps(good[:3], indent=2))
    err = input_error(path)
    assert err.source == str(path)
    assert err.line == 1


# --------------------------------------------------------------------------- tables


def test_missing_event_time_in_a_dataframe() -> None:
    df = pl.DataFrame({"event_type": ["a"], "user_id": ["u"]})
    err = input_error(df)
    assert err.source == "<DataFrame>"
    assert "missing required column" in str(err) and "'event_time'" in str(err)
    assert "found event_type, user_id" in str(err)


def test_missing_event_time_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pl.DataFrame({"EVENT_TYPE": ["a"], "USER_ID": ["u"]}).write_parquet(path)
    err = input_error(path)
    assert err.source == str(path)
    assert "'event_time'" in str(err) and str(path) in str(err)


def test_missing_user_id_column() -> None:
    df = pl.DataFrame({"event_type": ["a"], "event_time": ["2025-07-01 00:00:00"]})
    err = input_error(df)
    assert "'user_id'" in str(err)


def test_missing_configured_user_id_column() -> None:
    df = pl.DataFrame(
        {"event_type": ["a"], "event_time": ["2025-07-01 00:00:00"], "user_id": ["u"]}
    )
    err = input_error(df, at.TransformConfig(user_id="account_email"))
    assert "'account_email'" in str(err)


def test_event_time_as_booleans() -> None:
    # Integers are epoch times now (tests/read/test_warehouse_forms.py); a boolean is not.
    df = pl.DataFrame({"event_type": ["a"], "event_time": [True], "user_id": ["u"]})
    err = input_error(df)
    assert "'event_time'" in str(err) and "Boolean" in str(err)
    assert "expected a time" in str(err) and "epoch" in str(err) and "' UTC'" in str(err)


def test_event_type_as_a_list_column(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {"event_type": [["a", "b"]], "event_time": ["2025-07-01 00:00:00"], "user_id": ["u"]}
    )
    err = input_error(df)
    assert "'event_type'" in str(err) and "List" in str(err)
    assert "expected a string" in str(err)
    path = tmp_path / "list.parquet"
    df.write_parquet(path)
    assert input_error(path).source == str(path)


def test_truncated_parquet_file(tmp_path: Path) -> None:
    whole = tmp_path / "whole.parquet"
    pl.DataFrame(
        {
            "event_type": ["a"] * 100,
            "event_time": ["2025-07-01 00:00:00"] * 100,
            "user_id": ["u"] * 100,
        }
    ).write_parquet(whole)
    data = whole.read_bytes()
    path = tmp_path / "cut.parquet"
    path.write_bytes(data[: len(data) // 2])
    err = input_error(path)
    assert err.source == str(path)
    assert "parquet" in str(err).lower()


# --------------------------------------------------------------------------- paths


def test_path_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "events.json.gz"
    err = input_error(path)
    assert err.source == str(path)
    assert "no such file or folder" in str(err)


def test_glob_matching_nothing(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.json.gz")
    err = input_error(pattern)
    assert err.source == pattern
    assert "no file matches" in str(err)


def test_folder_with_only_markers(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    (root / PROJ).mkdir(parents=True)
    (root / PROJ / "complete").write_text("")
    (root / PROJ / f"{PROJ}_2025-07-01_9#1.json.gz").write_bytes(b"")
    err = input_error(root)
    assert err.source == str(root)


def test_one_missing_path_among_good_ones(tmp_path: Path, good, write_lines) -> None:
    ok = write_lines(tmp_path, good, "ok.json")
    missing = tmp_path / "missing.json"
    err = input_error([ok, missing])
    assert err.source == str(missing)


# --------------------------------------------------------------------------- malformed lines


def _mixed_lines(make_event) -> tuple[list[Any], dict[int, str]]:
    """Good events with four kinds of malformed line; returns (lines, {line: reason})."""
    missing_type = make_event(user_id="user-x")
    del missing_type["event_type"]
    lines: list[Any] = [
        make_event(user_id="user-1", event_type="Doc Opened"),
        '{"event_type": "Doc Opened", "user_id": "user-2",',  # invalid JSON (cut)
        make_event(user_id="user-2", event_type="Doc Opened"),
        '["Doc Opened", "2025-07-01 00:00:00"]',  # a JSON array
        missing_type,
        make_event(user_id="user-3", event_time="last tuesday"),
        make_event(user_id="user-3", event_type="Invite Sent"),
        make_event(user_id="user-4", event_time=None),
    ]
    reasons = {
        2: "not valid JSON",
        4: "expected a JSON object, got array",
        5: "event_type",
        6: "event_time",
        8: "event_time",
    }
    return lines, reasons


def test_malformed_lines_are_rows_with_a_reason(tmp_path: Path, make_event, write_lines) -> None:
    lines, reasons = _mixed_lines(make_event)
    path = write_lines(tmp_path, lines, "mixed.json")
    frame = read_all(path)
    assert frame.height == len(lines)
    assert frame["_line"].to_list() == list(range(1, len(lines) + 1))
    bad = {r["_line"]: r["_malformed"] for r in frame.iter_rows(named=True) if r["_malformed"]}
    assert set(bad) == set(reasons)
    for line, expected in reasons.items():
        assert expected in bad[line]
    assert "last tuesday" in bad[6]


def test_malformed_lines_are_counted_and_quarantined(
    tmp_path: Path, make_event, write_lines
) -> None:
    lines, reasons = _mixed_lines(make_event)
    path = write_lines(tmp_path, lines, "mixed.json")
    options = at.RunOptions(
        out=tmp_path / "calls.ndjson",
        report=tmp_path / "report.json",
        quarantine=tmp_path / "bad.ndjson",
    )
    result = at.run(path, options=options)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["rows_read"] == 8
    assert report["dropped"]["malformed"] == 5
    assert report["kept"] == 3
    assert report["rows_read"] == report["kept"] + sum(report["dropped"].values())
    assert result.to_dict()["calls"]["track"] == 3

    quarantined = [json.loads(x) for x in (tmp_path / "bad.ndjson").read_text().splitlines()]
    assert [q["line"] for q in quarantined] == sorted(reasons)
    for q in quarantined:
        assert q["source"] == str(path)
        assert reasons[q["line"]] in q["reason"]
        assert q["raw"]
    assert quarantined[0]["raw"] == lines[1]  # the text of an unparseable line is kept
    assert quarantined[1]["raw"] == lines[3]

    tracks = [json.loads(x)["body"] for x in (tmp_path / "calls.ndjson").read_text().splitlines()]
    track_users = [b["userId"] for b in tracks if "event" in b]
    assert sorted(track_users) == ["user-1", "user-2", "user-3"]


def test_default_quarantine_path_is_beside_out(tmp_path: Path, make_event, write_lines) -> None:
    lines, _ = _mixed_lines(make_event)
    path = write_lines(tmp_path, lines, "mixed.json")
    result = at.run(path, options=at.RunOptions(out=tmp_path / "out" / "calls.ndjson"))
    target = Path(result.to_dict()["outputs"]["quarantine"])
    assert target.parent == tmp_path / "out"
    assert len(target.read_text().splitlines()) == 5


def test_malformed_line_in_a_zip_member(tmp_path: Path, make_event, make_zip) -> None:
    path = make_zip(
        tmp_path / "export.zip",
        {
            MEMBER_9: [make_event(user_id="a"), make_event(user_id="b")],
            MEMBER_10: [make_event(user_id="c"), "{oops", make_event(user_id="d")],
        },
    )
    q = tmp_path / "q.ndjson"
    result = at.run(path, options=at.RunOptions(out=tmp_path / "calls.ndjson", quarantine=q))
    assert result.to_dict()["dropped"]["malformed"] == 1
    assert result.to_dict()["kept"] == 4
    (row,) = [json.loads(x) for x in q.read_text().splitlines()]
    assert row["source"] == f"{path}!{MEMBER_10}"
    assert row["line"] == 2
    assert row["raw"] == "{oops"


def test_malformed_rows_in_a_dataframe() -> None:
    df = pl.DataFrame(
        {
            "event_type": ["a", None, "c"],
            "event_time": ["2025-07-01 00:00:00", "2025-07-01 00:00:00", "not a time"],
            "user_id": ["u1", "u2", "u3"],
        }
    )
    result = at.transform(df)
    assert result.report.dropped["malformed"] == 2
    assert result.report.kept == 1
    assert result.quarantine["line"].to_list() == [2, 3]
    assert result.quarantine["source"].to_list() == ["<DataFrame>"] * 2


def test_strict_mode_fails_on_the_first_malformed_line(
    tmp_path: Path, make_event, write_lines
) -> None:
    lines, _ = _mixed_lines(make_event)
    path = write_lines(tmp_path, lines, "mixed.json")
    with pytest.raises(at.InputError) as info:
        at.run(path, options=at.RunOptions(out=tmp_path / "calls.ndjson", strict=True))
    err = info.value
    assert err.source == str(path)
    assert err.line == 2
    assert str(err).startswith(f"{path}, line 2: ")
    assert "not valid JSON" in str(err)
    assert not (tmp_path / "calls.ndjson").exists()


def test_strict_mode_names_the_zip_member_and_line(tmp_path: Path, make_event, make_zip) -> None:
    bad = make_event(user_id="x")
    del bad["event_type"]
    path = make_zip(
        tmp_path / "export.zip",
        {MEMBER_9: [make_event(user_id="a")], MEMBER_10: [make_event(user_id="b"), bad]},
    )
    with pytest.raises(at.InputError) as info:
        at.transform(path, strict=True)
    assert info.value.source == f"{path}!{MEMBER_10}"
    assert info.value.line == 2
    assert "event_type" in str(info.value)


def test_strict_mode_passes_clean_input(tmp_path: Path, good, write_lines) -> None:
    path = write_lines(tmp_path, good, "good.json")
    result = at.transform(path, strict=True)
    assert result.report.dropped.get("malformed", 0) == 0
    assert result.report.rows_read == len(good)


# --------------------------------------------------------------------------- CLI


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``accoil-transform run ARGS --out c.ndjson`` in a child process, as a user types it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCOIL_")}
    return subprocess.run(
        [sys.executable, "-m", "accoil_transform", "run", *args, "--out", str(tmp_path / "c.ndjson")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip


def test_cli_exit_code_3_names_the_file(tmp_path: Path, good, ndjson_bytes) -> None:
    path = tmp_path / "cut.json.gz"
    path.write_bytes(_cut_gzip(good, ndjson_bytes))
    proc = _run_cli(tmp_path, str(path))
    assert proc.returncode == 3, proc.stderr
    assert str(path) in proc.stderr
    assert "truncated gzip" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "c.ndjson").exists()


def test_cli_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.zip"
    assert cli_main(["run", str(missing), "--dry-run"]) == 3
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err


def test_cli_empty_glob(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = str(tmp_path / "export-*.zip")
    assert cli_main(["run", pattern, "--dry-run"]) == 3
    assert pattern in capsys.readouterr().err


def test_cli_zip_member_error(tmp_path: Path, good, make_zip, ndjson_bytes, capsys) -> None:
    path = make_zip(tmp_path / "export.zip", {MEMBER_9: _cut_gzip(good, ndjson_bytes)})
    assert cli_main(["run", str(path), "--dry-run", "--out", str(tmp_path / "c.ndjson")]) == 3
    assert f"{path}!{MEMBER_9}" in capsys.readouterr().err


def test_cli_quarantines_malformed_lines(tmp_path: Path, make_event, write_lines, capsys) -> None:
    lines, reasons = _mixed_lines(make_event)
    path = write_lines(tmp_path, lines, "mixed.json")
    q = tmp_path / "q.ndjson"
    code = cli_main(
        [
            "run",
            str(path),
            "--dry-run",
            "--out",
            str(tmp_path / "c.ndjson"),
            "--quarantine",
            str(q),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dropped"]["malformed"] == len(reasons)
    assert [json.loads(x)["line"] for x in q.read_text().splitlines()] == sorted(reasons)


def test_cli_strict(tmp_path: Path, make_event, write_lines) -> None:
    lines, _ = _mixed_lines(make_event)
    path = write_lines(tmp_path, lines, "mixed.json")
    proc = _run_cli(tmp_path, str(path), "--strict")
    assert proc.returncode == 3, proc.stderr
    assert f"{path}, line 2" in proc.stderr
    assert not (tmp_path / "c.ndjson").exists()


# --------------------------------------------------------------------------- nothing done is an error


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCOIL_", "AMPLITUDE_"))}
    return subprocess.run(
        [sys.executable, "-m", "accoil_transform", "run", *args],
        capture_output=True, text=True, timeout=180, cwd=cwd, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["empty.zip", "empty.json.gz", "empty.jsonl"])
def test_an_empty_file_is_an_error(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    done = _cli(name, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert f"{name}: the file is empty" in done.stderr and "Traceback" not in done.stderr


def test_a_file_whose_every_line_is_malformed_is_an_error(tmp_path: Path) -> None:
    lines = ['{"event_type": "E", "user_id": "u"}', "not json", '{"event_time": "2025-07-01"}']
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    done = _cli("bad.jsonl", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "every row (3) is malformed" in done.stderr and "line 1" in done.stderr


def test_a_user_id_column_no_row_has_is_an_error(tmp_path: Path) -> None:
    line = '{"event_type": "E", "event_time": "2025-07-01 00:00:00", "user_id": "u"}\n'
    (tmp_path / "e.jsonl").write_text(line * 3)
    done = _cli("e.jsonl", "--user-id", "account_owner", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "no row has the column 'account_owner'" in done.stderr
    anonymous = '{"event_type": "E", "event_time": "2025-07-01 00:00:00", "user_id": null}\n'
    (tmp_path / "anon.jsonl").write_text(line + anonymous)
    assert _cli("anon.jsonl", cwd=tmp_path).returncode == 0  # a null is a value: no_user_id


def test_a_filter_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    line = '{"event_type": "E", "event_time": "2025-07-01 00:00:00", "user_id": "u"}\n'
    (tmp_path / "e.jsonl").write_text(line)
    done = _cli("e.jsonl", "--exclude-event", "Typo Event", "--report", "r.json", cwd=tmp_path)
    assert done.returncode == 0
    assert "warning: event type 'Typo Event'" in done.stderr
    assert json.loads((tmp_path / "r.json").read_text())["warnings"]


# --------------------------------------------------------------------------- robustness


def test_deeply_nested_json_is_quarantined_and_the_run_goes_on(tmp_path: Path) -> None:
    deep = "[" * 1000 + "]" * 1000
    good = '{"event_type": "E", "event_time": "2025-07-01 00:00:00", "user_id": "u"}'
    bad = good[:-1] + f', "event_properties": {{"deep": {deep}}}}}'
    (tmp_path / "e.jsonl").write_text(good + "\n" + bad + "\n")
    done = _cli("e.jsonl", "--property", "deep", "--report", "r.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kept"] == 1 and report["dropped"]["malformed"] == 1
    (row,) = [json.loads(x) for x in (tmp_path / "accoil-dry-run.quarantine.ndjson").open()]
    assert "nested too deeply" in row["reason"] and row["raw"] == bad


def test_a_line_with_no_newline_is_capped_not_held(tmp_path: Path) -> None:
    good = b'{"event_type": "E", "event_time": "2025-07-01 00:00:00", "user_id": "u"}\n'
    path = tmp_path / "zeros.zip"
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("1/1_2025-07-01_0#1.json", "w", force_zip64=True) as member,
    ):
        member.write(good)
        for _ in range(40):
            member.write(b"0" * (1 << 20))
        member.write(b"\n" + good)
    options = at.ReadOptions(read_bytes=1 << 20, max_line_bytes=4 << 20)
    frame = pl.concat(list(at.read_events(path, options=options)))
    assert frame["_malformed"].is_null().sum() == 2
    (reason,) = frame["_malformed"].drop_nulls().to_list()
    assert "a line of 41,943,040 bytes, longer than max_line_bytes" in reason
    (raw,) = frame["_raw"].drop_nulls().to_list()
    assert set(raw) == {"0"} and len(raw) == 1024  # its start
