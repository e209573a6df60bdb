#!/usr/bin/env python
"""Benchmark the product end to end against DuckDB SQL and plain per-row Python.

One synthetic Export API zip (``accoil_transform.testing.synthetic``, generated on the fly in a
temporary folder, never committed) is transformed by four contenders, each in its own
subprocess, ``--repeat`` times, interleaved:

* ``ours v2`` / ``ours stream``: ``accoil_transform.run(zip, TransformConfig(),
  RunOptions(format=..., out=...))``: zip to every call body, written as dry-run NDJSON
  (polars, ``POLARS_MAX_THREADS=2``);
* ``duckdb``: one SQL statement (``SET threads=2``) over the zip's members, extracted
  once to ``.json.gz`` files *outside* the timing: dedupe, filters, groups exploded, the
  primary group and its traits, one track record per kept event, ``COPY ... (FORMAT JSON)``;
* ``python``: ``zipfile`` + ``gzip`` + ``orjson``, one row at a time, same rules, NDJSON out.

Wall time is measured inside each child around the work only (imports excluded, the same
for all); the MEDIAN over the repeats is quoted. Each child writes a new file: the
previous repeat's output is deleted and every file flushed to disk (``os.sync``) before
it starts: truncating a file that the kernel is still writing back waits for the disk,
and the kernel's writeback of the last contender's output takes CPU from the next. Peak RSS is the child's own high-water
mark: ``VmHWM`` of ``/proc/self/status``, read in the child at its end (``ru_maxrss``
is no good here: Linux carries it over ``exec`` from the parent that spawned the child,
so a child started while the parent held a lot of memory would report the parent's). Afterwards the three
sets of track records (userId, event, timestamp, parsed groupTraits, keyed by uuid or
($insert_id, device_id)) are compared; any disagreement is printed and the exit code is 1.
Finally an export of ``--memory-events`` events is run once through ``ours stream`` to
check peak RSS against the bounded-memory target. ``--chunk-mb``, ``--read-mb`` and
``--decode-kb`` set the reader's sizes of our runs (``RunOptions(read=ReadOptions(...))``).

    python benchmarks/bench_transform.py      # 300k x 2 KB, 6 members, 1M memory run
    python benchmarks/bench_transform.py --events 50000 --repeat 1 --memory-events 0
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

THREADS = 2  # the machine has 2 cores; polars and DuckDB are both held to this
MEMORY_TARGET_MB = 1536.0  # 1.5 GB
TARGET_VS_DUCKDB = 1.5
TARGET_VS_PYTHON = 4.0
TARGET_PER_CORE = 100_000

#: SPEC §2 placeholder user ids (compared lower-cased, after trimming). Restated here on
#: purpose, so that the reference implementations do not share the product's constants.
PLACEHOLDERS = (
    "", "null", "none", "nil", "undefined", "anonymous", "0", "-1",
    "00000000-0000-0000-0000-000000000000",
)  # fmt: skip
IDENTIFY_TYPES = ("$identify", "$groupidentify")
MEMBER_RE = re.compile(r"(?:^|/)(\d+)_(\d{4}-\d{2}-\d{2})_(\d{1,2})#(\d+)\.json(?:\.gz)?$")

CONTENDERS = ("ours-v2", "ours-stream", "duckdb", "python")
LABELS = {
    "ours-v2": "ours (v2 calls)",
    "ours-stream": "ours (stream calls)",
    "duckdb": "DuckDB SQL",
    "python": "Python per row (orjson)",
}
CORES = {"ours-v2": THREADS, "ours-stream": THREADS, "duckdb": THREADS, "python": 1}


# --------------------------------------------------------------------------- contenders
# Each runs in a fresh child process (``--child SPEC``) and writes a small JSON result.


def _peak_rss_kb() -> int:
    """This process's peak resident memory (KiB), since its ``exec``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: best effort


def _cpu() -> float:
    """CPU seconds (user + system, all threads) this process has used so far."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def child_ours(spec: dict[str, Any]) -> dict[str, Any]:
    import accoil_transform as at

    c0, t0 = _cpu(), time.perf_counter()
    read = at.ReadOptions(**spec.get("read", {}))  # the defaults unless sizes are given
    res = at.run(
        spec["zip"],
        at.TransformConfig(),
        at.RunOptions(format=spec["format"], out=Path(spec["out"]), read=read),
    )
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    peak = _peak_rss_kb()
    if spec.get("keys"):
        # Outside the timing: the call ids, line for line with the NDJSON, for the check.
        # The same calls, rebuilt in memory in the same order as the file.
        r = at.transform(spec["zip"], at.TransformConfig())
        calls = at.build_calls(r.tracks, r.identifies, r.groups, spec["format"])
        Path(spec["keys"]).write_text("\n".join(calls["call_id"].to_list()) + "\n")
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rows_read": res.report.rows_read,
        "kept": res.report.kept,
        "calls": res.report.calls,
        "peak_at_end_kb": peak,
    }


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_sql(files: list[str], out: str) -> str:
    """The whole transform as one DuckDB statement (SPEC §2–4, track records only)."""
    file_list = "[" + ", ".join(_sql_str(f) for f in files) + "]"
    placeholders = ", ".join(_sql_str(p) for p in PLACEHOLDERS)
    identify = ", ".join(_sql_str(t) for t in IDENTIFY_TYPES)
    # A JSON path that selects one key literally ($."key"), whatever characters it holds.
    key_path = "'$.\"' || replace(replace({k}, '\\', '\\\\'), '\"', '\\\"') || '\"'"
    type_path = key_path.format(k="p.gtype")
    id_path = key_path.format(k="p.gid")
    return f"""
COPY (
  WITH src AS (
    SELECT ordinality - 1 AS row_no, uuid, "$insert_id" AS insert_id, device_id, user_id,
           event_type, event_time, groups, group_properties
    FROM read_ndjson({file_list},
      columns = {{'uuid': 'VARCHAR', '$insert_id': 'VARCHAR', 'device_id': 'VARCHAR',
                 'user_id': 'VARCHAR', 'event_type': 'VARCHAR', 'event_time': 'VARCHAR',
                 'groups': 'JSON', 'group_properties': 'JSON'}}) WITH ORDINALITY
  ),
  parsed AS (
    SELECT row_no,
      CASE WHEN trim(uuid) <> '' THEN 'u:' || trim(uuid)
           WHEN trim(insert_id) <> '' THEN 'i:' || trim(insert_id) || '|' || coalesce(device_id, '')
      END AS dkey,
      trim(user_id) AS uid, event_type, try_cast(trim(event_time) AS TIMESTAMPTZ) AS ts,
      groups, group_properties
    FROM src
  ),
  valid AS (        -- malformed rows (no event_type / unreadable time) are out first
    SELECT * FROM parsed WHERE event_type IS NOT NULL AND ts IS NOT NULL
  ),
  deduped AS (      -- the first occurrence in input order, judged before any filter
    SELECT * FROM valid
    QUALIFY dkey IS NULL OR row_number() OVER (PARTITION BY dkey ORDER BY row_no) = 1
  ),
  kept AS (
    SELECT * FROM deduped
    WHERE uid IS NOT NULL AND lower(uid) NOT IN ({placeholders})
      AND event_type NOT IN ({identify})
  ),
  entries AS (      -- one row per (event, group type); the value as JSON
    SELECT row_no, unnest(map_entries(json_transform(groups, '"MAP(VARCHAR, JSON)"'))) AS e
    FROM kept
    WHERE json_type(groups) = 'OBJECT' AND group_properties IS NOT NULL
  ),
  ids AS (          -- a list or a single scalar; numbers become text, nulls are skipped
    SELECT row_no, e.key AS gtype,
      unnest(CASE WHEN json_type(e.value) = 'ARRAY' THEN json_transform(e.value, '["JSON"]')
                  ELSE [e.value] END) AS id
    FROM entries
  ),
  prim AS (         -- min by (groupId code point, group type); VARCHAR order is binary
    SELECT row_no, min({{'gid': id ->> '$', 'gtype': gtype}}) AS p
    FROM ids WHERE id IS NOT NULL AND json_type(id) <> 'NULL'
    GROUP BY row_no
  ),
  tracks AS (
    SELECT k.row_no, k.dkey, k.uid, k.event_type, k.ts, p.p.gid AS gid, p.p.gtype AS gtype,
      json_extract(json_extract(k.group_properties, {type_path}), {id_path}) AS raw
    FROM kept k LEFT JOIN prim p USING (row_no)
  )
  SELECT coalesce(dkey, 'r:' || row_no) AS key, uid AS userId, event_type AS event,
    strftime(ts, '%Y-%m-%dT%H:%M:%S.%gZ') AS timestamp,
    CASE WHEN gid IS NULL THEN '[]'::JSON
         ELSE json_array(json_object('groupId', gid, 'traits',
           CASE WHEN json_type(raw) = 'OBJECT'
                THEN json_merge_patch(raw, json_object('group_type', gtype))
                ELSE json_object('group_type', gtype) END))
    END AS groupTraits
  FROM tracks
  ORDER BY ts, row_no
) TO {_sql_str(out)} (FORMAT JSON)
"""


def child_duckdb(spec: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    con.execute("SET TimeZone = 'UTC'")  # a time with no zone is UTC
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET temp_directory = {_sql_str(spec['tmp'])}")
    sql = duckdb_sql(spec["files"], spec["out"])
    c0, t0 = _cpu(), time.perf_counter()
    con.execute(sql)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"wall_s": wall, "cpu_s": cpu, "peak_at_end_kb": _peak_rss_kb()}


def _id_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    import orjson

    return orjson.dumps(value).decode()


def python_group_traits(groups: Any, group_properties: Any) -> list[dict[str, Any]]:
    """SPEC §4 for one event, in plain Python."""
    if groups is None or group_properties is None or not isinstance(groups, dict):
        return []
    best: tuple[str, str] | None = None
    for gtype, value in groups.items():
        for raw in value if isinstance(value, list) else (value,):
            if raw is None:
                continue
            cand = (_id_text(raw), gtype)
            if best is None or cand < best:  # str order is code-point order
                best = cand
    if best is None:
        return []
    gid, gtype = best
    by_type = group_properties.get(gtype) if isinstance(group_properties, dict) else None
    found = by_type.get(gid) if isinstance(by_type, dict) else None
    traits = dict(found) if isinstance(found, dict) else {}
    traits["group_type"] = gtype
    return [{"groupId": gid, "traits": traits}]


def _utc_iso(value: Any) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS.ffffff`` in UTC (sortable text), or None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds")


def _zip_lines(path: str) -> Iterator[bytes]:
    """Every line of every member, in the product's member order, streamed (zlib)."""
    with zipfile.ZipFile(path) as zf:
        for info in sorted(zf.infolist(), key=lambda i: member_order(i.filename)):
            if info.is_dir():
                continue
            with zf.open(info) as raw, gzip.GzipFile(fileobj=raw) as lines:
                yield from lines


def child_python(spec: dict[str, Any]) -> dict[str, Any]:
    import orjson

    loads, dumps = orjson.loads, orjson.dumps
    placeholders = frozenset(PLACEHOLDERS)
    c0, t0 = _cpu(), time.perf_counter()
    seen: set[str] = set()
    # (event time, row, start, end) of each record's JSON in ``text``: one buffer, because
    # a bytes object from orjson.dumps each would pin ~4 KB of heap apiece.
    records: list[tuple[str, int, int, int]] = []
    text = bytearray()
    row = -1
    for line in _zip_lines(spec["zip"]):
        if not line.strip():
            continue
        row += 1
        try:
            ev = loads(line)
        except orjson.JSONDecodeError:
            continue  # malformed
        if not isinstance(ev, dict):
            continue  # malformed
        event_type = ev.get("event_type")
        when = _utc_iso(ev.get("event_time"))
        if event_type is None or when is None:
            continue  # malformed
        uuid = ev.get("uuid")
        uuid = uuid.strip() if isinstance(uuid, str) else ""
        insert_id = ev.get("$insert_id")
        insert_id = insert_id.strip() if isinstance(insert_id, str) else ""
        if uuid:
            key = "u:" + uuid
        elif insert_id:
            key = "i:" + insert_id + "|" + (ev.get("device_id") or "")
        else:
            key = None
        if key is not None:
            if key in seen:
                continue  # duplicate: the first occurrence in input order wins
            seen.add(key)
        uid = ev.get("user_id")
        if uid is None:
            continue  # no_user_id
        uid = (uid if isinstance(uid, str) else _id_text(uid)).strip()
        if uid.lower() in placeholders:
            continue  # no_user_id
        if event_type in IDENTIFY_TYPES:
            continue  # identify_call
        record = {
            "key": key or f"r:{row}",
            "userId": uid,
            "event": event_type,
            "timestamp": when[:23] + "Z",
            "groupTraits": python_group_traits(ev.get("groups"), ev.get("group_properties")),
        }
        start = len(text)
        text += dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        records.append((when, row, start, len(text)))
    records.sort()  # event time, then input order, like the product
    view = memoryview(text)
    with open(spec["out"], "wb") as fh:
        for i in range(0, len(records), 50_000):
            fh.write(b"".join(view[a:b] for _, _, a, b in records[i : i + 50_000]))
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rows_read": row + 1,
        "kept": len(records),
        "peak_at_end_kb": _peak_rss_kb(),
    }


def child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    fn = {"ours": child_ours, "duckdb": child_duckdb, "python": child_python}[spec["kind"]]
    result = fn(spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- parent


def member_order(name: str) -> tuple:
    """The product's member order: (day, hour, n), then name (SPEC §1 naming)."""
    m = MEMBER_RE.search(name)
    if m:
        return (0, m.group(2), int(m.group(3)), int(m.group(4)), name)
    return (1, "", 0, 0, name)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["POLARS_MAX_THREADS"] = str(THREADS)
    return env


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one contender in a fresh process; add its process wall time and peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    # Untimed: the last repeat's output goes (truncating a file whose pages are still
    # being written back waits for the disk), and the other contenders' outputs are
    # flushed (the kernel's writeback would otherwise take CPU from this one).
    Path(spec["out"]).unlink(missing_ok=True)
    os.sync()
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=child_env())
    _, status, _ = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"contender {spec['name']} failed with exit code {proc.returncode}")
    result = json.loads(Path(spec["result"]).read_text())
    result["process_s"] = process_s
    result["load_before"] = load_before
    result["peak_rss_mb"] = result["peak_at_end_kb"] / 1024
    return result


def generate_corpus(
    path: Path, events: int, event_bytes: int, members: int | None, seed: int
) -> None:
    from accoil_transform.testing.synthetic import generate_events, write_export_zip

    if path.exists():
        print(f"reusing {path}", flush=True)
        return
    t0 = time.perf_counter()
    partial = path.with_suffix(".partial")
    write_export_zip(
        partial,
        generate_events(events, seed=seed, event_bytes=event_bytes),
        members=members,
    )
    partial.rename(path)
    print(f"generated {path.name} in {time.perf_counter() - t0:.1f} s", flush=True)


def member_size(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Uncompressed size of a .json.gz member (its gzip ISIZE trailer, mod 2**32)."""
    with zf.open(info) as fh:
        head = fh.read(2)
        if head != b"\x1f\x8b":
            return info.file_size
        fh.seek(info.file_size - 4)
        return int.from_bytes(fh.read(4), "little")


def extract_members(zip_path: Path, into: Path) -> tuple[list[str], int]:
    """Copy the zip's members, in the product's order, to plain .json.gz files (untimed)."""
    into.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    uncompressed = 0
    with zipfile.ZipFile(zip_path) as zf:
        infos = sorted(
            (i for i in zf.infolist() if not i.is_dir()), key=lambda i: member_order(i.filename)
        )
        for n, info in enumerate(infos):
            target = into / f"{n:03d}_{info.filename.rsplit('/', 1)[-1]}"
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            uncompressed += member_size(zf, info)
            files.append(str(target))
    return files, uncompressed


# --------------------------------------------------------------------------- agreement


def _norm_key(call_id: str) -> str:
    key = call_id.split(":track:", 1)[1]
    if key.startswith("r:"):  # no uuid nor insert id: r:<user>|<time>|<row>
        return "r:" + key.rsplit("|", 1)[1]
    return key


def load_ours(out: Path, keys: Path, with_traits: bool) -> dict[str, tuple]:
    import orjson

    records: dict[str, tuple] = {}
    dup = 0
    with open(out, "rb") as lines, open(keys, encoding="utf-8") as ids:
        for line, call_id in zip(lines, ids, strict=True):
            if ":track:" not in call_id:
                continue
            body = orjson.loads(line)["body"]
            key = _norm_key(call_id.rstrip("\n"))
            value = (body["userId"], body["event"], body["timestamp"])
            if with_traits:
                value += (body.get("groupTraits"),)
            dup += key in records
            records[key] = value
    if dup:
        records["__duplicate_keys__"] = (dup,)
    return records


def load_reference(out: Path) -> dict[str, tuple]:
    import orjson

    records: dict[str, tuple] = {}
    dup = 0
    with open(out, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = orjson.loads(line)
            dup += r["key"] in records
            records[r["key"]] = (r["userId"], r["event"], r["timestamp"], r["groupTraits"])
    if dup:
        records["__duplicate_keys__"] = (dup,)
    return records


def compare(
    name_a: str, a: dict, name_b: str, b: dict, notes: list[str], fields: int = 4
) -> list[str]:
    """Differences between two keyed record sets (first ``fields`` values), as messages.

    Values are compared as parsed JSON (so key order does not matter); differences in
    how equal numbers are written go to ``notes``.
    """
    problems: list[str] = []
    only_a = a.keys() - b.keys()
    only_b = b.keys() - a.keys()
    if only_a:
        problems.append(f"{len(only_a)} records only in {name_a}, e.g. {sorted(only_a)[:3]}")
    if only_b:
        problems.append(f"{len(only_b)} records only in {name_b}, e.g. {sorted(only_b)[:3]}")
    common = a.keys() & b.keys()
    diff = [k for k in common if a[k][:fields] != b[k][:fields]]
    if diff:
        problems.append(f"{len(diff)} records differ between {name_a} and {name_b}:")
        for k in sorted(diff)[:3]:
            problems.append(f"  {k}\n    {name_a}: {a[k][:fields]}\n    {name_b}: {b[k][:fields]}")
    # Equal as JSON values but not as text (e.g. 48.0 vs 48): reported, not a failure.
    text = [k for k in common if _text(a[k][:fields]) != _text(b[k][:fields])]
    text = [k for k in text if a[k][:fields] == b[k][:fields]]
    if text:
        k = min(text)
        notes.append(
            f"{len(text):,} records equal as JSON values but written differently by {name_a} "
            f"and {name_b} (e.g. 48.0 vs 48), e.g. {k}:\n    {name_a}: {_text(a[k][:fields])}"
            f"\n    {name_b}: {_text(b[k][:fields])}"
        )
    return problems


def _text(value: tuple) -> bytes:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


# --------------------------------------------------------------------------- report


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument(
        "--event-bytes", type=int, default=2000, help="about this many bytes per JSON line"
    )
    p.add_argument("--members", type=int, default=6, help="zip members of the corpus")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3, help="runs per contender; the median is quoted")
    p.add_argument(
        "--memory-events", type=int, default=1_000_000,
        help="events of the bounded-memory run (ours, stream, dry run); 0 skips it",
    )  # fmt: skip
    p.add_argument(
        "--memory-members", type=int, default=None,
        help="zip members of the memory corpus (default: one per hour over 24 hours)",
    )  # fmt: skip
    p.add_argument(
        "--workdir",
        type=Path,
        help="folder for the corpus and outputs (default: a new temp folder)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp folder (corpus and outputs)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--chunk-mb", type=int, help="ours: ReadOptions.chunk_bytes in MB (128)")
    p.add_argument("--read-mb", type=int, help="ours: ReadOptions.read_bytes in MB (16)")
    p.add_argument("--decode-kb", type=int, help="ours: ReadOptions.decode_bytes in KB (256)")
    args = p.parse_args(argv)
    sizes = {
        "chunk_bytes": args.chunk_mb and args.chunk_mb << 20,
        "read_bytes": args.read_mb and args.read_mb << 20,
        "decode_bytes": args.decode_kb and args.decode_kb << 10,
    }
    args.read = {k: v for k, v in sizes.items() if v is not None}

    work = args.workdir or Path(tempfile.mkdtemp(prefix="accoil-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, work)
    finally:
        if args.keep or args.workdir:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _bench(args: argparse.Namespace, work: Path) -> int:
    import duckdb
    import orjson
    import polars as pl

    n = args.events
    corpus = work / f"corpus-{n}-{args.event_bytes}b-{args.members}m-s{args.seed}.zip"
    generate_corpus(corpus, n, args.event_bytes, args.members, args.seed)
    files, uncompressed = extract_members(corpus, work / "members")
    print(
        f"corpus: {n:,} events in {len(files)} members, {corpus.stat().st_size / 1e6:,.0f} MB zipped, "
        f"{uncompressed / 1e6:,.0f} MB uncompressed ({uncompressed / n:,.0f} B/event)",
        flush=True,
    )

    outputs = {c: work / f"out-{c}.ndjson" for c in CONTENDERS}
    keys = {c: work / f"keys-{c}.txt" for c in ("ours-v2", "ours-stream")}
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    for rep in range(args.repeat):
        for c in CONTENDERS:  # interleaved, so drift on the machine hits all alike
            spec: dict[str, Any] = {
                "name": c,
                "out": str(outputs[c]),
                "result": str(work / f"result-{c}.json"),
            }
            if c.startswith("ours"):
                spec |= {"kind": "ours", "zip": str(corpus), "format": c.split("-")[1]}
                spec["read"] = args.read
                spec["keys"] = str(keys[c]) if rep == args.repeat - 1 else None
            elif c == "duckdb":
                spec |= {"kind": "duckdb", "files": files, "tmp": str(work / "duckdb-tmp")}
            else:
                spec |= {"kind": "python", "zip": str(corpus)}
            r = run_child(spec)
            runs[c].append(r)
            print(
                f"  run {rep + 1}/{args.repeat} {c:<12} {r['wall_s']:7.2f} s wall "
                f"{r['cpu_s']:7.2f} s CPU  peak {r['peak_rss_mb']:6.0f} MB  "
                f"(load average before: {r['load_before']:.1f})",
                flush=True,
            )

    # ---- agreement
    print("\nchecking that the contenders agree on the track records ...", flush=True)
    stream = load_ours(outputs["ours-stream"], keys["ours-stream"], with_traits=True)
    v2 = load_ours(outputs["ours-v2"], keys["ours-v2"], with_traits=False)
    duck = load_reference(outputs["duckdb"])
    py = load_reference(outputs["python"])
    notes: list[str] = []
    problems = (
        compare("ours-stream", stream, "duckdb", duck, notes)
        + compare("ours-stream", stream, "python", py, notes)
        + compare("duckdb", duck, "python", py, notes)
        + compare("ours-v2", v2, "ours-stream", stream, notes, fields=3)
    )
    agree = not problems
    with_groups = sum(1 for v in stream.values() if len(v) > 3 and v[3])
    print(
        f"track records: ours-stream {len(stream):,}, ours-v2 {len(v2):,}, duckdb {len(duck):,}, "
        f"python {len(py):,} ({with_groups:,} with a primary group)"
    )
    print("agreement: " + ("all three agree" if agree else "DISAGREE"))
    for line in problems:
        print("  " + line)
    for line in notes:
        print("  note: " + line)
    del stream, v2, duck, py

    # ---- table
    med = {c: statistics.median(r["wall_s"] for r in runs[c]) for c in CONTENDERS}
    rate = {c: n / med[c] for c in CONTENDERS}
    peak = {c: max(r["peak_rss_mb"] for r in runs[c]) for c in CONTENDERS}
    rows = []
    for c in CONTENDERS:
        rows.append(
            [
                LABELS[c],
                str(CORES[c]),
                f"{med[c]:.2f}",
                f"{statistics.median(r['process_s'] for r in runs[c]):.2f}",
                f"{statistics.median(r['cpu_s'] for r in runs[c]):.2f}",
                fmt_int(rate[c]),
                fmt_int(rate[c] / CORES[c]),
                fmt_int(peak[c]),
                f"{rate['ours-v2'] / rate[c]:.2f}×",
                f"{rate['ours-stream'] / rate[c]:.2f}×",
            ]
        )
    header = [
        "contender", "threads", "median wall s", "process s", "CPU s", "events/s",
        "events/s per core", "peak RSS MB", "ours v2 ÷ this", "ours stream ÷ this",
    ]  # fmt: skip

    # ---- bounded memory
    memory: dict[str, Any] | None = None
    if args.memory_events > 0:
        m = args.memory_events
        label = "hourly" if args.memory_members is None else f"{args.memory_members}m"
        mem_zip = work / f"memory-{m}-{args.event_bytes}b-{label}-s{args.seed}.zip"
        print(f"\nbounded-memory run: {m:,} events ...", flush=True)
        generate_corpus(mem_zip, m, args.event_bytes, args.memory_members, args.seed)
        with zipfile.ZipFile(mem_zip) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            sizes = [member_size(zf, i) for i in infos]
        mem_out = work / "out-memory.ndjson"
        r = run_child(
            {
                "name": "memory",
                "kind": "ours",
                "zip": str(mem_zip),
                "format": "stream",
                "read": args.read,
                "out": str(mem_out),
                "result": str(work / "result-memory.json"),
            }
        )
        mem_out.unlink(missing_ok=True)
        memory = {
            "events": m,
            "members": len(infos),
            "largest_member_mb": max(sizes) / 1e6,
            "uncompressed_mb": sum(sizes) / 1e6,
            "zip_mb": mem_zip.stat().st_size / 1e6,
            **r,
        }
        if not (args.keep or args.workdir):
            mem_zip.unlink(missing_ok=True)

    # ---- print
    cpu = os.cpu_count()
    loads = [r["load_before"] for c in CONTENDERS for r in runs[c]]
    print("\n## Results\n")
    print(
        f"{n:,} events (~{uncompressed / n:,.0f} B each, {uncompressed / 1e6:,.0f} MB uncompressed) "
        f"in {len(files)} gzip members; median of {args.repeat} runs; {cpu} CPUs; "
        f"polars {pl.__version__} (POLARS_MAX_THREADS={THREADS}), duckdb {duckdb.__version__} "
        f"(threads={THREADS}), orjson {orjson.__version__}, Python {platform.python_version()}; "
        f"1-min load average before the runs {min(loads):.1f}–{max(loads):.1f}"
        + "".join(f"; ours with {k}={v:,}" for k, v in args.read.items())
        + ".\n"
    )
    print(table(rows, header))
    print()
    targets = []
    for fmt in ("v2", "stream"):
        c = f"ours-{fmt}"
        vs_duck = rate[c] / rate["duckdb"]
        vs_py = rate[c] / rate["python"]
        per_core = rate[c] / THREADS
        targets += [
            (f"ours {fmt}: ≥ {TARGET_VS_DUCKDB}× DuckDB throughput", vs_duck >= TARGET_VS_DUCKDB, f"{vs_duck:.2f}×"),
            (f"ours {fmt}: ≥ {TARGET_VS_PYTHON:g}× per-row Python throughput", vs_py >= TARGET_VS_PYTHON, f"{vs_py:.2f}×"),
            (f"ours {fmt}: ≥ {fmt_int(TARGET_PER_CORE)} events/s per core", per_core >= TARGET_PER_CORE, f"{fmt_int(per_core)}/s per core"),
        ]  # fmt: skip
    if memory:
        ok = memory["peak_rss_mb"] < MEMORY_TARGET_MB
        targets.append(
            (
                f"{memory['events']:,} events (ours stream, dry run) under "
                f"{MEMORY_TARGET_MB:,.0f} MB peak RSS",
                ok,
                f"{memory['peak_rss_mb']:,.0f} MB; {memory['members']} members, largest "
                f"{memory['largest_member_mb']:,.0f} MB, {memory['uncompressed_mb']:,.0f} MB "
                f"uncompressed; {memory['wall_s']:.1f} s, "
                f"{fmt_int(memory['events'] / memory['wall_s'])} events/s",
            )
        )
    targets.append(
        ("the three contenders agree on the track records", agree, "" if agree else "see above")
    )
    for text, ok, detail in targets:
        print(f"- {text}: **{verdict(ok)}**" + (f" ({detail})" if detail else ""))

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "events": n,
                    "members": len(files),
                    "uncompressed_bytes": uncompressed,
                    "read_options": args.read,
                    "runs": runs,
                    "median_wall_s": med,
                    "events_per_s": rate,
                    "peak_rss_mb": peak,
                    "memory": memory,
                    "agree": agree,
                    "problems": problems,
                    "notes": notes,
                    "targets": [{"target": t, "met": ok, "detail": d} for t, ok, d in targets],
                },
                indent=2,
            )
        )
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
