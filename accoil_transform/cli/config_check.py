"""``accoil-transform config check``: validate settings and print the effective values."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ._common import Exit, add_setting_flags, fail, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check a configuration")
    actions = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a config file and print the effective settings (secrets masked)",
    )
    add_setting_flags(check, amplitude=True)
    check.set_defaults(func=check_main)


def check_main(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        return fail("config check", exc, Exit.USAGE)
    rows = settings.effective()
    width = max(len(name) for name, _, _ in rows)
    vwidth = min(48, max(len(value) for _, value, _ in rows))
    for name, value, origin in rows:
        print(f"{name:<{width}}  {value:<{vwidth}}  {origin}")
    mode = "delivery" if settings["api_key"] else "dry run (no API key)"
    print(f"\nOK: a run would be a {mode}, format {settings['format']}.")
    return Exit.OK
