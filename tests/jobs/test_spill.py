"""The track spill gives back every call once, in (event time, input order), window by window."""

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from accoil_transform.jobs import TrackSpill

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def batch(rows: list[tuple[int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_time": [T0 + timedelta(seconds=s) for s, _ in rows],
            "_row": [r for _, r in rows],
            "body": [f"{s}/{r}" for s, r in rows],
        },
        schema={"event_time": pl.Datetime("us", "UTC"), "_row": pl.UInt64, "body": pl.String},
    )


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(0, 40), min_size=0, max_size=60), min_size=1, max_size=6),
    window=st.integers(1, 50),
    memory=st.sampled_from([0, 1_500, 1 << 30]),  # all on disk, some runs, all in memory
    presorted=st.booleans(),  # batches sorted by the caller (is_sorted=True)
)
def test_merge_equals_a_global_sort(batches, window, memory, presorted):
    row = 0
    frames = []
    for seconds in batches:
        frames.append(batch([(s, row + i) for i, s in enumerate(seconds)]))
        row += len(seconds)
    with TrackSpill(memory_bytes=memory) as spill:
        for f in frames:
            if presorted:
                spill.add(f.sort(["event_time", "_row"]), is_sorted=True)
            else:
                spill.add(f)
        chunks = list(spill.iter_sorted(window_rows=window))
    merged = pl.concat(chunks) if chunks else batch([])
    expected = pl.concat(frames).sort(["event_time", "_row"])
    assert merged["body"].to_list() == expected["body"].to_list()
    assert all(c.height <= window for c in chunks)
    assert spill.rows == expected.height


def test_runs_larger_than_a_record_batch_are_read_in_slices(tmp_path):
    n = 20_000  # more than one 8,192-row record batch per run
    with TrackSpill(tmp_path, memory_bytes=0) as spill:
        spill.add(batch([(i % 977, i) for i in range(n)]))
        spill.add(batch([(i % 13, n + i) for i in range(n)]))
        assert list(tmp_path.iterdir())  # spilled to disk, in the given folder
        assert "on_disk=2" in repr(spill)
        out = pl.concat(list(spill.iter_sorted(window_rows=5_000)))
    assert out.height == 2 * n
    assert out.equals(out.sort(["event_time", "_row"]))
    assert not list(tmp_path.iterdir())  # cleaned up


def test_runs_stay_in_memory_within_the_budget_and_go_to_disk_past_it(tmp_path):
    first = batch([(i % 7, i) for i in range(1_000)])
    with TrackSpill(tmp_path, memory_bytes=first.estimated_size() * 3 // 2) as spill:
        spill.add(first)
        assert not list(tmp_path.iterdir()) and "on_disk=0" in repr(spill)
        spill.add(batch([(i % 5, 1_000 + i) for i in range(1_000)]))  # over the budget
        assert "on_disk=2" in repr(spill)
        spill.add(batch([(3, 2_000)]))  # a new run is in memory again
        assert "runs=3, on_disk=2" in repr(spill)
        out = pl.concat(list(spill.iter_sorted(window_rows=300)))
    assert out.height == 2_001
    assert out.equals(out.sort(["event_time", "_row"]))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    window=st.integers(1, 50),
    memory=st.sampled_from([0, 1_500, 1 << 30]),
    overlap=st.booleans(),  # one batch reaching back before the end of the one before
)
def test_runs_in_time_order_are_read_one_after_another(sizes, window, memory, overlap):
    """Input in time order (an export's hours one after another): every run starts where
    the one before ended, equal times included, and the merge gives them back in order."""
    frames, row, second = [], 0, 0
    for n in sizes:
        frames.append(batch([(second + i // 2, row + i) for i in range(n)]))
        row, second = row + n, second + (n - 1) // 2  # the next run starts at the same time
    if overlap and len(frames) > 1:
        frames[-1] = batch([(-1, row)])  # earlier than everything before it
    with TrackSpill(memory_bytes=memory) as spill:
        for f in frames:
            spill.add(f, is_sorted=True)
        assert spill._in_order() is not (overlap and len(frames) > 1)
        chunks = list(spill.iter_sorted(window_rows=window))
    expected = pl.concat(frames).sort(["event_time", "_row"])
    assert pl.concat(chunks)["body"].to_list() == expected["body"].to_list()
    assert all(0 < c.height <= window for c in chunks)
