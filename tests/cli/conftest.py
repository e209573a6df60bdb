"""Fixtures of the CLI tests: a config file with transform, output and delivery settings."""

from pathlib import Path

import pytest

TOML = """
[transform]
user_id = "user_properties.email"
properties = ["plan_type", "event_properties.trial_end"]
exclude_events = ["session_start"]
event_rename = {"Report Created" = "Report_Created"}

[output]
format = "stream"

[delivery]
concurrency = 8
api_key = "toml-secret-key"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "accoil.toml"
    path.write_text(TOML)
    return path
