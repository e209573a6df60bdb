"""The human summary of a run, printed at its end."""

from __future__ import annotations

from typing import Any

from ..calls import CALL_KINDS


def format_report(report: dict[str, Any]) -> str:
    """A short human-readable summary of a run report."""
    lines = [
        f"rows read     {report['rows_read']:>10,}",
        f"kept          {report['kept']:>10,}",
        f"trait rows    {report['trait_rows']:>10,}",
    ]
    for reason, n in report["dropped"].items():
        lines.append(f"dropped {reason:<14}{n:>7,}")
    for kind in CALL_KINDS:
        if kind in report["calls"]:
            lines.append(f"{kind} calls {report['calls'][kind]:>12,}")
    delivery = report.get("delivery")
    if delivery:
        for kind, counts in delivery.get("calls", {}).items():
            summary = ", ".join(f"{k} {v:,}" for k, v in counts.items())
            lines.append(f"{kind:<9} {summary}")
        if "calls_per_s" in delivery:
            lines.append(
                f"delivered in {delivery.get('duration_s', 0):.1f} s "
                f"({delivery['calls_per_s']:,.0f} calls/s)"
            )
    for name, target in report.get("outputs", {}).items():
        lines.append(f"{name:<13} {target}")
    return "\n".join(lines)
