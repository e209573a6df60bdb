"""What a user sets: the option classes of each stage, and every default in one place.

Each class is frozen and checks itself when it is made, raising :class:`ConfigError`.
The command line's settings table (TOML, ``ACCOIL_*`` variables, flags) reads its
defaults from the constants below, so a default is written once.

- :class:`TransformConfig`: selection and mapping (``docs/rules.md``);
- :class:`ReadOptions`: how inputs are read (chunk sizes, read-ahead);
- :class:`DeliveryOptions` (with :class:`RetryPolicy`): how calls are sent;
- :class:`RunOptions`: what a run writes or sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from ._retry import RetryPolicy
from .errors import ConfigError

# --------------------------------------------------------------------------- defaults

DEFAULT_USER_ID = "user_id"
DEFAULT_FORMAT = "v2"
DEFAULT_BASE_URL = "https://in.accoil.com"
DEFAULT_OUT = Path("accoil-dry-run.ndjson")
DEFAULT_LEDGER = Path("accoil-ledger.sqlite")
DEFAULT_DEAD_LETTER = Path("accoil-dead-letter.ndjson")
DEFAULT_EXPORT_DIR = Path("amplitude-export")
DEFAULT_BATCH_SIZE = 500
DEFAULT_CONCURRENCY = 64
#: Accoil publishes no limit behind its 413; 256 KiB is what its peers allow a message.
DEFAULT_MAX_BODY_BYTES = 256 << 10
DEFAULT_CIRCUIT_SECONDS = 30.0
#: Seconds to wait for a response; connecting waits at most :data:`MAX_CONNECT_TIMEOUT`.
DEFAULT_TIMEOUT = 30.0
MAX_CONNECT_TIMEOUT = 10.0
DEFAULT_AMPLITUDE_REGION = "us"

#: Events are transformed in chunks of about this many bytes of NDJSON text.
DEFAULT_CHUNK_BYTES = 128 << 20
#: Text is read and inflated in pieces of at most this many bytes. glibc maps every
#: block over 32 MB afresh, and each page of a fresh mapping faults on its first write;
#: smaller blocks come from its heap and are used again.
DEFAULT_READ_BYTES = 16 << 20
#: About this many bytes of lines go to msgspec in one call (it holds the GIL meanwhile).
DEFAULT_DECODE_BYTES = 256 << 10
#: Pieces the inflate thread makes ahead of the decode thread.
DEFAULT_INFLATE_AHEAD = 2
#: A Parquet file is sliced at row groups of about ``chunk_bytes`` ÷ this many rows:
#: about the size of an exported event, whose JSON columns make most of a row.
DEFAULT_TABLE_ROW_BYTES = 2048
#: A longer line is malformed: the reader skips to the next newline instead of holding it.
DEFAULT_MAX_LINE_BYTES = 64 << 20

PropertyScope = Literal["column", "event_properties", "user_properties"]
_SCOPES: tuple[PropertyScope, ...] = ("event_properties", "user_properties")

#: The nested Amplitude columns, always carried as JSON text.
JSON_COLUMNS: tuple[str, ...] = (
    "event_properties",
    "user_properties",
    "groups",
    "group_properties",
)


# --------------------------------------------------------------------------- transform


@dataclass(frozen=True, slots=True)
class FieldRef:
    """Where a value comes from: a top-level column, or a key inside a JSON object column.

    ``scope=None`` on a property means "look in ``event_properties``, then in
    ``user_properties``".
    """

    name: str
    scope: PropertyScope | None = None

    @classmethod
    def parse(cls, spec: str, *, default_scope: PropertyScope | None) -> FieldRef:
        """Parse ``"email"``, ``"user_properties.email"`` or ``"event_properties.plan"``.

        The column part matches in any case, as column names do (``USER_PROPERTIES.email``
        from an upper-case warehouse); the key after the dot is kept as written, as keys
        inside a JSON object are case-sensitive.
        """
        spec = spec.strip()
        if not spec:
            raise ConfigError("an empty field name is not allowed")
        for scope in _SCOPES:
            prefix = scope + "."
            if spec[: len(prefix)].lower() == prefix:
                name = spec[len(prefix) :]
                if not name:
                    raise ConfigError(f"{spec!r} names no key inside {scope}")
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


def _strings(name: str, value: str | Sequence[str]) -> tuple[str, ...]:
    """A tuple of strings from one string or a sequence of them."""
    values = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{name} must be a list of strings, got {value!r}")
    return values


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
        user_traits: keep only these keys of ``user_properties`` as identify traits
            (``None``, the default: every key).
        exclude_user_traits: drop these keys of ``user_properties`` from identify traits.
        event_rename: optional ``{amplitude event_type: accoil event name}``.

    Raises:
        ConfigError: a setting is malformed, or an event type is both included and
            excluded.
    """

    user_id: str | FieldRef = DEFAULT_USER_ID
    include_events: tuple[str, ...] = ()
    exclude_events: tuple[str, ...] = ()
    properties: tuple[str | FieldRef, ...] = ()
    user_traits: tuple[str, ...] | None = None
    exclude_user_traits: tuple[str, ...] = ()
    event_rename: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Accept lists and plain strings from callers; store canonical tuples and refs.
        uid = self.user_id
        if not isinstance(uid, FieldRef):
            if not isinstance(uid, str):
                raise ConfigError(f"user_id must be a string, got {uid!r}")
            uid = FieldRef.parse(uid, default_scope="column")
        object.__setattr__(self, "user_id", uid)
        for name in ("include_events", "exclude_events", "exclude_user_traits"):
            object.__setattr__(self, name, _strings(name, getattr(self, name)))
        if self.user_traits is not None:
            object.__setattr__(self, "user_traits", _strings("user_traits", self.user_traits))
        props = self.properties
        props = (props,) if isinstance(props, str | FieldRef) else tuple(props)
        object.__setattr__(self, "properties", _as_refs(props, None))
        rename = self.event_rename
        if not isinstance(rename, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in rename.items()
        ):
            raise ConfigError(f"event_rename must map strings to strings, got {rename!r}")
        object.__setattr__(self, "event_rename", dict(rename))
        overlap = set(self.include_events) & set(self.exclude_events)
        if overlap:
            raise ConfigError(
                f"event types both included and excluded: {', '.join(sorted(overlap))}"
            )

    @property
    def user_id_ref(self) -> FieldRef:
        """The user id source, parsed."""
        assert isinstance(self.user_id, FieldRef)
        return self.user_id

    @property
    def property_refs(self) -> tuple[FieldRef, ...]:
        """The additional properties, parsed."""
        return self.properties  # type: ignore[return-value]

    @property
    def user_id_column(self) -> str | None:
        """The top-level column the user id comes from (``None`` for a property)."""
        ref = self.user_id_ref
        return ref.name if ref.scope == "column" else None

    def json_columns_needed(self, *, user_traits: bool = True) -> frozenset[str]:
        """The nested JSON columns the rules read under this config (readers skip the rest).

        ``user_traits=False`` is for a run that makes no identify calls (a format of
        track calls only): ``user_properties`` is then read only if a property or the
        user id comes from it.
        """
        needed = {"groups", "group_properties"} | ({"user_properties"} if user_traits else set())
        for ref in (*self.property_refs, self.user_id_ref):
            if ref.scope is None:
                needed |= {"event_properties", "user_properties"}
            elif ref.scope != "column":
                needed.add(ref.scope)
        return frozenset(needed)

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
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out


# --------------------------------------------------------------------------- read


def _at_least(name: str, value: int | float, low: int | float) -> None:
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")


def _positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How inputs are read: the sizes of the pieces and chunks that bound memory.

    NDJSON text is inflated in pieces of ``read_bytes``, decoded ``decode_bytes`` at a
    time, and gathered into chunks of about ``chunk_bytes`` of text for the transform.
    """

    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    read_bytes: int = DEFAULT_READ_BYTES
    decode_bytes: int = DEFAULT_DECODE_BYTES
    inflate_ahead: int = DEFAULT_INFLATE_AHEAD
    table_row_bytes: int = DEFAULT_TABLE_ROW_BYTES
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    """A line longer than this is malformed (quarantined with its start), not held."""

    def __post_init__(self) -> None:
        for f in fields(self):
            _at_least(f.name, getattr(self, f.name), 1)
        if self.max_line_bytes < self.piece_bytes:  # lines are measured across pieces
            raise ConfigError(
                f"max_line_bytes must be at least the piece size ({self.piece_bytes:,}), "
                f"got {self.max_line_bytes:,}"
            )

    @property
    def piece_bytes(self) -> int:
        """The size of the pieces read and inflated: never more than a chunk."""
        return min(self.read_bytes, self.chunk_bytes)


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """How :func:`accoil_transform.send` delivers (the CLI flags map onto these)."""

    concurrency: int = DEFAULT_CONCURRENCY
    """Requests in flight at most."""
    max_rate: float | None = None
    """Calls per second at most (``None``: no limit besides the 429 slow-down)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = DEFAULT_TIMEOUT
    """Seconds to wait for each response (connecting: at most 10 s of it)."""
    ledger_path: str | Path | None = None
    """SQLite ledger of acknowledged ids; ``None`` sends everything."""
    dead_letter_path: str | Path | None = None
    """NDJSON file for calls that finally failed; ``None`` only counts them."""
    auth_failure_threshold: int = 20
    """Stop after this many 401/403 in a row with no success in between."""
    progress: bool = False
    """Show a progress bar on stderr, if it is a terminal."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """A call whose body is larger is never sent: it is dead-lettered as ``too_large``."""
    circuit_seconds: float = DEFAULT_CIRCUIT_SECONDS
    """Stop when no call succeeded for this long (only connection errors, timeouts, 5xx)."""
    retry_rejected: bool = False
    """Send again the calls an earlier run had rejected for good (they are skipped)."""

    def __post_init__(self) -> None:
        _at_least("concurrency", self.concurrency, 1)
        _positive("max_rate", self.max_rate)
        _positive("timeout", self.timeout)
        _at_least("auth_failure_threshold", self.auth_failure_threshold, 1)
        _at_least("max_body_bytes", self.max_body_bytes, 1)
        _positive("circuit_seconds", self.circuit_seconds)

    @property
    def timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts in seconds."""
        return (min(MAX_CONNECT_TIMEOUT, self.timeout), self.timeout)


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class RunOptions:
    """How a run writes or delivers its calls.

    With no ``api_key`` the run is a dry run: every call goes to ``out`` as NDJSON.
    """

    format: str = DEFAULT_FORMAT
    api_key: str | None = field(default=None, repr=False)
    dry_run: bool = False
    out: Path = DEFAULT_OUT
    report: Path | None = None
    quarantine: Path | None = None
    strict: bool = False
    base_url: str | None = None
    url: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    read: ReadOptions = field(default_factory=ReadOptions)

    def __post_init__(self) -> None:
        from .calls import FORMATS  # the formats module imports nothing back

        if self.format not in FORMATS:
            raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        _at_least("batch_size", self.batch_size, 1)
        for name in ("out", "report", "quarantine"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    @property
    def is_dry_run(self) -> bool:
        return self.dry_run or not self.api_key

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with some options changed."""
        return replace(self, **changes)
