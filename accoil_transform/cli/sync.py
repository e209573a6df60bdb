"""``accoil-transform sync``: the scheduled job (cron, Airflow, Dagster).

``sync`` exports the hours since the last successful run from Amplitude and sends them
(``--since-last``, the only mode, may be given or not). ``sync status`` prints the last
synced hour, what the next sync would export, and the calls the ledger holds per
destination. ``sync --rewind-to YYYYMMDDTHH`` moves the state back so that the next
sync starts at that hour, and sends nothing.

Exit codes:

* 0: every call was accepted or dead-lettered by policy (or there was nothing new);
  the state moved forward.
* 1: some calls failed after all retries; the state did not move, so the next run
  repeats the window and sends only what was not acknowledged.
* 2: usage or configuration error (including no recorded state and no ``--start``,
  and no Amplitude keys).
* 3: bad input in the export; for ``--rewind-to``, a malformed hour, an hour past the
  state, or no state to rewind; for ``status`` and ``--rewind-to``, no ledger file.
* 4: Accoil rejected the API key (401/403).
* 5: the Amplitude Export API failed (keys refused, wrong region, or a server error).
* 6: another run holds the ledger; 7: Accoil is down or unreachable; 8: the ledger can't be
  used.
* 9: every hour of the range answered 404 (no data yet, or a wrong host or region); the
  state did not move.
* 130, 143: stopped by SIGINT or SIGTERM.

From a database table instead (``--source URI --table NAME``, or ``--query SQL``; or
``[source]`` in the config file): sync sends the rows whose watermark column
(``--watermark``, default ``server_upload_time``) is past the largest value of the last
successful run, and records the largest value read, only when every call was accepted
or dead-lettered. The first run takes every row, or those at or past ``--start`` (a
value of the column: YYYYMMDDTHH or ISO 8601 for a time). Exit codes as above; 0 also
when no row is new (nothing is sent).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import (
    Exit,
    add_setting_flags,
    fail,
    output_problems,
    plain,
    quiet,
    say,
    settings_from_args,
)

if TYPE_CHECKING:
    from ..config import RunOptions, TransformConfig
    from ..read import DatabaseSource
    from ._settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="export the hours since the last successful run from Amplitude and send them",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--since-last",
        action="store_true",
        help="sync from the hour after the last successful run (state in the ledger); "
        "the default, kept for existing scripts",
    )
    p.add_argument(
        "--start",
        metavar="YYYYMMDDTHH",
        help="first hour for the very first run (from a table: the first watermark value)",
    )
    p.add_argument(
        "--source",
        dest="uri",
        metavar="URI",
        default=None,
        help="sync from this database (with --table or --query) instead of the Export API; "
        "same as --uri, [source] uri",
    )
    p.add_argument(
        "--until",
        metavar="YYYYMMDDTHH",
        help="last hour to sync (default: the latest hour Amplitude has exported, now - 3 h)",
    )
    p.add_argument(
        "--rewind-to",
        metavar="YYYYMMDDTHH",
        help="move the state back so that the next sync starts at this hour, and stop "
        "(never forward; calls the ledger holds as sent are not sent again)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="write the calls instead of sending them; the state does not move",
    )
    add_setting_flags(p, amplitude=True)
    p.set_defaults(func=main)
    # An optional action: ``sync --flags`` without one runs the sync as before.
    actions = p.add_subparsers(dest="sync_action", metavar="[status]", title="actions")
    status = actions.add_parser(
        "status",
        help="print the last synced hour and the calls the ledger holds (read-only)",
        description=(
            "Print the last synced hour, the window the next sync would export, and per "
            "destination (base URL and key hash, never the key) the calls the ledger holds "
            "as sent (acknowledged) and rejected. A call enters the ledger once Accoil has "
            "answered it, so calls in flight are in no count. The ledger is opened "
            "read-only, without its lock: this works while a run holds it. Exit codes: 0 "
            "done, 2 configuration error, 3 no ledger file, 8 the file is not a ledger."
        ),
    )
    # SUPPRESS: a value given before ``status`` (``sync --ledger X status``) is kept.
    status.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML config file")
    status.add_argument(
        "--ledger",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="the ledger (default: $ACCOIL_LEDGER, [delivery] ledger, accoil-ledger.sqlite)",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=status_main)


def main(args: argparse.Namespace) -> int:
    from ..amplitude import AmplitudeExportClient
    from ..errors import AccoilTransformError, ConfigError
    from ..jobs import sync
    from ._summary import format_report
    from .run import exit_code, why

    if args.rewind_to is not None:
        if args.uri is not None:
            return fail(
                "sync", "--rewind-to moves the Export API sync's hour, not a table's", Exit.USAGE
            )
        return rewind_main(args)
    try:
        settings = settings_from_args(args)
        config = settings.transform_config()
        progress = sys.stderr.isatty() and not quiet(args)
        options = settings.run_options(dry_run=args.dry_run, progress=progress)
        if options.is_dry_run and not args.dry_run:
            raise ConfigError("sync sends calls: set ACCOIL_API_KEY (or use --dry-run)")
        source = None
        if settings["uri"] is not None:
            if args.until is not None:
                raise ConfigError(
                    "--until is for the Export API sync; a table sync takes every new row"
                )
            source = settings.database_source()
            source.check_driver()
    except ConfigError as exc:
        return fail("sync", exc, Exit.USAGE)
    if problems := output_problems(options):  # the first is enough to act on
        return fail("sync", problems[0], Exit.INPUT)
    if source is not None:
        return table_main(args, settings, source, config, options)
    try:
        with AmplitudeExportClient(
            settings["amplitude_api_key"],
            settings["amplitude_secret_key"],
            region=settings["amplitude_region"],
            base_url=settings["amplitude_base_url"],
        ) as client:
            result = sync(
                config=config,
                options=options,
                export_client=client,
                export_dir=settings["export_dir"],
                ledger_path=settings["ledger"],
                start=args.start,
                until=args.until,
            )
    except (AccoilTransformError, KeyboardInterrupt) as exc:
        code = exit_code(exc)
        if code == Exit.EXPORT:
            return fail("sync", f"Amplitude export failed: {exc}", code)
        return fail("sync", why(exc), code)
    if result.window is None:
        say(args, f"nothing new to sync (last synced hour: {result.last_hour})")
        return Exit.OK
    if result.empty:
        return fail(
            "sync",
            f"no data in {result.window}: every hour answered 404. That is an empty range, "
            "or a wrong --amplitude-base-url or --amplitude-region; the state did not move "
            f"(last synced hour: {result.last_hour})",
            Exit.NO_DATA,
        )
    say(
        args,
        f"window {result.window.start_str} .. {result.window.end_str}: {len(result.files)} file(s)",
    )
    if result.run is not None:
        say(args, format_report(result.run.to_dict()))
    if not result.complete:
        print("some calls failed; the state was not moved, run again to retry", file=sys.stderr)
        return Exit.FAILED_CALLS
    say(args, f"last synced hour: {result.last_hour}")
    return Exit.OK


def table_main(
    args: argparse.Namespace,
    settings: Settings,
    source: DatabaseSource,
    config: TransformConfig,
    options: RunOptions,
) -> int:
    """``sync --source URI --table NAME``: the rows past the last run's watermark."""
    from ..errors import AccoilTransformError
    from ..jobs import sync_table
    from ._summary import format_report
    from .run import exit_code, why

    try:
        result = sync_table(
            source,
            config=config,
            options=options,
            ledger_path=settings["ledger"],
            watermark=settings["watermark"],
            start=args.start,
        )
    except (AccoilTransformError, KeyboardInterrupt) as exc:
        return fail("sync", why(exc), exit_code(exc))
    where = f"{result.column} > {result.before}" if result.before else "no watermark yet"
    if result.nothing_new:
        say(args, f"nothing new to sync in {result.source} ({where})")
        return Exit.OK
    say(args, f"{result.source}: {result.rows:,} row(s) read ({where})")
    for warning in result.warnings:
        say(args, f"accoil-transform sync: warning: {warning}")
    if result.run is not None:
        if result.run.dry_run:
            say(args, "dry run: nothing was sent; the watermark did not move")
        say(args, format_report(result.run.to_dict()))
    if not result.complete:
        print("some calls failed; the watermark was not moved, run again to retry", file=sys.stderr)
        return Exit.FAILED_CALLS
    if result.advanced:
        say(args, f"watermark: {result.column} = {result.after}")
    return Exit.OK


def rewind_main(args: argparse.Namespace) -> int:
    """``sync --rewind-to HOUR``: move the state back; nothing is exported or sent."""
    from ..errors import AccoilTransformError, ConfigError, InputError
    from ..jobs._sync import rewind
    from .run import exit_code

    given = [f for f, v in (("--start", args.start), ("--until", args.until)) if v]
    given += ["--dry-run"] if args.dry_run else []
    if given:
        return fail(
            "sync",
            f"--rewind-to only moves the state back; drop {', '.join(given)} and run sync "
            "again afterwards",
            Exit.USAGE,
        )
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        return fail("sync", exc, Exit.USAGE)
    try:
        before, after = rewind(settings["ledger"], args.rewind_to)
    except (ConfigError, InputError) as exc:
        return fail("sync", f"--rewind-to: {exc}", Exit.INPUT)
    except AccoilTransformError as exc:
        return fail("sync", exc, exit_code(exc))
    if before == after:
        print(f"the next sync already starts at {args.rewind_to.strip()}: nothing to rewind")
    else:
        print(
            f"rewound: the next sync starts at {args.rewind_to.strip()} (last synced hour "
            f"{before} -> {after}); calls the ledger holds as sent are not sent again"
        )
    return Exit.OK


def status_main(args: argparse.Namespace) -> int:
    """``sync status``: the state and the ledger's counts, read-only."""
    import json

    from ..errors import AccoilTransformError, ConfigError
    from ..jobs._sync import sync_status
    from .run import exit_code

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        return fail("sync status", exc, Exit.USAGE)
    try:
        status = sync_status(settings["ledger"])
    except AccoilTransformError as exc:
        return fail("sync status", exc, exit_code(exc))
    if args.json:
        print(json.dumps(status.to_dict(), indent=2))
        return Exit.OK
    if status.last_hour is None:
        last, upcoming = "none yet", "the first sync needs --start YYYYMMDDTHH"
    elif status.next_window is None:
        last, upcoming = status.last_hour, "nothing new yet (Amplitude lags about 3 hours)"
    else:
        window = status.next_window
        last = status.last_hour
        upcoming = f"{window.start_str} .. {window.end_str} ({window.hours} h)"
    print(f"ledger            {status.ledger}")
    print(f"last synced hour  {last}")
    print(f"next sync         {upcoming}")
    rows = [("sent", "rejected", "destination")]
    rows += [
        (
            f"{d.sent:,}",
            f"{d.rejected:,}",
            f"{d.base_url} (key #{d.key_hash})"
            if d.key_hash
            else d.base_url or "(no destination: recorded by an earlier version)",
        )
        for d in status.destinations
    ]
    if len(rows) == 1:
        print("calls             none recorded")
    else:
        w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
        print()
        for sent, rejected, destination in rows:
            print(f"{sent:>{w0}}  {rejected:>{w1}}  {destination}")
    print("\nin flight: not recorded (a call enters the ledger once Accoil has answered it)")
    return Exit.OK
