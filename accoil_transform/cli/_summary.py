"""The human summary of a run, printed on stderr at its end."""

from __future__ import annotations

from typing import Any

from ..calls import CALL_KINDS
from ..rules import DROP_REASON_WORDS

#: The delivery columns: (report counter, heading).
_DELIVERY_COLUMNS = (
    ("sent", "sent"),
    ("skipped", "already sent"),
    ("failed", "failed"),
    ("rejected", "of which rejected"),
    ("retried", "retries"),
)
#: The names of the files a run writes, as the summary lists them.
_OUTPUTS = {
    "calls": "calls",
    "report": "report",
    "quarantine": "quarantine",
    "dead_letter": "dead letters",
    "ledger": "ledger",
}


def format_report(report: dict[str, Any]) -> str:
    """A short, aligned, human-readable summary of a run report."""
    rows: list[tuple[str, str]] = [
        ("rows read", f"{report['rows_read']:,}"),
        ("events kept", f"{report['kept']:,}"),
    ]
    if report.get("trait_rows"):
        rows.append(("$identify/$groupidentify rows", f"{report['trait_rows']:,}"))
    for reason, n in report["dropped"].items():
        if n:
            rows.append((f"dropped: {DROP_REASON_WORDS.get(reason, reason)}", f"{n:,}"))
    for kind in CALL_KINDS:
        if kind in report.get("calls", {}):
            rows.append((f"{kind} calls", f"{report['calls'][kind]:,}"))
    lines = _aligned(rows, right=True)
    delivery = report.get("delivery")
    if delivery:
        lines += ["", *_delivery_table(delivery)]
    outputs = {**report.get("outputs", {})}
    if outputs:
        lines.append("")
        lines += _aligned(
            [(_OUTPUTS.get(name, name), _path(target)) for name, target in outputs.items()]
        )
    return "\n".join(lines)


def _delivery_table(delivery: dict[str, Any]) -> list[str]:
    by_kind: dict[str, dict[str, int]] = delivery.get("calls", {})
    if not by_kind:
        return ["delivery: nothing to send"]
    header = ["", *(heading for _, heading in _DELIVERY_COLUMNS)]
    body = [
        [kind, *(f"{counts.get(name, 0):,}" for name, _ in _DELIVERY_COLUMNS)]
        for kind, counts in by_kind.items()
    ]
    total = delivery.get("total", {})
    if len(body) > 1:
        body.append(["total", *(f"{total.get(name, 0):,}" for name, _ in _DELIVERY_COLUMNS)])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *body]
    ]
    sent = total.get("sent", 0)
    if sent:
        lines.append(
            f"delivered {sent:,} calls in {delivery.get('duration_s', 0):.1f} s "
            f"({delivery.get('calls_per_s', 0):,.0f} calls/s)"
        )
    else:
        lines.append("nothing new was sent")
    if delivery.get("stopped"):
        lines.append(f"stopped early: {delivery['stopped']}")
    return lines


def _aligned(rows: list[tuple[str, str]], *, right: bool = False) -> list[str]:
    width = max(len(label) for label, _ in rows)
    vwidth = max(len(value) for _, value in rows) if right else 0
    return [f"{label:<{width}}  {value:>{vwidth}}" for label, value in rows]


def _path(target: str) -> str:
    return "standard output" if target == "-" else target
