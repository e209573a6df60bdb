"""What every subcommand shares: exit codes, the setting flags, and error output."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from ._settings import SETTINGS, Settings

if TYPE_CHECKING:
    from ..config import RunOptions


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
    #: A bug in accoil-transform: the message says what; ``-vv`` shows the traceback.
    INTERNAL = 70
    #: Stopped by SIGINT (Ctrl-C) or SIGTERM; the report says how far it got.
    SIGINT = 130
    #: The reader of the output went away (``... | head``); nothing more was written.
    BROKEN_PIPE = 141
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
        elif s.choices:  # checked, case-insensitively, with the other layers' values
            group.add_argument(
                flag,
                dest=s.name,
                default=None,
                metavar="{" + ",".join(s.choices) + "}",
                help=f"{s.help}: {', '.join(s.choices)}{default}",
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
    settings = Settings.load(args.config, flags=flags)
    if not quiet(args):
        for warning in settings.warnings:
            print(f"accoil-transform: warning: {warning}", file=sys.stderr)
    return settings


def add_verbosity_flags(p: argparse.ArgumentParser, *, default: object) -> None:
    """``-v/--verbose`` (repeatable) and ``-q/--quiet``."""
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="say more on stderr: -v progress notes, -vv debug detail",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="only errors on stderr (no summary, no warnings)",
    )


def configure_logging(verbosity: int) -> None:
    """Log to stderr: warnings by default, info at ``-v``, debug at ``-vv``, errors at ``-q``.

    Nothing the package logs holds a secret: keys are masked where they are formatted.
    """
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    logging.basicConfig(
        level=level, format="accoil-transform: %(levelname)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger().setLevel(level)


def quiet(args: argparse.Namespace) -> bool:
    """Whether ``-q`` asked for errors only."""
    return getattr(args, "quiet", 0) > getattr(args, "verbose", 0)


def output_problems(options: RunOptions) -> list[str]:
    """What is wrong with the places a run would write to, found before any work.

    ``-`` (standard output) is allowed for the calls and the report, not for both.
    """
    outputs: list[tuple[str, str | Path | None, bool]] = [
        ("--report", options.report, True),
        ("--quarantine", options.quarantine, False),
    ]
    if options.is_dry_run:
        outputs.insert(0, ("--out", options.out, True))
    else:
        outputs += [
            ("--ledger", options.delivery.ledger_path, False),
            ("--dead-letter", options.delivery.dead_letter_path, False),
        ]
    problems = [
        problem
        for flag, path, stdout_ok in outputs
        if path is not None and (problem := _output_problem(flag, Path(path), stdout_ok))
    ]
    if options.is_dry_run and str(options.out) == "-" and str(options.report) == "-":
        problems.append("--out and --report can't both be standard output (-)")
    return problems


def _output_problem(flag: str, path: Path, stdout_ok: bool) -> str | None:
    if str(path) == "-":
        return None if stdout_ok else f"{flag} can't be standard output (-)"
    if path.is_dir():
        return f"{flag} {path} is a folder; give the path of a file"
    parent = path.parent
    if not parent.exists():
        return f"{flag} {path}: the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{flag} {path}: {parent} is not a folder"
    if not os.access(path if path.exists() else parent, os.W_OK):
        return f"{flag} {path}: not writable"
    return None


def say(args: argparse.Namespace, text: str) -> None:
    """Tell the person running the command (stderr; nothing with ``-q``): stdout is kept
    for what a pipe reads (calls, a report)."""
    if not quiet(args):
        print(text, file=sys.stderr)


def plain(doc: str | None) -> str:
    """A docstring as help text: without reST markup (double backquotes, roles)."""
    import re

    text = re.sub(r":[a-z]+:`~?\.?([^`]+)`", r"\1", doc or "")
    return text.replace("``", "")


def fail(command: str, message: object, code: Exit) -> int:
    """Print ``message`` as the command's error and return ``code``."""
    print(f"accoil-transform {command}: {message}", file=sys.stderr)
    return int(code)
