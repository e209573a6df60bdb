"""Fixtures of the read tests: the seven varied export rows, and an export zip of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.read.helpers import members_of, sample_events, scrambled


@pytest.fixture
def events(make_event) -> list[dict[str, Any]]:
    return sample_events(make_event)


@pytest.fixture
def export_zip(tmp_path: Path, events: list[dict[str, Any]], make_zip) -> Path:
    return make_zip(tmp_path / "export.zip", scrambled(members_of(events)))
