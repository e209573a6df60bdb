"""Every notebook in notebooks/ runs top to bottom in a real kernel, so none can rot; the
quickstart's figures are saved as PNGs and checked for what a reader needs."""

import itertools
import json
from pathlib import Path

import matplotlib.image
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
QUICKSTART = NOTEBOOKS[0].parent / "quickstart.ipynb"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def execute(nb: nbformat.NotebookNode, path: Path) -> None:
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The kernel inherits TMPDIR: a notebook's temp folders land here and go with the test.
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def test_there_are_notebooks():
    assert QUICKSTART in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, scratch: Path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is stored with outputs; clear them before committing"
    )
    before = set(path.parent.iterdir())
    execute(nb, path)
    left = sorted(p.name for p in set(path.parent.iterdir()) - before)
    assert not left, f"{path.name} left files beside it (write to a temp folder): {left}"
    if path.name == "quickstart.ipynb":
        assert any(p.name.startswith("accoil-quickstart-") for p in scratch.iterdir())
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    if path.name == "quickstart.ipynb":
        images = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
        assert len(images) == 3, "events over time, top accounts, drop reasons"


def test_quickstart_tells_its_story_in_steps():
    cells = nbformat.read(QUICKSTART, as_version=4).cells
    assert cells[0].cell_type == "markdown"
    for before, cell in itertools.pairwise(cells):
        if cell.cell_type == "code":
            assert before.cell_type == "markdown" and before.source.strip(), (
                f"a code cell without a markdown cell before it: {cell.source[:60]!r}"
            )


# Run after the notebook, in its kernel: save every figure it drew and describe its axes.
# The inline backend closes figures once shown unless told not to (a documented option).
KEEP_FIGURES = "%config InlineBackend.close_figures = False"
SAVE_FIGURES = """
import itertools
import json
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

_figures = []
for _n in plt.get_fignums():
    _fig = plt.figure(_n)
    _png = {folder!r} + f"/figure-{{_n}}.png"
    _fig.savefig(_png, dpi=100)
    _figures.append(
        {{
            "png": _png,
            "axes": [
                {{
                    "title": ax.get_title(),
                    "xlabel": ax.get_xlabel(),
                    "ylabel": ax.get_ylabel(),
                    "x_is_date": isinstance(ax.xaxis.get_major_locator(), mdates.DateLocator)
                    and isinstance(
                        ax.xaxis.get_major_formatter(),
                        (mdates.DateFormatter, mdates.AutoDateFormatter, mdates.ConciseDateFormatter),
                    ),
                    "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
                }}
                for ax in _fig.axes
            ],
        }}
    )
print(json.dumps(_figures))
"""


def test_quickstart_figures_are_labelled_pngs(tmp_path: Path, scratch: Path):
    nb = nbformat.read(QUICKSTART, as_version=4)
    figures = tmp_path / "figures"
    figures.mkdir()
    nb.cells.insert(0, nbformat.v4.new_code_cell(KEEP_FIGURES))
    nb.cells.append(nbformat.v4.new_code_cell(SAVE_FIGURES.format(folder=str(figures))))
    execute(nb, QUICKSTART)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    printed = [o for o in nb.cells[-1].outputs if o.output_type == "stream"]
    drawn = json.loads("".join(o.text for o in printed))

    assert len(drawn) == 3, "events over time, top accounts, drop reasons"
    assert sorted(p.name for p in figures.iterdir()) == sorted(Path(f["png"]).name for f in drawn)
    for figure in drawn:
        png = Path(figure["png"])
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, png.name
        pixels = np.asarray(matplotlib.image.imread(png))[..., :3]
        assert pixels.min() < 0.5 < pixels.max(), f"{png.name} is blank"
        assert figure["axes"], f"{png.name} has no axes"
        for ax in figure["axes"]:
            assert ax["title"] and ax["xlabel"] and ax["ylabel"], ax
            # Every count axis says what it counts, with its unit.
            assert "(count)" in ax["xlabel"] + ax["ylabel"], ax

    axes = [ax for figure in drawn for ax in figure["axes"]]
    over_time = [ax for ax in axes if ax["x_is_date"]]
    assert len(over_time) == 1, "events over time are drawn on a date axis"
    assert "UTC" in over_time[0]["xlabel"] and "hour" in over_time[0]["ylabel"]
    # Accounts by name with their id; drop reasons in plain words.
    ticks = [t for ax in axes for t in ax["yticklabels"]]
    assert "Acme (210000)" in ticks
    assert {"filtered out by event type", "duplicate", "no user id", "malformed line"} <= set(ticks)
    assert not [t for t in ticks if "_" in t], "raw report keys on an axis"
