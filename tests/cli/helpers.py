"""Running the command line as a user does: a subprocess with only the variables given."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any


def user_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``ACCOIL_*``/``AMPLITUDE_*`` variable, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ACCOIL_", "AMPLITUDE_"))}
    return base | dict(env or {})


def cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 180, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """``accoil-transform ARGS`` in a subprocess, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "accoil_transform", *args],
        capture_output=True, text=True, timeout=timeout, env=user_env(env), **kw,
    )  # fmt: skip
