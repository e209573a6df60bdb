"""Secrets that never show themselves: API keys, secret keys, passwords."""

from __future__ import annotations

import base64

from .errors import ConfigError


def check_key(value: str, what: str) -> str:
    """``value`` without surrounding spaces, tabs and newlines, if a header can carry it.

    Raises:
        ConfigError: it is empty, or holds a control character (a stray ``\\r`` from a
            Windows file) or a character outside latin-1; the message never shows it.
    """
    key = value.strip(" \t\n")  # not \r: a stray one means a Windows file, not a key
    if not key:
        raise ConfigError(f"{what} is empty")
    for position, char in enumerate(key, start=1):
        if ord(char) < 0x20 or ord(char) == 0x7F:
            raise ConfigError(
                f"{what} holds a control character (code {ord(char)}) at position "
                f"{position} of {len(key)}: copy it again without line breaks"
            )
        if ord(char) > 0xFF:
            raise ConfigError(
                f"{what} holds a character an HTTP header can't carry at position "
                f"{position} of {len(key)}: check the value you set"
            )
    return key


class Secret:
    """A string that does not show itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("the API key must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str, limit: int | None = None) -> str:
        """``text`` with the key (raw and base64 Basic form) masked, then cut to ``limit``
        characters (scrubbing first, so a cut never leaves a piece of the key)."""
        for form in self._forms():
            text = text.replace(form, "***")
        return text if limit is None else text[:limit]

    def _forms(self) -> tuple[str, ...]:
        b64 = base64.b64encode(f"{self._value}:".encode()).decode("ascii")
        return (self._value, b64, b64.rstrip("="))

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")
