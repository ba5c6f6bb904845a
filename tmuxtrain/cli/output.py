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
    """Columns as wide as their widest cell, two spaces apart; nothing is cut."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


GAP = 2  # spaces between columns


def fit_widths(natural: list[int], width: int, shrink: list[tuple[int, int]]) -> list[int]:
    """Column widths that fit `width` characters: the columns in `shrink` (index, least
    width), in that order, give up what is needed, each down to its least width. A table
    that cannot fit even then keeps those least widths (the terminal wraps it). Pure."""
    out = list(natural)
    over = sum(out) + GAP * (len(out) - 1) - width
    for i, least in shrink:
        if over <= 0:
            break
        give = min(over, max(0, out[i] - least))
        out[i] -= give
        over -= give
    return out


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, an ellipsis marking a cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


STATE_COLOURS = {
    "pending": "33",  # yellow
    "running": "36",  # cyan
    "succeeded": "32",  # green
    "failed": "31",  # red
    "cancelled": "35",  # magenta
}


def colours_on() -> bool:
    """Colour only for a person at a terminal that shows it, unless NO_COLOR is set
    (https://no-color.org: any non-empty value)."""
    import os

    return on_terminal() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def terminal_width() -> int | None:
    """The terminal's width in columns, or None when stdout is not a terminal (then
    nothing is cut: a pipe gets every character)."""
    import shutil

    return shutil.get_terminal_size().columns if on_terminal() else None


def queue_table(
    rows: list[list[str]],
    headers: list[str],
    *,
    width: int | None,
    shrink: list[tuple[int, int]],
    colour: dict[int, dict[str, str]] | None = None,
) -> str:
    """`table`, fitted to `width` when given (the `shrink` columns cut with `…`), with
    cells coloured by `colour`: {column: {cell text prefix: SGR code}}."""
    natural = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    widths = natural if width is None else fit_widths(natural, width, shrink)
    paint = colour or {}

    def line(cells: list[str], header: bool = False) -> str:
        out = []
        for i, (text, w) in enumerate(zip(cells, widths, strict=True)):
            text = cut(text, w)
            pad = " " * (w - len(text))
            code = None if header else _code(paint.get(i, {}), text)
            out.append(f"\x1b[{code}m{text}\x1b[0m{pad}" if code else text + pad)
        return (" " * GAP).join(out).rstrip()

    return "\n".join([line([h.upper() for h in headers], True), *(line(r) for r in rows)])


def _code(codes: dict[str, str], text: str) -> str | None:
    for prefix, code in codes.items():
        if text.startswith(prefix):
            return code
    return None


def literal(text: str) -> str:
    """`text` on one line, shown literally: a newline or terminal escape in a path or name
    an error message quotes neither breaks the line nor drives the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
