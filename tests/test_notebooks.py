"""Every notebook in notebooks/ runs top to bottom in a real kernel, so none can rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS if p.name == "quickstart.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits TMPDIR: a notebook's temp folders land here and go with the test.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is stored with outputs; clear them before committing"
    )
    before = set(path.parent.iterdir())
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    left = sorted(p.name for p in set(path.parent.iterdir()) - before)
    assert not left, f"{path.name} left files beside it (write to a temp folder): {left}"
    if path.name == "quickstart.ipynb":
        assert any(p.name.startswith("accoil-quickstart-") for p in scratch.iterdir())
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    if path.name == "quickstart.ipynb":
        images = [
            o
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
            if "image/png" in o.get("data", {})
        ]
        assert len(images) == 1, "the plots cell should draw one figure"
