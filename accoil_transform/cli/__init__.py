"""The ``accoil-transform`` command line: one module per subcommand.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets
``func``: a callable taking the parsed arguments and returning the exit code
(:class:`~._common.Exit`, the same in every subcommand). Subcommands import the work
they do only when they run.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

from . import config_check, export, run, serve_local, sync
from ._common import stop_on_sigterm


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accoil-transform",
        description="Move Amplitude events into Accoil: read, transform, write or deliver.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run, sync, export, serve_local, config_check):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``accoil-transform`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        stop_on_sigterm()
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
