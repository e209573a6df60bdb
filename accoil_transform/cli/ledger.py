"""accoil-transform ledger export: a SQLite ledger's acknowledgements as Parquet files.

Writes every call the ledger holds as acknowledged, per destination (base URL and a
one-way hash of the key, never the key), into the acknowledgements table that the Spark
path reads and writes (send_partitions(..., acks=PATH)): columns destination, call_id,
kind, acked_at (empty: the ledger keeps no times). Calls rejected for good go to
PATH/_rejected, with their status. So a backfill started on one machine continues on
Spark without sending anything twice. Files are added beside those already there; the
ledger is opened read-only, without its lock (this works while a run holds it).

Exit codes: 0 done; 2 usage error; 3 no ledger file; 8 the file is not a ledger (or
the table can't be written).
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from ._common import Exit, add_verbosity_flags, fail, plain

#: Rows per Parquet file written.
_ROWS_PER_FILE = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ledger`` subcommand (action ``export``)."""
    p = sub.add_parser(
        "ledger",
        help="the ledger of acknowledged calls: export it for the Spark path",
        description="Work with the SQLite ledger of acknowledged calls.",
    )
    actions = p.add_subparsers(dest="ledger_action", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help="write the ledger's acknowledgements as a Parquet acknowledgements table",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--to", required=True, metavar="PATH", help="the acknowledgements table's folder or URI"
    )
    export.add_argument("--config", type=Path, default=None, help="TOML config file")
    export.add_argument(
        "--ledger",
        type=Path,
        default=None,
        metavar="FILE",
        help="the ledger (default: $ACCOIL_LEDGER, [delivery] ledger, accoil-ledger.sqlite)",
    )
    add_verbosity_flags(export, default=argparse.SUPPRESS)  # ``ledger export -q``
    export.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """``ledger export``: write the acknowledgements, say how many."""
    from ..errors import ConfigError
    from ._common import settings_from_args

    try:
        ledger = Path(settings_from_args(args)["ledger"])
    except ConfigError as exc:
        return fail("ledger export", exc, Exit.USAGE)
    if not ledger.is_file():
        return fail("ledger export", f"{ledger}: no ledger here", Exit.INPUT)
    try:
        acked, rejected = export_ledger(ledger, args.to)
    except (sqlite3.Error, OSError) as exc:
        return fail("ledger export", f"cannot export {ledger}: {exc}", Exit.LEDGER)
    print(
        f"exported {acked:,} acknowledged and {rejected:,} rejected calls from {ledger} "
        f"to {args.to}"
    )
    return Exit.OK


def export_ledger(ledger: str | Path, to: str) -> tuple[int, int]:
    """Write the acknowledged and rejected calls of ``ledger`` into the acknowledgements
    table at ``to``; return how many of each."""
    import os

    import pyarrow as pa

    from ..integrations._spark_acks import REJECTED_DIR, filesystem, rows, run_prefix, write_group

    uri = to if "://" in to or to.startswith("file:") else os.path.abspath(to)
    fs, root = filesystem(uri.rstrip("/"))
    prefix = run_prefix().replace("acks-", "acks-export-", 1)
    conn = sqlite3.connect(f"{Path(ledger).resolve().as_uri()}?mode=ro", uri=True)
    counts = []
    try:
        for table, folder in (("acked", root), ("rejected", f"{root}/{REJECTED_DIR}")):
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            if "destination" not in columns:
                raise sqlite3.DatabaseError(
                    f"no {table}(destination, id) table: not a ledger, or one of an earlier "
                    "version (open it with a run of this version first)"
                )
            status = ", status" if table == "rejected" else ""
            cursor = conn.execute(f"SELECT destination, id{status} FROM {table} ORDER BY 1, 2")
            n = part = 0
            while chunk := cursor.fetchmany(_ROWS_PER_FILE):
                by_destination: dict[str, list[tuple]] = {}
                for row in chunk:
                    by_destination.setdefault(row[0], []).append(row)
                tables = [
                    rows(
                        dest,
                        [r[1] for r in items],
                        None,
                        statuses=[r[2] or 0 for r in items] if status else None,
                    )
                    for dest, items in by_destination.items()
                ]
                part += 1
                write_group(fs, folder, f"{prefix}{part:05d}.parquet", pa.concat_tables(tables))
                n += len(chunk)
            counts.append(n)
    finally:
        conn.close()
    return counts[0], counts[1]
