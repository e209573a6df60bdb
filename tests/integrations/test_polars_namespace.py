"""The ``accoil`` polars namespace: the same rules as ``transform``, public names only."""

from __future__ import annotations

import gzip
import inspect
import io
import zipfile
from pathlib import Path

import orjson
import polars as pl
from polars.testing import assert_frame_equal

import accoil_transform as at
from accoil_transform.integrations.polars_namespace import AccoilFrame, AccoilLazyFrame

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "amplitude_export_sample.zip"

EVENTS = pl.DataFrame(
    {
        "EVENT_TYPE": ["Report Created", "Report Created", "Page Viewed"],
        "EVENT_TIME": ["2026-11-24 09:59:58.880000", "2026-11-24 10:00:01", "2026-11-24 10:01:00"],
        "USER_ID": ["u1", "null", "u2"],
        "GROUPS": ['{"Account": ["9", "10"]}', None, "{}"],
        "GROUP_PROPERTIES": ['{"Account": {"10": {"name": "Acme"}}}', None, "{}"],
    }
)


def test_the_lazy_namespace_has_every_method_of_the_eager_one() -> None:
    def public(cls: type) -> set[str]:
        return {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}

    assert public(AccoilLazyFrame) == public(AccoilFrame)


def test_primary_group_uses_the_call_field_names() -> None:
    out = EVENTS.accoil.primary_group()
    assert out.columns == [*EVENTS.columns, "groupId", "groupType", "groupTraits"]
    assert out.select("groupId", "groupType").rows() == [
        ("10", "Account"),
        (None, None),
        (None, None),
    ]
    assert out["groupTraits"].to_list() == [
        '[{"groupId":"10","traits":{"name":"Acme","group_type":"Account"}}]',
        "[]",
        "[]",
    ]


def test_the_report_is_the_typed_report_of_transform() -> None:
    report = EVENTS.accoil.report()
    assert isinstance(report, at.TransformReport)
    assert report.to_dict() == EVENTS.accoil.transform().report.to_dict()
    assert isinstance(EVENTS.lazy().accoil.report(), at.TransformReport)
    assert report.dropped["no_user_id"] == 1 and report.kept == 2


def sample_rows(n: int) -> pl.DataFrame:
    """The first ``n`` good lines of the sample's first member, read by polars itself."""
    with zipfile.ZipFile(SAMPLE) as zf:
        member = next(name for name in zf.namelist() if name.endswith(".gz"))
        text = gzip.decompress(zf.read(member))
    good = []
    for line in text.splitlines():
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        good.append(line)
    return pl.read_ndjson(io.BytesIO(b"\n".join(good[:n])), infer_schema_length=None)


def test_lazy_and_eager_give_the_same_frames() -> None:
    events = sample_rows(200)
    assert events.accoil.report().kept > 50
    for name in ("tracks", "identifies", "groups", "calls"):
        eager = getattr(events.accoil, name)()
        lazy = getattr(events.lazy().accoil, name)()
        assert isinstance(lazy, pl.LazyFrame)
        assert_frame_equal(lazy.collect(), eager)
    assert_frame_equal(
        events.lazy().accoil.canonical(source="s").collect(), events.accoil.canonical(source="s")
    )
