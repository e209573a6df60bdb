"""The documented examples in module docstrings run and print what they say."""

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = [
    "accoil_transform",
    "accoil_transform.integrations.polars_namespace",
    "accoil_transform.integrations.spark",
]
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
