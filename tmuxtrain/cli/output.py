"""Printing for the command line: tables and sizes."""

from __future__ import annotations


def fmt_mib(mib: int | None) -> str:
    from tmuxtrain.core.units import format_mib

    return "?" if mib is None else format_mib(mib)


def fmt_dur(s: float | None) -> str:
    from tmuxtrain.core.units import format_duration

    return "" if s is None else format_duration(s)


CHUNK = 2**20


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)
