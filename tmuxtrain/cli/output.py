"""Printing for the command line: tables, sizes, confirmations and notes, and the few
parsing helpers several commands share."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tmuxtrain.core.errors import TmuxtrainError


def on_terminal() -> bool:
    """Whether stdout is a terminal: a person reads it, not a script."""
    return sys.stdout.isatty()


def say(text: str) -> None:
    """A confirmation of what a command did, for a person at a terminal (scripts see
    nothing: the exit status says it)."""
    if on_terminal():
        print(text, flush=True)


def note(command: str, text: str) -> None:
    """Something worth knowing that is not an error (the exit status stays 0)."""
    print(f"tmuxtrain {command}: {text}", file=sys.stderr, flush=True)


def env_pairs(items: Sequence[str]) -> dict[str, str]:
    """`--env K=V` options -> {K: V}."""
    env = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep:
            raise TmuxtrainError(f"--env {item}: use KEY=VALUE")
        env[k] = v
    return env


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
