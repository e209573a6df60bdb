"""Call workloads for the delivery tests: batches in delivery order, and what to expect.

Also imported by the kill/resume child process (``PYTHONPATH`` = the repository root).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from accoil_transform.calls import CALL_KINDS, CallBatch, CallKind, WireFormat, get_format
from accoil_transform.delivery import DeliveryOptions, DeliveryReport, RetryPolicy, send
from accoil_transform.testing import AcceptedCall, LocalAccoil

KEY = "test-key"
#: Retries that wait milliseconds, so fault tests stay fast.
FAST = RetryPolicy(backoff_base=0.005, backoff_cap=0.05, max_attempts=12)
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def body_key(body: dict[str, Any]) -> bytes:
    """A canonical form of a body, to match sent calls with accepted ones."""
    return orjson.dumps(
        {k: v for k, v in body.items() if k != "api_key"}, option=orjson.OPT_SORT_KEYS
    )


@dataclass(frozen=True)
class Call:
    kind: CallKind
    call_id: str
    body: dict[str, Any]


def _when(i: int, fmt: str) -> str | int:
    t = _EPOCH + dt.timedelta(seconds=i)
    return int(t.timestamp() * 1000) if fmt == "v1" else t.isoformat().replace("+00:00", "Z")


def _body(kind: CallKind, fmt: str, user: str, i: int, group: str = "") -> dict[str, Any]:
    uid = "user_id" if fmt == "v1" else "userId"
    gid = "group_id" if fmt == "v1" else "groupId"
    body: dict[str, Any] = {uid: user, "timestamp": _when(i, fmt)}
    if kind == "track":
        body["event"] = f"Event_{i}"
    elif kind == "group":
        body |= {gid: group, "traits": {"name": f"Account {group}"}}
    else:
        body["traits"] = {"email": f"{user}@example.com"}
    if fmt == "segment":
        body["type"] = kind
    return body


def workload(*, users: int = 10, groups: int = 0, tracks: int = 100, fmt: str = "v2") -> list[Call]:
    """Identify every user, group the first ``groups`` users, then ``tracks`` events
    spread round-robin over the users, in event-time order."""
    calls = [Call("identify", f"id-{u}", _body("identify", fmt, f"u{u}", u)) for u in range(users)]
    calls += [
        Call("group", f"gr-{g}", _body("group", fmt, f"u{g}", g, f"g{g}")) for g in range(groups)
    ]
    calls += [
        Call("track", f"tr-{i}", _body("track", fmt, f"u{i % users}", i)) for i in range(tracks)
    ]
    return calls


def batches(
    calls: Iterable[Call], base_url: str, fmt: str | WireFormat = "v2", batch_size: int = 50
) -> Iterator[CallBatch]:
    """Lazily chunk ``calls`` (already in delivery order) into :class:`CallBatch` es."""
    wire = get_format(fmt)
    chunk: list[Call] = []

    def flush() -> CallBatch:
        kind = chunk[0].kind
        return CallBatch(
            kind=kind,
            url=wire.url(kind, base_url),
            call_ids=[c.call_id for c in chunk],
            bodies=[orjson.dumps(c.body) for c in chunk],
            user_ids=[c.body.get("userId", c.body.get("user_id")) for c in chunk],
        )

    for call in calls:
        if chunk and (call.kind != chunk[0].kind or len(chunk) == batch_size):
            yield flush()
            chunk = []
        chunk.append(call)
    if chunk:
        yield flush()


def accepted_counts(accepted: Iterable[AcceptedCall]) -> Counter[bytes]:
    return Counter(body_key(a.body) for a in accepted)


def assert_delivery_order(accepted: list[AcceptedCall], fmt: str = "v2") -> None:
    """Kinds arrive identify → group → track (within a kind, order is free: every call
    carries its own timestamp)."""
    ranks = [CALL_KINDS.index(a.kind) for a in accepted]  # type: ignore[arg-type]
    assert ranks == sorted(ranks), "a call of a later kind arrived before an earlier kind"


def deliver(
    srv: LocalAccoil,
    calls: list[Any],
    fmt: str = "v2",
    *,
    batch_size: int = 50,
    key: str = KEY,
    **options: Any,
) -> DeliveryReport:
    """Send ``calls`` to ``srv`` in ``fmt`` with ``DeliveryOptions(**options)`` (fast retries)."""
    options.setdefault("retry", FAST)
    return send(
        batches(calls, srv.base_url, fmt, batch_size),
        api_key=key,
        auth=get_format(fmt).auth,
        options=DeliveryOptions(**options),
    )


def assert_adds_up(report: DeliveryReport, calls: list[Any]) -> None:
    """Every call is counted once: sent, skipped or failed, per kind and in total."""
    for kind in ("identify", "group", "track"):
        n = sum(c.kind == kind for c in calls)
        stats = report.endpoints.get(kind)
        assert (stats.sent + stats.skipped + stats.failed if stats else 0) == n, kind
    total = report.total
    assert total.sent + total.skipped + total.failed == len(calls)
    assert report.to_dict()["total"]["sent"] == total.sent
