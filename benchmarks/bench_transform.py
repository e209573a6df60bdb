#!/usr/bin/env python
"""Benchmark the product end to end against DuckDB SQL and plain per-row Python.

Synthetic Export API zips (``accoil_transform.testing.synthetic``, generated on the fly in a
temporary folder, never committed), one per data SHAPE, because group resolution's cost
depends on how an account's data repeats:

* ``stable``: an account's traits are the same on all its events, each user stays in one
  account (the common B2B export);
* ``stable-roaming``: stable traits, but each event is in an account drawn at random;
* ``volatile``: every group's traits carry a counter that changes on every event;
* ``volatile-roaming``: both.

Each corpus is transformed by four contenders, each in its own process, ``--repeat`` times,
interleaved:

* ``ours CLI``: ``accoil-transform run ZIP --dry-run --format stream`` as a user types it,
  timed from spawn to exit: interpreter start, imports and teardown included (the
  package's bytecode is written first, as an install does: ``compile_package``). The stream
  format makes one call per kept event, the track record with its ``groupTraits``: the
  same output as the two baselines;
* ``ours library``: ``accoil_transform.run(zip, TransformConfig(), RunOptions(format="v2",
  out=...))`` in a Python child, timed around the call (the notebook's view); v2 also
  makes the identify and group calls (many more group calls when users roam);
* ``duckdb``: one SQL statement (``SET threads=2``) over the zip's members, extracted
  once to ``.json.gz`` files *outside* the timing: dedupe, filters, groups exploded, the
  primary group and its traits, one track record per kept event, ``COPY ... (FORMAT JSON)``;
* ``python``: ``zipfile`` + ``gzip`` + ``orjson``, one row at a time, same rules, NDJSON out.

Polars and DuckDB are held to 2 threads (``POLARS_MAX_THREADS``, ``SET threads``). Every
contender is compared on its PROCESS time (spawn to exit, the same for all: what a job
pays); the work time inside the child is shown beside it. The MEDIAN over the repeats is
quoted. Each child writes a new file: the previous repeat's output is deleted and every
file flushed to disk (``os.sync``) before it starts: truncating a file that the kernel is
still writing back waits for the disk, and the kernel's writeback of the last contender's
output takes CPU from the next. Peak RSS is the child's high-water mark, ``VmHWM`` of
``/proc/PID/status``, polled by the parent every 20 ms until the child exits
(``ru_maxrss`` is no good here: Linux carries it over ``exec`` from the parent that
spawned the child). Afterwards the sets of track records (userId, event, timestamp, parsed
groupTraits, keyed by uuid or ($insert_id, device_id)) are compared; any disagreement is
printed and the exit code is 1. Finally an export of ``--memory-events`` events is run once
through the CLI (dry run) to check peak RSS against the bounded-memory target.
``--chunk-mb``, ``--read-mb`` and ``--decode-kb`` set the reader's sizes of the library
runs (``RunOptions(read=ReadOptions(...))``).

    python benchmarks/bench_transform.py      # 300k x 2 KB x 4 shapes, 1M memory run
    python benchmarks/bench_transform.py --events 50000 --repeat 1 --memory-events 0 \
        --shapes stable,volatile
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
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

THREADS = 2  # the machine has 2 cores; polars and DuckDB are both held to this
MEMORY_TARGET_MB = 1024.0  # 1 GB

#: SPEC §2 placeholder user ids (compared lower-cased, after trimming). Restated here on
#: purpose, so that the reference implementations do not share the product's constants.
PLACEHOLDERS = (
    "", "null", "none", "nil", "undefined", "anonymous", "0", "-1",
    "00000000-0000-0000-0000-000000000000",
)  # fmt: skip
IDENTIFY_TYPES = ("$identify", "$groupidentify")
MEMBER_RE = re.compile(r"(?:^|/)(\d+)_(\d{4}-\d{2}-\d{2})_(\d{1,2})#(\d+)\.json(?:\.gz)?$")

CONTENDERS = ("ours-cli", "ours-lib", "duckdb", "python")
LABELS = {
    "ours-cli": "ours: CLI, stream calls",
    "ours-lib": "ours: library, v2 calls",
    "duckdb": "DuckDB SQL",
    "python": "Python per row (orjson)",
}
CORES = {"ours-cli": THREADS, "ours-lib": THREADS, "duckdb": THREADS, "python": 1}

#: name: (generator switches, what it is, the target over DuckDB)
SHAPES: dict[str, tuple[dict[str, bool], str, float]] = {
    "stable": ({}, "stable account traits, users in one account", 1.5),
    "stable-roaming": (
        {"roaming_users": True}, "stable traits, each event in a random account", 1.5,
    ),
    "volatile": ({"volatile_traits": True}, "traits that change on every event", 1.0),
    "volatile-roaming": (
        {"volatile_traits": True, "roaming_users": True},
        "changing traits, each event in a random account", 1.0,
    ),
}  # fmt: skip


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
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rows_read": res.report.rows_read,
        "kept": res.report.kept,
        "calls": res.report.calls,
        "peak_at_end_kb": peak,
    }


def write_keys(zip_path: str, fmt: str, keys: str) -> None:
    """The call ids, line for line with the NDJSON of a run (untimed, for the check):
    the same calls, rebuilt in memory in the same order as the file."""
    import accoil_transform as at

    r = at.transform(zip_path, at.TransformConfig())
    calls = at.build_calls(r.tracks, r.identifies, r.groups, fmt)
    Path(keys).write_text("\n".join(calls["call_id"].to_list()) + "\n")


def child_keys(spec: dict[str, Any]) -> dict[str, Any]:
    write_keys(spec["zip"], spec["format"], spec["keys"])
    return {}


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
    kinds = {"ours": child_ours, "keys": child_keys, "duckdb": child_duckdb, "python": child_python}
    fn = kinds[spec["kind"]]
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


def cli_command() -> str:
    """The ``accoil-transform`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("accoil-transform")
    if not script.exists():
        raise SystemExit(f"{script} not found: pip install -e . in this environment first")
    return str(script)


def _watch_peak(pid: int, peak_kb: list[int], done: threading.Event) -> None:
    """Poll ``VmHWM`` of ``pid`` (KiB) into ``peak_kb[0]`` until ``done`` is set."""
    path = f"/proc/{pid}/status"
    while not done.wait(0.02):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak_kb[0] = max(peak_kb[0], int(line.split()[1]))
                        break
        except (OSError, ValueError):
            return


def run_process(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; its process wall time, CPU (from ``wait4``) and polled peak RSS."""
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    peak_kb, done = [0], threading.Event()
    watcher = threading.Thread(target=_watch_peak, args=(proc.pid, peak_kb, done), daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    process_s = time.perf_counter() - t0
    done.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed with exit code {proc.returncode}")
    return {
        "process_s": process_s,
        "process_cpu_s": usage.ru_utime + usage.ru_stime,
        "load_before": load_before,
        "polled_peak_kb": peak_kb[0],
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one contender in a fresh process; its times and peak RSS.

    ``wall_s`` is the work as the child timed it (the CLI: the process itself),
    ``process_s`` spawn to exit.
    """
    # Untimed: the last repeat's output goes (truncating a file whose pages are still
    # being written back waits for the disk), and the other contenders' outputs are
    # flushed (the kernel's writeback would otherwise take CPU from this one).
    Path(spec["out"]).unlink(missing_ok=True)
    os.sync()
    if spec.get("keys") and spec["kind"] != "keys":  # untimed, in a child of its own
        keys = {"kind": "keys", "out": spec["keys"] + ".unused", "result": spec["result"]}
        run_child(keys | {k: spec[k] for k in ("zip", "format", "keys")})
    if spec["kind"] == "cli":
        env = {k: v for k, v in child_env().items() if not k.startswith("ACCOIL_")}
        cmd = [cli_command(), "run", spec["zip"], "--dry-run", "--format", spec["format"]]
        cmd += ["--out", spec["out"], "--report", spec["result"], "--quiet"]
        result = run_process(cmd, env)
        report = json.loads(Path(spec["result"]).read_text())
        result |= {
            "wall_s": result["process_s"],
            "cpu_s": result["process_cpu_s"],
            "rows_read": report["rows_read"],
            "peak_rss_mb": result["polled_peak_kb"] / 1024,
        }
        return result
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    result = run_process(cmd, child_env())
    result |= json.loads(Path(spec["result"]).read_text())
    if "peak_at_end_kb" in result:
        result["peak_rss_mb"] = max(result["peak_at_end_kb"], result["polled_peak_kb"]) / 1024
    return result


def generate_corpus(
    path: Path,
    events: int,
    event_bytes: int,
    members: int | None,
    seed: int,
    shape: dict[str, bool] | None = None,
) -> None:
    from accoil_transform.testing.synthetic import generate_events, write_export_zip

    if path.exists():
        print(f"reusing {path}", flush=True)
        return
    t0 = time.perf_counter()
    partial = path.with_suffix(".partial")
    write_export_zip(
        partial,
        generate_events(events, seed=seed, event_bytes=event_bytes, **(shape or {})),
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
    p.add_argument(
        "--shapes",
        type=lambda text: text.split(","),
        default=list(SHAPES),
        help=f"comma-separated data shapes ({', '.join(SHAPES)}; default: all)",
    )
    p.add_argument("--repeat", type=int, default=3, help="runs per contender; the median is quoted")
    p.add_argument(
        "--memory-events", type=int, default=1_000_000,
        help="events of the bounded-memory run (ours, v2, dry run); 0 skips it",
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
    unknown = [shape for shape in args.shapes if shape not in SHAPES]
    if unknown:
        p.error(f"unknown shape {unknown[0]!r}; choose from {', '.join(SHAPES)}")
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


def run_shape(args: argparse.Namespace, work: Path, shape: str) -> dict[str, Any]:
    """Generate the shape's corpus, run every contender on it and check they agree."""
    switches, _, _ = SHAPES[shape]
    n = args.events
    corpus = work / f"corpus-{shape}-{n}-{args.event_bytes}b-{args.members}m-s{args.seed}.zip"
    generate_corpus(corpus, n, args.event_bytes, args.members, args.seed, switches)
    files, uncompressed = extract_members(corpus, work / f"members-{shape}")
    print(
        f"{shape}: {n:,} events in {len(files)} members, "
        f"{corpus.stat().st_size / 1e6:,.0f} MB zipped, {uncompressed / 1e6:,.0f} MB "
        f"uncompressed ({uncompressed / n:,.0f} B/event)",
        flush=True,
    )
    outputs = {c: work / f"out-{c}.ndjson" for c in CONTENDERS}
    keys = {c: work / f"keys-{c}.txt" for c in ("ours-cli", "ours-lib")}
    formats = {"ours-cli": "stream", "ours-lib": "v2"}
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
    for rep in range(args.repeat):
        for c in CONTENDERS:  # interleaved, so drift on the machine hits all alike
            spec: dict[str, Any] = {
                "name": c,
                "out": str(outputs[c]),
                "result": str(work / f"result-{c}.json"),
            }
            if c.startswith("ours"):
                spec |= {"kind": "cli" if c == "ours-cli" else "ours", "zip": str(corpus)}
                spec |= {"format": formats[c], "read": args.read}
                spec["keys"] = str(keys[c]) if rep == args.repeat - 1 else None
            elif c == "duckdb":
                spec |= {"kind": "duckdb", "files": files, "tmp": str(work / "duckdb-tmp")}
            else:
                spec |= {"kind": "python", "zip": str(corpus)}
            r = run_child(spec)
            runs[c].append(r)
            print(
                f"  run {rep + 1}/{args.repeat} {c:<9} {r['process_s']:7.2f} s process "
                f"{r['wall_s']:7.2f} s work {r['process_cpu_s']:7.2f} s CPU  "
                f"peak {r['peak_rss_mb']:6.0f} MB  (load average before: {r['load_before']:.1f})",
                flush=True,
            )
    shutil.rmtree(work / f"members-{shape}", ignore_errors=True)
    if not (args.keep or args.workdir):
        corpus.unlink(missing_ok=True)

    print("  checking that the contenders agree on the track records ...", flush=True)
    cli = load_ours(outputs["ours-cli"], keys["ours-cli"], with_traits=True)
    lib = load_ours(outputs["ours-lib"], keys["ours-lib"], with_traits=False)
    duck = load_reference(outputs["duckdb"])
    py = load_reference(outputs["python"])
    notes: list[str] = []
    problems = (
        compare("ours-cli", cli, "duckdb", duck, notes)
        + compare("ours-cli", cli, "python", py, notes)
        + compare("duckdb", duck, "python", py, notes)
        + compare("ours-lib", lib, "ours-cli", cli, notes, fields=3)
    )
    with_groups = sum(1 for v in cli.values() if len(v) > 3 and v[3])
    print(
        f"  track records: ours-lib {len(lib):,}, ours-cli {len(cli):,}, duckdb {len(duck):,}, "
        f"python {len(py):,} ({with_groups:,} with a primary group); "
        + ("all agree" if not problems else "DISAGREE"),
        flush=True,
    )
    for line in problems:
        print("    " + line)
    for line in notes:
        print("    note: " + line)
    return {
        "shape": shape,
        "members": len(files),
        "uncompressed_bytes": uncompressed,
        "runs": runs,
        "agree": not problems,
        "problems": problems,
        "notes": notes,
    }


def shape_table(result: dict[str, Any], n: int) -> tuple[str, dict[str, float]]:
    """The markdown table of one shape, and each contender's events/s (process time)."""
    runs = result["runs"]
    process = {c: statistics.median(r["process_s"] for r in runs[c]) for c in CONTENDERS}
    rate = {c: n / process[c] for c in CONTENDERS}
    rows = []
    for c in CONTENDERS:
        rows.append(
            [
                LABELS[c],
                f"{process[c]:.2f}",
                f"{statistics.median(r['wall_s'] for r in runs[c]):.2f}",
                f"{statistics.median(r['process_cpu_s'] for r in runs[c]):.2f}",
                fmt_int(rate[c]),
                fmt_int(max(r["peak_rss_mb"] for r in runs[c])),
                f"{rate['ours-cli'] / rate[c]:.2f}×",
            ]
        )
    header = [
        "contender", "process s", "work s", "CPU s", "events/s", "peak RSS MB",
        "ours CLI ÷ this",
    ]  # fmt: skip
    return table(rows, header), rate


def memory_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    m = args.memory_events
    label = "hourly" if args.memory_members is None else f"{args.memory_members}m"
    mem_zip = work / f"memory-{m}-{args.event_bytes}b-{label}-s{args.seed}.zip"
    print(f"\nbounded-memory run: {m:,} events through the CLI ...", flush=True)
    generate_corpus(mem_zip, m, args.event_bytes, args.memory_members, args.seed)
    with zipfile.ZipFile(mem_zip) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        sizes = [member_size(zf, i) for i in infos]
    mem_out = work / "out-memory.ndjson"
    spec = {"name": "memory", "kind": "cli", "zip": str(mem_zip), "format": "v2"}
    r = run_child(spec | {"out": str(mem_out), "result": str(work / "result-memory.json")})
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
    return memory


def compile_package() -> None:
    """Write the package's bytecode once, as ``pip install`` does.

    An editable install writes it on first import, unless ``PYTHONDONTWRITEBYTECODE`` is
    set (as on this project's machines): then every CLI start would compile the package
    anew, about 0.05 s that an installed package never pays.
    """
    import compileall

    import accoil_transform

    compileall.compile_dir(Path(accoil_transform.__file__).parent, quiet=1)


def _bench(args: argparse.Namespace, work: Path) -> int:
    import duckdb
    import orjson
    import polars as pl

    n = args.events
    compile_package()
    results = [run_shape(args, work, shape) for shape in args.shapes]
    memory = memory_run(args, work) if args.memory_events > 0 else None

    cpu = os.cpu_count()
    loads = [r["load_before"] for res in results for c in CONTENDERS for r in res["runs"][c]]
    print("\n## Results\n")
    per_event = statistics.median(res["uncompressed_bytes"] / n for res in results)
    print(
        f"{n:,} events per shape (~{per_event:,.0f} B each) in {results[0]['members']} gzip "
        f"members; median of {args.repeat} runs; {cpu} CPUs; "
        f"polars {pl.__version__} (POLARS_MAX_THREADS={THREADS}), duckdb {duckdb.__version__} "
        f"(threads={THREADS}), orjson {orjson.__version__}, Python {platform.python_version()}; "
        f"1-min load average before the runs {min(loads):.1f}–{max(loads):.1f}"
        + "".join(f"; ours with {k}={v:,}" for k, v in args.read.items())
        + ". Rates are events ÷ process time (spawn to exit).\n"
    )
    targets = []
    for res in results:
        shape = res["shape"]
        _, about, vs_target = SHAPES[shape]
        text, rate = shape_table(res, n)
        print(f"### {shape}: {about}\n\n{text}\n")
        vs_duck = rate["ours-cli"] / rate["duckdb"]
        work = {c: statistics.median(r["wall_s"] for r in res["runs"][c]) for c in CONTENDERS}
        lib_vs_duck = work["duckdb"] / work["ours-lib"]
        res["events_per_s"] = rate
        targets += [
            (f"{shape}: ours CLI ≥ {vs_target:g}× DuckDB (process time)", vs_duck >= vs_target, f"{vs_duck:.2f}×; library ÷ DuckDB on work time {lib_vs_duck:.2f}×"),
            (f"{shape}: the contenders agree on the track records", res["agree"], "" if res["agree"] else "see above"),
        ]  # fmt: skip
    if memory:
        ok = memory["peak_rss_mb"] <= MEMORY_TARGET_MB
        targets.append(
            (
                f"{memory['events']:,} events (CLI dry run) peak RSS ≤ {MEMORY_TARGET_MB:,.0f} MB",
                ok,
                f"{memory['peak_rss_mb']:,.0f} MB; {memory['members']} members, largest "
                f"{memory['largest_member_mb']:,.0f} MB, {memory['uncompressed_mb']:,.0f} MB "
                f"uncompressed; {memory['process_s']:.1f} s, "
                f"{fmt_int(memory['events'] / memory['process_s'])} events/s",
            )
        )
    for text, ok, detail in targets:
        print(f"- {text}: **{verdict(ok)}**" + (f" ({detail})" if detail else ""))

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "events": n,
                    "read_options": args.read,
                    "shapes": results,
                    "memory": memory,
                    "targets": [{"target": t, "met": ok, "detail": d} for t, ok, d in targets],
                },
                indent=2,
            )
        )
    return 0 if all(res["agree"] for res in results) else 1


if __name__ == "__main__":
    sys.exit(main())
