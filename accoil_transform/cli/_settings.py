"""Settings from a TOML file, ``ACCOIL_*`` environment variables and flags; flags win.

One flat table of every setting a user can make, each with its TOML section, its
environment variable and its default, so that ``accoil-transform config check`` can
print the effective values and where each came from.

A TOML file looks like::

    [transform]
    user_id = "user_properties.email"
    properties = ["plan_type", "trial_end"]
    exclude_events = ["session_start"]

    [output]
    format = "v2"

    [delivery]
    concurrency = 32
    max_rate = 200
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config as defaults
from ..config import DeliveryOptions, RetryPolicy, RunOptions, TransformConfig
from ..errors import ConfigError
from ..read._database import DEFAULT_WATERMARK, DatabaseSource, check_column, check_uri


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its TOML ``section``, type, default and help text."""

    name: str
    section: str
    kind: type
    default: Any
    help: str
    secret: bool = False
    choices: tuple[str, ...] = ()
    """The values allowed, compared without regard to case (empty: any)."""

    @property
    def env(self) -> str:
        return "ACCOIL_" + self.name.upper()


def _s(
    name: str,
    section: str,
    kind: type,
    default: Any,
    help: str,
    secret: bool = False,
    choices: tuple[str, ...] = (),
) -> Setting:
    return Setting(name, section, kind, default, help, secret, choices)


SETTINGS: tuple[Setting, ...] = (
    _s(
        "user_id",
        "transform",
        str,
        defaults.DEFAULT_USER_ID,
        "user id source: a column, user_properties.NAME or event_properties.NAME",
    ),
    _s("include_events", "transform", list, [], "keep only these event types (empty: all)"),
    _s("exclude_events", "transform", list, [], "drop these event types"),
    _s(
        "properties",
        "transform",
        list,
        [],
        "additional properties (event_properties, then user_properties)",
    ),
    _s(
        "user_traits",
        "transform",
        list,
        None,
        "keep only these user_properties keys as identify traits (default: all)",
    ),
    _s(
        "exclude_user_traits",
        "transform",
        list,
        [],
        "drop these user_properties keys from identify traits",
    ),
    _s("event_rename", "transform", dict, {}, "rename event types: {amplitude name = accoil name}"),
    _s(
        "format",
        "output",
        str,
        defaults.DEFAULT_FORMAT,
        "call format",
        choices=("v2", "stream", "segment", "v1"),
    ),
    _s("out", "output", Path, defaults.DEFAULT_OUT, "dry-run NDJSON file"),
    _s("report", "output", Path, None, "write the run report as JSON here"),
    _s("quarantine", "output", Path, None, "malformed rows file (default: beside out)"),
    _s("strict", "output", bool, False, "fail on the first malformed row"),
    _s(
        "api_key",
        "delivery",
        str,
        None,
        "Accoil API key; without one a run is a dry run",
        secret=True,
    ),
    _s(
        "base_url",
        "delivery",
        str,
        None,
        f"Accoil base URL (default: {defaults.DEFAULT_BASE_URL}; stg_ keys: staging)",
    ),
    _s("url", "delivery", str, None, "post every call to this URL (stream format target)"),
    _s(
        "batch_size",
        "delivery",
        int,
        defaults.DEFAULT_BATCH_SIZE,
        "calls per batch (unit of progress and checkpointing)",
    ),
    _s("concurrency", "delivery", int, defaults.DEFAULT_CONCURRENCY, "requests in flight"),
    _s("max_rate", "delivery", float, None, "at most this many calls per second"),
    _s("timeout", "delivery", float, defaults.DEFAULT_TIMEOUT, "seconds to wait for each response"),
    _s(
        "max_attempts",
        "delivery",
        int,
        RetryPolicy().max_attempts,
        "tries per call, the first included (retryable failures only)",
    ),
    _s(
        "max_retry_seconds",
        "delivery",
        float,
        RetryPolicy().max_total_seconds,
        "give up retrying a call after this many seconds",
    ),
    _s(
        "max_body_bytes",
        "delivery",
        int,
        defaults.DEFAULT_MAX_BODY_BYTES,
        "a call with a larger body is never sent (dead-lettered as too_large)",
    ),
    _s(
        "circuit_seconds",
        "delivery",
        float,
        defaults.DEFAULT_CIRCUIT_SECONDS,
        "stop when no call succeeded for this long (Accoil down or unreachable)",
    ),
    _s(
        "retry_rejected",
        "delivery",
        bool,
        False,
        "send again the calls Accoil rejected for good in an earlier run",
    ),
    _s(
        "ledger",
        "delivery",
        Path,
        defaults.DEFAULT_LEDGER,
        "SQLite file of acknowledged calls and sync state",
    ),
    _s(
        "dead_letter",
        "delivery",
        Path,
        defaults.DEFAULT_DEAD_LETTER,
        "NDJSON file of rejected calls",
    ),
    _s(
        "amplitude_api_key",
        "amplitude",
        str,
        None,
        "Amplitude project API key (export)",
        secret=True,
    ),
    _s(
        "amplitude_secret_key",
        "amplitude",
        str,
        None,
        "Amplitude project secret key (export)",
        secret=True,
    ),
    _s(
        "amplitude_region",
        "amplitude",
        str,
        defaults.DEFAULT_AMPLITUDE_REGION,
        "Amplitude data region",
        choices=("us", "eu"),
    ),
    _s(
        "amplitude_base_url",
        "amplitude",
        str,
        None,
        "Export API URL override (default: the region's host)",
    ),
    _s(
        "export_dir",
        "amplitude",
        Path,
        defaults.DEFAULT_EXPORT_DIR,
        "where sync stores exported hours",
    ),
    _s(
        "uri",
        "source",
        str,
        None,
        "database to read: postgresql://, snowflake://, bigquery://, sqlite:///PATH, "
        "duckdb:///PATH (its password is never shown)",
        secret=True,
    ),
    _s("table", "source", str, None, "database table to read (schema.table allowed)"),
    _s("query", "source", str, None, "SQL query to read instead of a table"),
    _s(
        "watermark",
        "source",
        str,
        DEFAULT_WATERMARK,
        "sync from a table: the column whose largest value read is the state",
    ),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
#: Environment variables without the ``ACCOIL_`` prefix: every ``--amplitude-*`` flag
#: also reads ``AMPLITUDE_*`` (the names other tools already use for the keys).
ENV_ALIASES: dict[str, str] = {
    "amplitude_api_key": "AMPLITUDE_API_KEY",
    "amplitude_secret_key": "AMPLITUDE_SECRET_KEY",
    "amplitude_region": "AMPLITUDE_REGION",
    "amplitude_base_url": "AMPLITUDE_BASE_URL",
}
MASK = "****"


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    if value is None:
        return None
    kind = setting.kind
    if setting.choices:
        chosen = str(value).strip().lower()
        if chosen not in setting.choices:
            raise ConfigError(
                f"{origin}: {setting.name} must be one of {', '.join(setting.choices)}, "
                f"got {value!r}"
            )
        return chosen
    try:
        if kind is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return list(value)
            raise TypeError
        if kind is dict:
            if isinstance(value, str):
                import json

                value = json.loads(value)
            if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
                return dict(value)
            raise TypeError
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in (
                "1",
                "true",
                "yes",
                "on",
                "0",
                "false",
                "no",
                "off",
            ):
                return value.lower() in ("1", "true", "yes", "on")
            raise TypeError
        if kind is int and isinstance(value, bool):
            raise TypeError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: {setting.name} must be {_kind_name(kind)}, got {value!r}"
            if not setting.secret
            else f"{origin}: {setting.name} must be {_kind_name(kind)}"
        ) from None


def _unknown_variables(env: Mapping[str, str]) -> list[str]:
    """A warning per ``ACCOIL_*`` variable that no setting reads (a typo, most often),
    with the closest known name."""
    import difflib

    known = [s.env for s in SETTINGS]
    warnings = []
    for var in sorted(env):
        if var.startswith("ACCOIL_") and var not in known:
            close = difflib.get_close_matches(var, known, n=1, cutoff=0.6)
            hint = f"; did you mean ${close[0]}?" if close else ""
            warnings.append(f"${var} is not a setting and is ignored{hint}")
    return warnings


def _kind_name(kind: type) -> str:
    return {
        list: "a list of strings",
        dict: "a table of strings",
        bool: "true or false",
        int: "an integer",
        float: "a number",
        Path: "a path",
        str: "a string",
    }[kind]


class Settings:
    """Effective settings and where each value came from (default, file, env or flag)."""

    def __init__(self, values: dict[str, Any], origins: dict[str, str]) -> None:
        self._values = values
        self._origins = origins
        #: Things a person should fix, such as an ``ACCOIL_*`` variable no setting reads.
        self.warnings: list[str] = []
        self._validate()

    @classmethod
    def load(
        cls,
        config_file: str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        flags: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Resolve defaults < TOML file < ``ACCOIL_*`` environment < flags (``None`` = unset)."""
        env = os.environ if env is None else env
        values = {s.name: s.default for s in SETTINGS}
        origins = dict.fromkeys(values, "default")
        if config_file is not None:
            for name, value in _read_toml(Path(config_file)).items():
                values[name] = _coerce(BY_NAME[name], value, str(config_file))
                origins[name] = str(config_file)
        warnings = _unknown_variables(env)
        for s in SETTINGS:
            for var in (s.env, ENV_ALIASES.get(s.name)):
                if var and env.get(var) not in (None, ""):
                    values[s.name] = _coerce(s, env[var], f"${var}")
                    origins[s.name] = f"${var}"
                    break
        for name, value in (flags or {}).items():
            if value is None:
                continue
            if name not in BY_NAME:
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = _coerce(BY_NAME[name], value, f"--{name.replace('_', '-')}")
            origins[name] = "flag"
        settings = cls(values, origins)
        settings.warnings = warnings
        return settings

    def _validate(self) -> None:
        """Build every option object once: each checks its own values (ConfigError)."""
        from ..amplitude import export_url

        self.transform_config()
        self.run_options()
        export_url(self._values["amplitude_region"])
        self._check_source()

    def _check_source(self) -> None:
        """``[source]``: a table or a query, not both; a supported URI; a column name."""
        v = self._values
        if v["table"] is not None and v["query"] is not None:
            raise ConfigError(
                f"[source] table ({self.origin('table')}) and query ({self.origin('query')}) "
                "are both set: give one of them"
            )
        if v["uri"] is not None:
            check_uri(v["uri"])
            if v["table"] is not None or v["query"] is not None:
                self.database_source()
        check_column(v["watermark"])

    def database_source(self, uri: str | None = None) -> DatabaseSource:
        """The :class:`~accoil_transform.DatabaseSource` of ``uri`` (default: the ``uri``
        setting) and the ``table`` or ``query`` setting.

        Raises:
            ConfigError: no URI, neither or both of table and query, or a bad URI.
        """
        uri = uri if uri is not None else self._values["uri"]
        if uri is None:
            raise ConfigError("no database URI: give one (sync: --source URI) or [source] uri")
        return DatabaseSource(uri, table=self._values["table"], query=self._values["query"])

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def origin(self, name: str) -> str:
        return self._origins[name]

    def __repr__(self) -> str:
        shown = {k: (MASK if BY_NAME[k].secret and v else v) for k, v in self._values.items()}
        return f"Settings({shown})"

    def transform_config(self) -> TransformConfig:
        v = self._values
        return TransformConfig(
            user_id=v["user_id"],
            include_events=tuple(v["include_events"]),
            exclude_events=tuple(v["exclude_events"]),
            properties=tuple(v["properties"]),
            user_traits=None if v["user_traits"] is None else tuple(v["user_traits"]),
            exclude_user_traits=tuple(v["exclude_user_traits"]),
            event_rename=v["event_rename"],
        )

    def delivery_options(self, *, progress: bool = False) -> DeliveryOptions:
        v = self._values
        return DeliveryOptions(
            concurrency=v["concurrency"],
            max_rate=v["max_rate"],
            timeout=v["timeout"],
            retry=RetryPolicy(
                max_attempts=v["max_attempts"], max_total_seconds=v["max_retry_seconds"]
            ),
            ledger_path=v["ledger"],
            dead_letter_path=v["dead_letter"],
            max_body_bytes=v["max_body_bytes"],
            circuit_seconds=v["circuit_seconds"],
            retry_rejected=v["retry_rejected"],
            progress=progress,
        )

    def run_options(self, *, dry_run: bool = False, progress: bool = False) -> RunOptions:
        v = self._values
        return RunOptions(
            format=v["format"],
            api_key=v["api_key"],
            dry_run=dry_run,
            out=v["out"],
            report=v["report"],
            quarantine=v["quarantine"],
            strict=v["strict"],
            base_url=v["base_url"],
            url=v["url"],
            batch_size=v["batch_size"],
            delivery=self.delivery_options(progress=progress),
        )

    def effective(self) -> list[tuple[str, str, str]]:
        """(name, value, origin) rows for display, secrets masked."""
        rows = []
        for s in SETTINGS:
            value = self._values[s.name]
            text = MASK if (s.secret and value) else ("" if value is None else str(value))
            rows.append((s.name, text, self._origins[s.name]))
        return rows


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    out: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: top-level key {section!r} must be a [section]")
        for key, value in table.items():
            setting = BY_NAME.get(key)
            if setting is None or setting.section != section:
                hint = f" (it belongs in [{setting.section}])" if setting else ""
                raise ConfigError(f"{path}: unknown setting [{section}] {key}{hint}")
            out[key] = value
    return out
