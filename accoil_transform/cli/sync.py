"""``accoil-transform sync --since-last``: the scheduled job (cron, Airflow, Dagster).

Exit codes:

* 0: every call was accepted or dead-lettered by policy (or there was nothing new);
  the state moved forward.
* 1: some calls failed after all retries; the state did not move, so the next run
  repeats the window and sends only what was not acknowledged.
* 2: usage or configuration error (including no recorded state and no ``--start``).
* 3: bad input in the export.
* 4: Accoil rejected the API key (401/403).
* 5: the Amplitude Export API failed (credentials, region, or a server error).
"""

from __future__ import annotations

import argparse
import sys

from ..amplitude_export import AmplitudeExportClient, ExportError
from ..delivery import AuthenticationError
from ..errors import AccoilTransformError, ConfigError, InputError
from ..output import format_report
from ..sync import sync
from .run import (
    EXIT_AUTH,
    EXIT_INPUT,
    EXIT_USAGE,
    add_setting_flags,
    options_from_settings,
    settings_from_args,
)

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_EXPORT = 5


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
    try:
        settings = settings_from_args(args)
        config = settings.transform_config()
        options = options_from_settings(settings, dry_run=args.dry_run)
        if options.is_dry_run and not args.dry_run:
            raise ConfigError("sync sends calls: set ACCOIL_API_KEY (or use --dry-run)")
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
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
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ExportError as exc:
        return _fail(f"Amplitude export failed: {exc}", EXIT_EXPORT)
    except InputError as exc:
        return _fail(str(exc), EXIT_INPUT)
    except AuthenticationError as exc:
        return _fail(str(exc), EXIT_AUTH)
    except AccoilTransformError as exc:
        return _fail(str(exc), EXIT_INCOMPLETE)
    if result.window is None:
        print(f"nothing new to sync (last synced hour: {result.last_hour})")
        return EXIT_OK
    print(
        f"window {result.window.start_str} .. {result.window.end_str}: {len(result.files)} file(s)"
    )
    if result.report:
        print(format_report(result.report))
    if not result.complete:
        print("some calls failed; the state was not moved, run again to retry", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(f"last synced hour: {result.last_hour}")
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"accoil-transform sync: {message}", file=sys.stderr)
    return code
