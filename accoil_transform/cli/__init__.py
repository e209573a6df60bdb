"""The ``accoil-transform`` command line: one module per subcommand.

Each subcommand module has ``register(subparsers)``, which adds its parser and sets
``func``: a callable taking the parsed arguments and returning the exit code
(:class:`~._common.Exit`, the same in every subcommand). Subcommands import the work
they do only when they run.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Sequence

from . import check, config_check, export, ledger, run, serve_local, sync
from ._common import Exit, add_verbosity_flags, configure_logging, stop_on_sigterm


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accoil-transform",
        description="Move Amplitude events into Accoil: read, transform, write or deliver.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_verbosity_flags(parser, default=0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (run, sync, export, check, serve_local, config_check, ledger):
        module.register(sub)
    for command in sub.choices.values():  # also after the subcommand: `run x.zip -v`
        add_verbosity_flags(command, default=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``accoil-transform`` script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own usage, not the top level's
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging(args.verbose - args.quiet)
    if threading.current_thread() is threading.main_thread():
        stop_on_sigterm()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return Exit.SIGINT
    except BrokenPipeError:
        # The reader of our output went away (`... | head`): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return Exit.BROKEN_PIPE
    except Exception as exc:  # a bug: say so in one line; -vv shows the traceback
        logging.getLogger("accoil_transform").debug("traceback", exc_info=True)
        print(
            f"accoil-transform {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(please report it; -vv shows the traceback)",
            file=sys.stderr,
        )
        return Exit.INTERNAL


#: How long a thread may hold the GIL while another waits for it (Python's default is
#: 5 ms). A run's decode thread holds it most of the time, and every other stage takes
#: it back after each step done without it (an inflated block, a polars call); with
#: 0.5 ms they wait a tenth as long, and a run took about 4 % less time.
SWITCH_INTERVAL_S = 0.0005


def console_main() -> None:
    """The ``accoil-transform`` script: :func:`main`, then the process ends at once.

    When :func:`main` returns, every file the command wrote is closed; what is left is
    freeing a run's memory object by object and tearing down modules, a tenth of a
    second after a large run. The ``atexit`` handlers run (logging is flushed, the copy
    of standard input removed) and the standard streams are flushed, then the process
    exits without that teardown.

    The script owns its process, so it also sets the interpreter's GIL switch interval
    (:data:`SWITCH_INTERVAL_S`).
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    code = main()
    atexit._run_exitfuncs()  # what a normal exit runs first; os._exit skips it
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away after the command was done
        code = code or Exit.BROKEN_PIPE
    except (OSError, ValueError):  # closed by the command itself
        pass
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("accoil-transform")
    except PackageNotFoundError:  # run from a source tree
        from .. import __version__

        return __version__


if __name__ == "__main__":
    console_main()
