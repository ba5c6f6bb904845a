"""`tmuxtrain status`'s fair-share table (printing only; the numbers come from the API)."""

from __future__ import annotations

from typing import Any

from tmuxtrain.core.units import printable


def standing(p: dict[str, Any]) -> str:
    """Where a project stands against its share, in words (within a point: at it)."""
    gap = p["usage_pct"] - p["share_pct"]
    return "at share" if abs(gap) < 1 else ("below share" if gap < 0 else "above share")


def fair_share_table(projects: list[dict[str, Any]]) -> str:
    """`status`'s fair-share lines: usage (decayed GPU-hours) against share, next first."""
    head = ("project", "share", "GPU-h", "of use", "of shares", "standing", "running", "pending")
    rows = [head] + [
        (
            printable(p["project"], 30), f"{p['share']:g}", f"{p['usage_gpu_s'] / 3600:.2f}",
            f"{p['usage_pct']:.0f}%", f"{p['share_pct']:.0f}%", standing(p), str(p["running"]),
            str(p["pending"]),
        )
        for p in projects
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "fair-share (lowest use for its share goes next):\n" + "\n".join(lines)
