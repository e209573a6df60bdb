"""``accoil-transform export``: pull an hour range from the Amplitude Export API into zips."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import Exit, fail
from ._settings import BY_NAME, ENV_ALIASES

#: The ``[amplitude]`` settings ``export`` takes, each with the flag ``sync`` has too.
AMPLITUDE_SETTINGS = (
    "amplitude_api_key",
    "amplitude_secret_key",
    "amplitude_region",
    "amplitude_base_url",
)
_METAVARS = {"amplitude_api_key": "KEY", "amplitude_secret_key": "KEY", "amplitude_base_url": "URL"}
#: Spellings of earlier releases, kept for one release with a warning: old flag -> setting.
DEPRECATED_FLAGS = {
    "--api-key": "amplitude_api_key",
    "--secret-key": "amplitude_secret_key",
    "--region": "amplitude_region",
    "--base-url": "amplitude_base_url",
}


def flag_of(setting: str) -> str:
    return "--" + setting.replace("_", "-")


class _DeprecatedFlag(argparse.Action):
    """An old spelling: sets the new flag's setting and warns on stderr (never the value)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(
            f"accoil-transform export: warning: {option_string} is deprecated and goes in the "
            f"next release; use {flag_of(self.dest)} (Accoil's settings are --api-key and "
            "--base-url in every other subcommand)",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand; its handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser(
        "export",
        help="pull an hour range from the Amplitude Export API into zip files",
        description=(
            "Download the events Amplitude received (by server_upload_time) from --start "
            "to --end, both hours included, into zip files in --out. A 404 is an empty "
            "window; a window over the 4 GB limit is split in halves. The Amplitude "
            "settings are the ones sync takes: flags, else $AMPLITUDE_* (or "
            "$ACCOIL_AMPLITUDE_*) variables, else the [amplitude] section of --config. "
            "Exit codes: 0 done, 2 usage or missing keys, 5 the Export API failed."
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
        "--config", type=Path, default=None, help="TOML config file ([amplitude] section)"
    )
    group = p.add_argument_group("amplitude")
    for name in AMPLITUDE_SETTINGS:
        setting = BY_NAME[name]
        env = " or ".join(f"${v}" for v in (ENV_ALIASES.get(name), setting.env) if v)
        choices = f": {', '.join(setting.choices)}" if setting.choices else ""
        default = f"; default: {setting.default}" if setting.default else ""
        group.add_argument(
            flag_of(name),
            dest=name,
            default=None,
            metavar="{" + ",".join(setting.choices) + "}" if setting.choices else _METAVARS[name],
            help=f"{setting.help}{choices}; env {env}{default}",
        )
    for old, name in DEPRECATED_FLAGS.items():
        p.add_argument(old, dest=name, action=_DeprecatedFlag, help=argparse.SUPPRESS)
    p.add_argument(
        "--max-retries", type=int, default=5, help="Export API retries per request (default: 5)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="Export API read timeout in seconds (default: 600)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Run the export; print a summary."""
    from dataclasses import replace

    from ..amplitude import DEFAULT_EXPORT_RETRY, AmplitudeExportClient, ExportWindow
    from ..errors import AccoilTransformError
    from ._common import settings_from_args
    from .run import exit_code

    if args.max_retries < 0 or args.timeout <= 0:
        return fail("export", "--max-retries must be >= 0 and --timeout > 0", Exit.USAGE)
    try:
        window = ExportWindow.parse(args.start, args.end)
        # Flags win over $AMPLITUDE_* / $ACCOIL_AMPLITUDE_* variables, which win over the file.
        settings = settings_from_args(args)
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
