"""A job's own `metrics:` patterns, for `tmuxtrain.core.metrics`: the `Matcher` protocol
that `tmuxtrain.patterns.bounded` implements (time-bounded patterns that cannot stall the
daemon), compiling a job file's patterns, the optional raw-bytes pre-filter, and applying
them to a line after the built-in formats.

Separate because it is the interface between the standard-library parser and the code
outside `core/` that makes the patterns; the built-in formats never touch it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from tmuxtrain.core.metrics_names import _keeps_nonfinite, _num


class Matcher(Protocol):
    """A job's own pattern as the parser runs it. `re.Pattern` is one (unbounded: a pattern
    that backtracks without end stalls its caller); `tmuxtrain.patterns.bounded` makes ones
    that cannot stall: each call is time-bounded, and a pattern that hits the bound is
    disabled (it then finds nothing) with a `note` saying so."""

    @property
    def groups(self) -> int: ...

    def search(self, string: str, /) -> Any: ...  # a match (re or `regex`) or None


class BytesFilter(Protocol):
    """Optional, on a `Matcher`: the same pattern over raw log bytes (ASCII semantics), so
    that only lines it matches are decoded; without it every line is."""

    def search_bytes(self, data: bytes, pos: int, endpos: int) -> Any: ...


CustomPatterns = Mapping[str, "str | re.Pattern[str] | Matcher"]


def compile_custom(custom: CustomPatterns | None) -> dict[str, Matcher]:
    """Compile a job file's `metrics:` patterns (MULTILINE, so `^` means line start); a
    pattern already compiled, or a `Matcher`, is taken as it is."""
    if not custom:
        return {}
    return {
        name: re.compile(rx, re.MULTILINE) if isinstance(rx, str) else rx
        for name, rx in custom.items()
    }


def _apply_custom(line: str, custom: Mapping[str, Matcher], out: dict[str, float]) -> None:
    """A job's own patterns, read after (so they win over) the built-in formats."""
    for name, rx in custom.items():
        m = rx.search(line)
        if m:
            groups = m.groupdict()
            raw = groups.get("value") if "value" in groups else (m.group(1) if rx.groups else None)
            value = _num(raw.replace(",", "")) if raw else None
            if value is not None and (value - value == 0.0 or _keeps_nonfinite(name)):
                out[name] = value


def _bytes_search(rx: Matcher) -> Callable[[bytes, int, int], Any] | None:
    """A custom pattern as a raw-bytes pre-filter (ASCII semantics), or None if it has none."""
    own = getattr(rx, "search_bytes", None)
    if own is not None:
        return cast("Callable[[bytes, int, int], Any]", own)
    if not isinstance(rx, re.Pattern):
        return None
    try:
        return re.compile(rx.pattern.encode("ascii"), rx.flags & ~re.UNICODE).search
    except (UnicodeEncodeError, re.error):
        return None
