"""Shared helpers of the rules tests: export-shaped events written as NDJSON files and
transformed through the realistic path (``at.read_events`` → ``at.transform``), and the
records and calls of a result as plain Python values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import accoil_transform as at

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


SEED_EVENT = {
    "groups": {"Account": ["210000"]},
    "group_properties": {
        "Account": {"210000": {"domain": "accoil.com", "name": "Released Import Test"}}
    },
}


def calls(res: at.TransformResult, fmt: str) -> list[dict[str, Any]]:
    frame = at.build_calls(res.tracks, res.identifies, res.groups, fmt)
    return [{**r, "body": json.loads(r["body"])} for r in frame.iter_rows(named=True)]
