"""``accoil-transform run``: transform inputs and write a dry run or deliver the calls."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ._common import (
    Exit,
    add_setting_flags,
    fail,
    output_problems,
    quiet,
    say,
    settings_from_args,
)

if TYPE_CHECKING:
    from ..read import DatabaseSource
    from ._settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="transform Amplitude events into Accoil calls and write or send them",
        description=(
            "Read Amplitude events (Export API zips, .json.gz/.json/.jsonl files, folders, "
            "globs, Parquet, CSV, or a database table or query read through ADBC), apply the selection, mapping and group rules, and deliver "
            "the calls. Without an API key (--api-key, $ACCOIL_API_KEY or the config file) "
            "it is a dry run that writes the calls as NDJSON. Flags override $ACCOIL_* "
            "variables, which override the config file."
        ),
    )
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="files, folders or globs; or a database URI (postgresql://, snowflake://, "
        "bigquery://, sqlite:///PATH, duckdb:///PATH) with --table NAME or --query SQL "
        "(default: [source] uri)",
    )
    add_setting_flags(p)
    p.add_argument(
        "--dry-run", action="store_true", help="write calls to --out even with an API key"
    )
    p.set_defaults(func=main, run_parser=p)


def main(args: argparse.Namespace) -> int:
    from ..errors import AccoilTransformError, ConfigError
    from ..jobs import run
    from ._summary import format_report

    try:
        settings = settings_from_args(args)
        config = settings.transform_config()
        progress = sys.stderr.isatty() and not quiet(args)
        options = settings.run_options(dry_run=args.dry_run, progress=progress)
        if not args.inputs and settings["uri"] is None:  # argparse's usage error, exit 2
            args.run_parser.error(
                "the following arguments are required: INPUT (or a database: [source] uri)"
            )
        inputs = run_inputs(args.inputs, settings)
    except ConfigError as exc:
        return fail("run", exc, Exit.USAGE)
    if problems := output_problems(options):  # the first is enough to act on
        return fail("run", problems[0], Exit.INPUT)
    try:
        outcome = run(inputs, config, options)
    except (AccoilTransformError, KeyboardInterrupt) as exc:
        return fail("run", why(exc), exit_code(exc))
    for warning in outcome.warnings:
        say(args, f"accoil-transform run: warning: {warning}")
    if outcome.dry_run:
        say(args, "dry run: nothing was sent")
    say(args, format_report(outcome.to_dict()))
    return Exit.FAILED_CALLS if outcome.failed else Exit.OK


def run_inputs(given: list[str], settings: Settings) -> list[str | DatabaseSource]:
    """The inputs of a run: paths as given, database URIs as sources of ``--table`` or
    ``--query``; with none given, the ``[source] uri`` setting.

    Raises:
        ConfigError: no input, or ``--table``/``--query`` without a database URI, or a
            database URI without them (its driver missing: the extra to install).
    """
    from ..errors import ConfigError
    from ..read._database import SUPPORTED_SCHEMES, is_database_uri

    flagged = [n for n in ("table", "query") if settings.origin(n) == "flag"]
    if not given:
        if settings["uri"] is None:
            raise ConfigError(
                "give the inputs to read (files, folders, globs), or a database URI with "
                "--table NAME or --query SQL"
            )
        sources: list[str | DatabaseSource] = [settings.database_source()]
    else:
        sources = [settings.database_source(i) if is_database_uri(i) else i for i in given]
        if flagged and all(isinstance(s, str) for s in sources):
            looks_like_uri = [i for i in given if "://" in i]
            raise ConfigError(
                f"--{flagged[0]} reads from a database: give its URI as the input"
                + (f" (supported: {SUPPORTED_SCHEMES})" if looks_like_uri else "")
            )
    for source in sources:
        if not isinstance(source, str):
            source.check_driver()  # before any work: the extra to install
    return sources


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
        # Once sending has begun, a signal stops the run as Interrupted instead.
        return f"stopped by {signal} before any call was sent"
    return str(exc)
