"""``accoil-transform export``: pull an hour range from the Amplitude Export API into zips."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import Exit, fail

API_KEY_ENV = "AMPLITUDE_API_KEY"
SECRET_KEY_ENV = "AMPLITUDE_SECRET_KEY"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand; its handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser(
        "export",
        help="pull an hour range from the Amplitude Export API into zip files",
        description=(
            "Download the events Amplitude received (by server_upload_time) from --start "
            "to --end, both hours included, into zip files in --out. A 404 is an empty "
            "window; a window over the 4 GB limit is split in halves. Exit codes: 0 done, "
            "2 usage or missing keys, 5 the Export API failed."
        ),
    )
    p.add_argument(
        "--start", required=True, metavar="YYYYMMDDTHH", help="first hour (UTC), included"
    )
    p.add_argument("--end", required=True, metavar="YYYYMMDDTHH", help="last hour (UTC), included")
    p.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="folder for the zip files"
    )
    p.add_argument(
        "--region", choices=("us", "eu"), default=None, help="data residency (default: us)"
    )
    p.add_argument(
        "--config", type=Path, default=None, help="TOML config file ([amplitude] section)"
    )
    p.add_argument(
        "--base-url", metavar="URL", help="override the Export API URL (testing, proxies)"
    )
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"project API key (default: ${API_KEY_ENV}; prefer the env var)",
    )
    p.add_argument(
        "--secret-key",
        metavar="KEY",
        help=f"project secret key (default: ${SECRET_KEY_ENV}; prefer the env var)",
    )
    p.add_argument("--max-retries", type=int, default=5, help="retries per request (default: 5)")
    p.add_argument(
        "--timeout", type=float, default=600.0, help="read timeout in seconds (default: 600)"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the export; print a summary."""
    from dataclasses import replace

    from ..amplitude import DEFAULT_EXPORT_RETRY, AmplitudeExportClient, ExportWindow
    from ..errors import AccoilTransformError
    from ._settings import Settings
    from .run import exit_code

    if args.max_retries < 0 or args.timeout <= 0:
        return fail("export", "--max-retries must be >= 0 and --timeout > 0", Exit.USAGE)
    try:
        window = ExportWindow.parse(args.start, args.end)
        # Flags win over $AMPLITUDE_* / $ACCOIL_AMPLITUDE_* variables, which win over the file.
        settings = Settings.load(
            args.config,
            flags={
                "amplitude_api_key": args.api_key,
                "amplitude_secret_key": args.secret_key,
                "amplitude_region": args.region,
                "amplitude_base_url": args.base_url,
            },
        )
        with AmplitudeExportClient(
            settings["amplitude_api_key"],
            settings["amplitude_secret_key"],
            region=settings["amplitude_region"],
            base_url=settings["amplitude_base_url"],
            retry=replace(DEFAULT_EXPORT_RETRY, max_attempts=args.max_retries + 1),
            timeout=(10.0, args.timeout),
        ) as client:
            print(f"exporting {window} from {client.url} into {args.out}", file=sys.stderr)
            result = client.export_range(window, out_dir=args.out)
    except AccoilTransformError as exc:
        return fail("export", f"error: {exc}", exit_code(exc))
    except OSError as exc:
        return fail(
            "export", f"error: cannot write to {args.out}: {exc.strerror or exc}", Exit.EXPORT
        )
    print(result.summary())
    for f in result.files:
        print(f"  {f.path}  {f.bytes:,} bytes")
    return Exit.OK
