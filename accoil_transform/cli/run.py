"""``accoil-transform run``: transform inputs and write a dry run or deliver the calls."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AccoilTransformError, ConfigError, InputError
from ..output import format_report
from ..pipeline import RunOptions, run
from ..settings import SETTINGS, Settings

EXIT_OK = 0
EXIT_FAILED_CALLS = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_AUTH = 4


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


#: Flag spellings that differ from the setting name (singular for repeatable flags).
_FLAG_NAMES = {
    "include_events": "include_event",
    "exclude_events": "exclude_event",
    "properties": "property",
    "user_traits": "user_trait",
    "event_rename": "rename_event",
}


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    if flags.get("event_rename"):
        pairs = [item.split("=", 1) for item in flags["event_rename"]]
        if any(len(p) != 2 for p in pairs):
            raise ConfigError("--rename-event takes OLD=NEW")
        flags["event_rename"] = dict(pairs)
    return Settings.load(args.config, flags=flags)


def options_from_settings(settings: Settings, *, dry_run: bool = False) -> RunOptions:
    options = RunOptions(
        format=settings["format"],
        api_key=settings["api_key"],
        dry_run=dry_run,
        out=settings["out"],
        report=settings["report"],
        quarantine=settings["quarantine"],
        strict=settings["strict"],
        base_url=settings["base_url"],
        url=settings["url"],
        batch_size=settings["batch_size"],
    )
    if not options.is_dry_run:
        options.delivery = delivery_options(settings)
    return options


def delivery_options(settings: Settings):  # -> DeliveryOptions
    from ..delivery import DeliveryOptions, RetryPolicy

    return DeliveryOptions(
        concurrency=settings["concurrency"],
        max_rate=settings["max_rate"],
        timeout=(min(10.0, settings["timeout"]), settings["timeout"]),
        retry=RetryPolicy(
            max_attempts=settings["max_attempts"],
            max_total_seconds=settings["max_retry_seconds"],
        ),
        ledger_path=settings["ledger"],
        dead_letter_path=settings["dead_letter"],
        progress=sys.stderr.isatty(),
    )


def main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        config = settings.transform_config()
        options = options_from_settings(settings, dry_run=args.dry_run)
    except ConfigError as exc:
        print(f"accoil-transform run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        outcome = run(args.inputs, config, options)
    except AccoilTransformError as exc:
        print(f"accoil-transform run: {exc}", file=sys.stderr)
        return _exit_code(exc)
    report = outcome.report
    if report["dry_run"]:
        print("dry run: nothing was sent", file=sys.stderr)
    print(format_report(report))
    failed = sum(c.get("failed", 0) for c in report.get("delivery", {}).get("calls", {}).values())
    return EXIT_FAILED_CALLS if failed else EXIT_OK


def _exit_code(exc: Exception) -> int:
    from ..delivery import AuthenticationError

    if isinstance(exc, InputError):
        return EXIT_INPUT
    if isinstance(exc, AuthenticationError):
        return EXIT_AUTH
    return EXIT_FAILED_CALLS
