"""Secrets that never show themselves: API keys, secret keys, passwords."""

from __future__ import annotations

import base64


class Secret:
    """A string that does not show itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("the API key must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with the key (raw, base64 Basic form and JSON-escaped) masked."""
        for form in self._forms():
            text = text.replace(form, "***")
        return text

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
