"""The track spill gives back every call once, in the order added, window by window."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from accoil_transform.jobs import TrackSpill


def batch(rows: range) -> pl.DataFrame:
    return pl.DataFrame({"_row": list(rows), "body": [f"call {r}" for r in rows]})


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=6),
    window=st.integers(1, 50),
    memory=st.sampled_from([0, 1_500, 1 << 30]),  # all on disk, some runs, all in memory
)
def test_calls_come_back_in_the_order_added(sizes, window, memory):
    frames, row = [], 0
    for n in sizes:
        frames.append(batch(range(row, row + n)))
        row += n
    with TrackSpill(memory_bytes=memory) as spill:
        for f in frames:
            spill.add(f)
        chunks = list(spill.windows(window_rows=window))
    assert [r for c in chunks for r in c["body"]] == [f"call {r}" for r in range(row)]
    assert all(0 < c.height <= window for c in chunks)
    assert spill.rows == row


def test_runs_larger_than_a_record_batch_are_read_in_slices(tmp_path):
    n = 20_000  # more than one 8,192-row record batch per run
    with TrackSpill(tmp_path, memory_bytes=0) as spill:
        spill.add(batch(range(n)))
        spill.add(batch(range(n, 2 * n)))
        assert list(tmp_path.iterdir())  # spilled to disk, in the given folder
        assert "on_disk=2" in repr(spill)
        out = pl.concat(list(spill.windows(window_rows=5_000)))
    assert out["_row"].to_list() == list(range(2 * n))
    assert not list(tmp_path.iterdir())  # cleaned up


def test_runs_stay_in_memory_within_the_budget_and_go_to_disk_past_it(tmp_path):
    first = batch(range(1_000))
    with TrackSpill(tmp_path, memory_bytes=first.estimated_size() * 3 // 2) as spill:
        spill.add(first)
        assert not list(tmp_path.iterdir()) and "on_disk=0" in repr(spill)
        spill.add(batch(range(1_000, 2_000)))  # over the budget
        assert "on_disk=2" in repr(spill)
        spill.add(batch(range(2_000, 2_001)))  # a new run is in memory again
        assert "runs=3, on_disk=2" in repr(spill)
        out = pl.concat(list(spill.windows(window_rows=300)))
    assert out["_row"].to_list() == list(range(2_001))
