"""``accoil-transform sync --since-last``: the scheduled job (cron, Airflow, Dagster).

Exit codes:

* 0: every call was accepted or dead-lettered by policy (or there was nothing new);
  the state moved forward.
* 1: some calls failed after all retries; the state did not move, so the next run
  repeats the window and sends only what was not acknowledged.
* 2: usage or configuration error (including no recorded state and no ``--start``,
  and no Amplitude keys).
* 3: bad input in the export.
* 4: Accoil rejected the API key (401/403).
* 5: the Amplitude Export API failed (keys refused, wrong region, or a server error).
* 6: another run holds the ledger; 7: Accoil is down or unreachable; 8: the ledger can't be
  used.
* 9: every hour of the range answered 404 (no data yet, or a wrong host or region); the
  state did not move.
* 130, 143: stopped by SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys

from ._common import Exit, add_setting_flags, fail, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sync",
        help="export the hours since the last successful run from Amplitude and send them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--since-last",
        action="store_true",
        required=True,
        help="sync from the hour after the last successful run (state in the ledger)",
    )
    p.add_argument("--start", metavar="YYYYMMDDTHH", help="first hour for the very first run")
    p.add_argument(
        "--until",
        metavar="YYYYMMDDTHH",
        help="last hour to sync (default: the latest hour Amplitude has exported, now - 3 h)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="write the calls instead of sending them; the state does not move",
    )
    add_setting_flags(p, amplitude=True)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..amplitude import AmplitudeExportClient
    from ..errors import AccoilTransformError, ConfigError
    from ..jobs import sync
    from ._summary import format_report
    from .run import exit_code, why

    try:
        settings = settings_from_args(args)
        config = settings.transform_config()
        options = settings.run_options(dry_run=args.dry_run, progress=sys.stderr.isatty())
        if options.is_dry_run and not args.dry_run:
            raise ConfigError("sync sends calls: set ACCOIL_API_KEY (or use --dry-run)")
    except ConfigError as exc:
        return fail("sync", exc, Exit.USAGE)
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
        print(f"nothing new to sync (last synced hour: {result.last_hour})")
        return Exit.OK
    if result.empty:
        return fail(
            "sync",
            f"no data in {result.window}: every hour answered 404. That is an empty range, "
            "or a wrong --amplitude-base-url or --amplitude-region; the state did not move "
            f"(last synced hour: {result.last_hour})",
            Exit.NO_DATA,
        )
    print(
        f"window {result.window.start_str} .. {result.window.end_str}: {len(result.files)} file(s)"
    )
    if result.run is not None:
        print(format_report(result.run.to_dict()))
    if not result.complete:
        print("some calls failed; the state was not moved, run again to retry", file=sys.stderr)
        return Exit.FAILED_CALLS
    print(f"last synced hour: {result.last_hour}")
    return Exit.OK
