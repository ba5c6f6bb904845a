"""A job's own regular expressions (`metrics:`, `retry_on:`), run so that they can never
stall the scheduler.

Python's `re` cannot be interrupted: `metrics: {loss: '(?P<value>(1+)+)y'}` against a line
of `loss 111...1x` backtracks for longer than the universe has left, holding the one loop
that launches, reaps and tails every job. Here each search runs under the `regex` package's
`timeout=`, which raises `TimeoutError` from inside the match; a pattern that hits it once is
disabled for good (it then matches nothing) and says so in its `note`, and the log offset
moves on as for any other line. `check` refuses such a pattern at submit time where a quick
probe shows it.

`core.metrics` stays standard-library only: it takes the `bounded` patterns made here as
`Matcher`s (and their `search_bytes` as its pre-filter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import regex

__all__ = ["AsciiPattern", "BoundedPattern", "bounded", "bounded_metrics", "check", "search_any"]

# One search of one line (or of a chunk's bytes, see `_budget`) may take this long. A
# pattern that needs more is not reading a log: it is backtracking without end.
TIMEOUT_S = 0.05
# A search over many bytes (the parser's pre-filter over a 1 MiB chunk, `retry_on` over a
# log tail) gets this much more time per byte: even a slow honest pattern scans 10 MB/s.
_S_PER_BYTE = 1e-7
# `check`'s probes: lines made of one character repeated, which is what makes nested repeats
# ("(a+)+", "(\d*)*") explode; long enough to take seconds, not nanoseconds, if they do.
_PROBE_LEN = 3000
_PROBE_TIMEOUT_S = 0.02


def _budget(n: int, timeout_s: float) -> float:
    return timeout_s + n * _S_PER_BYTE


class BoundedPattern:
    """A job's pattern (`regex` syntax, MULTILINE), each search time-bounded.

    A `core.metrics.Matcher`: `search(text)` returns a match or None. After a search runs
    past its bound the pattern is disabled: every later search returns None and `note`
    says why (for the job's record). `bounded` gives an `AsciiPattern` where the pattern
    can be written as bytes; the parser then decodes only the lines it finds.
    """

    def __init__(self, pattern: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self.pattern = pattern
        self.timeout_s = timeout_s
        self._rx = regex.compile(pattern, regex.MULTILINE | regex.VERSION0)
        self.groups: int = self._rx.groups
        self.note: str | None = None

    @property
    def disabled(self) -> bool:
        return self.note is not None

    def search(self, text: str) -> Any:
        """The first match in `text`, or None (also when disabled or out of time)."""
        if self.note is not None:
            return None
        try:
            return self._rx.search(text, timeout=_budget(len(text), self.timeout_s))
        except TimeoutError:
            self._disable(len(text))
            return None

    def _disable(self, n: int) -> None:
        self.note = (
            f"pattern {self.pattern!r} took over {_budget(n, self.timeout_s):.2g} s on "
            f"{n:,} characters and was disabled (nested repeats like (a+)+ backtrack "
            "without end)"
        )


class AsciiPattern(BoundedPattern):
    """A `BoundedPattern` that also searches raw log bytes (ASCII semantics): the parser's
    pre-filter (`core.metrics.BytesFilter`)."""

    def __init__(self, pattern: str, *, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(pattern, timeout_s=timeout_s)
        self._bytes = regex.compile(pattern.encode("ascii"), regex.MULTILINE | regex.VERSION0)

    def search_bytes(self, data: bytes, pos: int, endpos: int) -> Any:
        """The first match in data[pos:endpos], or None (also once disabled)."""
        if self.note is not None:
            return None
        try:
            return self._bytes.search(
                data, pos, endpos, timeout=_budget(endpos - pos, self.timeout_s)
            )
        except TimeoutError:
            self._disable(endpos - pos)
            return None


def bounded(pattern: str, *, timeout_s: float = TIMEOUT_S) -> BoundedPattern:
    """A job's pattern, compiled to run time-bounded (raises `regex.error` if invalid:
    `check` first)."""
    try:
        return AsciiPattern(pattern, timeout_s=timeout_s)
    except (UnicodeEncodeError, regex.error):  # not ASCII: the parser reads every line
        return BoundedPattern(pattern, timeout_s=timeout_s)


def bounded_metrics(
    metrics: dict[str, str] | None, *, timeout_s: float = TIMEOUT_S
) -> dict[str, BoundedPattern]:
    """A job's `metrics:` for `LogParser(custom=...)`, each pattern time-bounded. The
    scheduler then reads `LogParser.notes` for patterns that were disabled."""
    return {name: bounded(p, timeout_s=timeout_s) for name, p in (metrics or {}).items()}


@lru_cache(maxsize=256)
def _cached(pattern: str) -> BoundedPattern:
    return BoundedPattern(pattern)


def search_any(
    patterns: Iterable[str],
    text: str,
    *,
    on_timeout: Callable[[str, str], None] | None = None,
) -> bool:
    """Does any of `patterns` (a job's `retry_on`) match `text`? Never stalls: a pattern
    that runs past its bound counts as no match, and `on_timeout(pattern, note)` is told,
    once per pattern (it stays disabled for this process). An invalid pattern (one that
    `check` would have refused) counts as no match too."""
    for pattern in patterns:
        try:
            rx = _cached(pattern)
        except regex.error:
            continue
        was = rx.note
        if rx.search(text) is not None:
            return True
        if rx.note is not None and was is None and on_timeout is not None:
            on_timeout(pattern, rx.note)
    return False


def check(pattern: str, *, group: str | None = None) -> str | None:
    """Why `pattern` cannot be a job's pattern, in one line, or None if it can.

    For submit time: it must compile (the message names the problem and where), have the
    named `group` when one is asked for (`metrics:` needs `(?P<value>...)` or one group),
    and not backtrack without end on lines of one repeated character, the usual trigger
    (probed with a short time bound, ~1 ms for a sound pattern).
    """
    try:
        rx = regex.compile(pattern, regex.MULTILINE | regex.VERSION0)
    except regex.error as e:
        at = f" at position {e.pos}" if getattr(e, "pos", None) is not None else ""
        return f"bad regular expression{at}: {e.msg if hasattr(e, 'msg') else e}"
    if group is not None and group not in rx.groupindex and rx.groups != 1:
        return f"pattern needs a named group (?P<{group}>...) or exactly one group"
    chars = {c for c in pattern if c.isalnum() or c in " .,:;=-_/|[]()%"} | set("1a .")
    words = regex.findall(r"[A-Za-z_]{2,}", pattern)[:3]
    for head in ["", *(w + " " for w in words)]:
        for c in sorted(chars):
            probe = head + c * _PROBE_LEN + "\x00"
            try:
                rx.search(probe, timeout=_PROBE_TIMEOUT_S)
            except TimeoutError:
                shown = f"{head}{c * 3}..." if head else f"{c * 3}..."
                return (
                    f"pattern backtracks without end on a line like {shown!r} (over "
                    f"{_PROBE_TIMEOUT_S * 1000:g} ms for {_PROBE_LEN:,} characters): avoid "
                    "nested repeats like (a+)+ or (a|aa)+"
                )
    return None
