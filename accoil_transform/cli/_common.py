"""What every subcommand shares: exit codes, the setting flags, and error output."""

from __future__ import annotations

import argparse
import sys
from enum import IntEnum
from pathlib import Path

from ._settings import SETTINGS, Settings


class Exit(IntEnum):
    """Exit codes, the same in every subcommand."""

    OK = 0
    #: Some calls failed after all retries (see the dead-letter file); run again.
    FAILED_CALLS = 1
    #: A usage or configuration error.
    USAGE = 2
    #: Bad input: the message names the file and line.
    INPUT = 3
    #: Accoil refused the API key (401/403).
    AUTH = 4
    #: The Amplitude Export API failed (keys refused, wrong region, or a server error).
    EXPORT = 5
    #: Another run holds the ledger (an overlapping cron): nothing was sent.
    LEDGER_BUSY = 6
    #: No call succeeded for ``circuit_seconds``: Accoil is down or unreachable.
    UNREACHABLE = 7
    #: The ledger can't be used (corrupt, truncated, unwritable): nothing was sent.
    LEDGER = 8
    #: ``sync``: every hour of the range answered 404 (no data yet, or a wrong host or
    #: region); the state did not move.
    NO_DATA = 9
    #: Stopped by SIGINT (Ctrl-C) or SIGTERM; the report says how far it got.
    SIGINT = 130
    SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run stops as on Ctrl-C."""

    signal_name = "SIGTERM"


def stop_on_sigterm() -> None:
    """Make SIGTERM stop the command cleanly, as Ctrl-C does (main thread only)."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


#: Flag spellings that differ from the setting name (singular for repeatable flags).
_FLAG_NAMES = {
    "include_events": "include_event",
    "exclude_events": "exclude_event",
    "properties": "property",
    "user_traits": "user_trait",
    "exclude_user_traits": "exclude_user_trait",
    "event_rename": "rename_event",
}


def add_setting_flags(p: argparse.ArgumentParser, *, amplitude: bool = False) -> None:
    """Flags for every setting (default None = not given, so lower layers show through).

    The ``[amplitude]`` settings get flags only where they are used (``amplitude``).
    """
    p.add_argument("--config", type=Path, default=None, help="TOML config file")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for s in SETTINGS:
        if s.section == "amplitude" and not amplitude:
            continue
        group = groups.setdefault(s.section, p.add_argument_group(s.section))
        flag = "--" + _FLAG_NAMES.get(s.name, s.name).replace("_", "-")
        default = "" if s.default in (None, [], {}) else f" (default: {s.default})"
        if s.kind is bool:
            group.add_argument(flag, dest=s.name, action="store_true", default=None, help=s.help)
        elif s.kind is list:
            group.add_argument(
                flag,
                dest=s.name,
                action="append",
                default=None,
                metavar="NAME",
                help=f"{s.help}; repeatable{default}",
            )
        elif s.kind is dict:
            group.add_argument(
                flag,
                dest=s.name,
                action="append",
                default=None,
                metavar="OLD=NEW",
                help=f"{s.help}; repeatable",
            )
        else:
            metavar = "FILE" if s.kind is Path else s.name.upper()
            group.add_argument(
                flag, dest=s.name, type=s.kind, default=None, metavar=metavar, help=s.help + default
            )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The effective settings: the file, then ``ACCOIL_*`` variables, then the flags."""
    from ..errors import ConfigError

    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    renames: list[str] = flags.get("event_rename") or []
    if renames:
        pairs = [item.split("=", 1) for item in renames]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError("--rename-event takes OLD=NEW")
        flags["event_rename"] = dict(pairs)
    return Settings.load(args.config, flags=flags)


def fail(command: str, message: object, code: Exit) -> int:
    """Print ``message`` as the command's error and return ``code``."""
    print(f"accoil-transform {command}: {message}", file=sys.stderr)
    return int(code)
