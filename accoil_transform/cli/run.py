"""``accoil-transform run``: transform inputs and write a dry run or deliver the calls."""

from __future__ import annotations

import argparse
import sys

from ._common import Exit, add_setting_flags, fail, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="transform Amplitude events into Accoil calls and write or send them",
        description=(
            "Read Amplitude events (Export API zips, .json.gz/.json/.jsonl files, folders, "
            "globs, Parquet), apply the selection, mapping and group rules, and deliver "
            "the calls. Without an API key (--api-key, $ACCOIL_API_KEY or the config file) "
            "it is a dry run that writes the calls as NDJSON. Flags override $ACCOIL_* "
            "variables, which override the config file."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    add_setting_flags(p)
    p.add_argument(
        "--dry-run", action="store_true", help="write calls to --out even with an API key"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..errors import AccoilTransformError, ConfigError
    from ..jobs import run
    from ._summary import format_report

    try:
        settings = settings_from_args(args)
        config = settings.transform_config()
        options = settings.run_options(dry_run=args.dry_run, progress=sys.stderr.isatty())
    except ConfigError as exc:
        return fail("run", exc, Exit.USAGE)
    try:
        outcome = run(args.inputs, config, options)
    except (AccoilTransformError, KeyboardInterrupt) as exc:
        return fail("run", why(exc), exit_code(exc))
    for warning in outcome.warnings:
        print(f"accoil-transform run: warning: {warning}", file=sys.stderr)
    if outcome.dry_run:
        print("dry run: nothing was sent", file=sys.stderr)
    print(format_report(outcome.to_dict()))
    return Exit.FAILED_CALLS if outcome.failed else Exit.OK


def exit_code(exc: BaseException) -> Exit:
    """The exit code of an error that stopped a run."""
    from ..errors import (
        AuthenticationError,
        ConfigError,
        ExportCredentialsError,
        ExportError,
        InputError,
        Interrupted,
        LedgerBusyError,
        LedgerError,
        UnreachableError,
    )

    if isinstance(exc, KeyboardInterrupt):
        return Exit.SIGTERM if getattr(exc, "signal_name", "") == "SIGTERM" else Exit.SIGINT
    if isinstance(exc, Interrupted):
        return Exit.SIGTERM if exc.signal == "SIGTERM" else Exit.SIGINT
    if isinstance(exc, InputError):
        return Exit.INPUT
    if isinstance(exc, AuthenticationError):
        return Exit.AUTH
    if isinstance(exc, LedgerBusyError):
        return Exit.LEDGER_BUSY
    if isinstance(exc, LedgerError):
        return Exit.LEDGER
    if isinstance(exc, UnreachableError):
        return Exit.UNREACHABLE
    if isinstance(exc, ConfigError | ExportCredentialsError):
        return Exit.USAGE
    if isinstance(exc, ExportError):
        return Exit.EXPORT
    return Exit.FAILED_CALLS


def why(exc: BaseException) -> str:
    """One line for the error that stopped a command."""
    if isinstance(exc, KeyboardInterrupt):
        signal = getattr(exc, "signal_name", "SIGINT")
        return f"stopped by {signal}; acknowledged calls are in the ledger, run again to go on"
    return str(exc)
