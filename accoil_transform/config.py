"""What a user sets about the transform: selection and mapping (SPEC §2–3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

PropertyScope = Literal["column", "event_properties", "user_properties"]
_SCOPES: tuple[PropertyScope, ...] = ("event_properties", "user_properties")

#: User ids that count as missing, compared case-insensitively after trimming (SPEC §2).
PLACEHOLDER_USER_IDS: frozenset[str] = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "anonymous",
        "0",
        "-1",
        "00000000-0000-0000-0000-000000000000",
    }
)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """Where a value comes from: a top-level column, or a key inside a JSON object column.

    ``scope=None`` on a property means "look in ``event_properties``, then in
    ``user_properties``" (SPEC §3).
    """

    name: str
    scope: PropertyScope | None = None

    @classmethod
    def parse(cls, spec: str, *, default_scope: PropertyScope | None) -> FieldRef:
        """Parse ``"email"``, ``"user_properties.email"`` or ``"event_properties.plan"``."""
        spec = spec.strip()
        if not spec:
            raise ValueError("an empty field name is not allowed")
        for scope in _SCOPES:
            prefix = scope + "."
            if spec.startswith(prefix):
                name = spec[len(prefix) :]
                if not name:
                    raise ValueError(f"{spec!r} names no key inside {scope}")
                return cls(name, scope)
        return cls(spec, default_scope)

    def __str__(self) -> str:
        return self.name if self.scope in (None, "column") else f"{self.scope}.{self.name}"


def _as_refs(
    values: Sequence[str | FieldRef], default_scope: PropertyScope | None
) -> tuple[FieldRef, ...]:
    return tuple(
        v if isinstance(v, FieldRef) else FieldRef.parse(v, default_scope=default_scope)
        for v in values
    )


@dataclass(frozen=True)
class TransformConfig:
    """Selection and mapping settings; the defaults mirror the destination's own.

    Args:
        user_id: where ``userId`` comes from: a top-level column (``"user_id"``),
            ``"user_properties.<name>"`` or ``"event_properties.<name>"``.
        include_events: keep only these event types (empty: keep all).
        exclude_events: drop these event types.
        properties: additional properties, each looked up in ``event_properties``
            and then ``user_properties`` unless qualified. Attached to every track
            and, with the user's latest values, to identify traits.
        user_traits: user traits taken from ``user_properties`` for identify calls.
        event_rename: optional ``{amplitude event_type: accoil event name}``.
    """

    user_id: str | FieldRef = "user_id"
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()
    properties: tuple[str | FieldRef, ...] = ()
    user_traits: tuple[str, ...] = ("email", "name")
    event_rename: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept lists and plain strings from callers; store canonical tuples/refs.
        uid = self.user_id
        object.__setattr__(
            self,
            "user_id",
            uid if isinstance(uid, FieldRef) else FieldRef.parse(uid, default_scope="column"),
        )
        for name in ("include_events", "exclude_events", "user_traits"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        props = self.properties
        if isinstance(props, str):
            props = (props,)
        object.__setattr__(self, "properties", _as_refs(props, None))
        object.__setattr__(self, "event_rename", dict(self.event_rename))
        overlap = set(self.include_events) & set(self.exclude_events)
        if overlap:
            raise ValueError(
                f"event types both included and excluded: {', '.join(sorted(overlap))}"
            )

    @property
    def user_id_ref(self) -> FieldRef:
        assert isinstance(self.user_id, FieldRef)
        return self.user_id

    @property
    def property_refs(self) -> tuple[FieldRef, ...]:
        return self.properties  # type: ignore[return-value]

    def replace(self, **changes: Any) -> TransformConfig:
        """A copy with some settings changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "user_id":
                value = str(value)
            elif f.name == "properties":
                value = [str(v) for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
