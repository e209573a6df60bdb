"""Exceptions with enough context to find the bad input."""

from __future__ import annotations


class AccoilTransformError(Exception):
    """Base class of this package's errors."""


class InputError(AccoilTransformError, ValueError):
    """Input that can't be read: names the file (or member), the line or row, and why."""

    def __init__(self, source: str, message: str, *, line: int | None = None) -> None:
        self.source = source
        self.line = line
        self.reason = message
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {message}")


class ConfigError(AccoilTransformError, ValueError):
    """A setting that is missing, unknown or out of range."""
