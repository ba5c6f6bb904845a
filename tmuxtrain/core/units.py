"""Sizes and durations as users write them, and back; plus the few formatters the CLI and
the dashboard share.

Pure and stdlib-only, so the job file parser, the config, the CLI and the fake GPU file all
read `20GiB` and `12h` the same way. Memory is in MiB (2**20 bytes, what `nvidia-smi` prints);
durations are in seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

MIB_PER_GIB = 1024
MIB_PER_TIB = 1024 * 1024

# Every spelling is binary (1024-based), as in Slurm's `--mem=20G`: people who write "20GB"
# for a GPU almost always mean the GiB that nvidia-smi and CUDA report.
_SIZE_UNITS: dict[str, float] = {
    "": 1.0,  # a plain number is MiB
    "b": 1.0 / (1024 * 1024),
    "k": 1.0 / 1024,
    "kb": 1.0 / 1024,
    "kib": 1.0 / 1024,
    "m": 1.0,
    "mb": 1.0,
    "mib": 1.0,
    "g": float(MIB_PER_GIB),
    "gb": float(MIB_PER_GIB),
    "gib": float(MIB_PER_GIB),
    "t": float(MIB_PER_TIB),
    "tb": float(MIB_PER_TIB),
    "tib": float(MIB_PER_TIB),
}

_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size_mib(text: str | int) -> int:
    """`20GiB`, `20GB`, `20G`, `512MiB`, `1.5TiB`, `1024` (plain = MiB) -> MiB.

    Case-insensitive, a space between number and unit is allowed, every unit is 1024-based.
    A fraction of a MiB rounds up, so a request is never smaller than what was asked.
    An int (as YAML gives for `vram: 1024`) is taken as MiB. Raises ValueError on bad input.
    """
    if isinstance(text, bool):
        raise ValueError(_bad_size(text))
    if isinstance(text, int):
        if text < 0:
            raise ValueError(_bad_size(text))
        return text
    if not isinstance(text, str):
        raise ValueError(_bad_size(text))
    m = _SIZE_RE.fullmatch(text)
    if m is None or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(_bad_size(text))
    mib = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    return math.ceil(mib - 1e-9) if mib > 0 else 0


def _bad_size(text: object) -> str:
    return (
        f"bad size {text!r}: use a number with MiB, GiB or TiB, e.g. 20GiB or 512MiB "
        "(a plain number is MiB)"
    )


# Longest spellings first so "min" is not read as "m" + "in".
_DURATION_UNITS: list[tuple[str, float]] = [
    ("days", 86400.0),
    ("day", 86400.0),
    ("d", 86400.0),
    ("hours", 3600.0),
    ("hour", 3600.0),
    ("hrs", 3600.0),
    ("hr", 3600.0),
    ("h", 3600.0),
    ("minutes", 60.0),
    ("minute", 60.0),
    ("mins", 60.0),
    ("min", 60.0),
    ("m", 60.0),
    ("seconds", 1.0),
    ("second", 1.0),
    ("secs", 1.0),
    ("sec", 1.0),
    ("s", 1.0),
]
_UNIT_ALT = "|".join(name for name, _ in _DURATION_UNITS)
_UNIT_SECONDS = dict(_DURATION_UNITS)
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_RE = re.compile(rf"\s*({_NUMBER})\s*")
_PART_RE = re.compile(rf"\s*({_NUMBER})\s*({_UNIT_ALT})(?![a-z])", re.IGNORECASE)
# Slurm's --time forms: MM:SS, H:MM:SS, D-H, D-H:MM, D-H:MM:SS.
_CLOCK_RE = re.compile(r"\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*")


def parse_duration_s(text: str | float) -> float:
    """`90s`, `30m`, `12h`, `2d`, `1h30m`, `1:30:00`, `45:00`, plain number -> seconds.

    Unit forms take each unit once, largest first (`1h30m`, not `30m1h`). Clock forms follow
    Slurm's `--time`: `MM:SS`, `H:MM:SS`, `D-H`, `D-H:MM`, `D-H:MM:SS`. Raises ValueError.
    """
    if isinstance(text, bool):
        raise ValueError(_bad_duration(text))
    if isinstance(text, (int, float)):
        if not math.isfinite(text) or text < 0:
            raise ValueError(_bad_duration(text))
        return float(text)
    if not isinstance(text, str):
        raise ValueError(_bad_duration(text))
    m = _PLAIN_RE.fullmatch(text)
    if m is not None:
        return float(m.group(1))
    if ":" in text or "-" in text:
        return _parse_clock(text)
    return _parse_units(text)


def _parse_units(text: str) -> float:
    total = 0.0
    pos = 0
    last_size = math.inf
    found = False
    while pos < len(text):
        m = _PART_RE.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise ValueError(_bad_duration(text))
            break
        size = _UNIT_SECONDS[m.group(2).lower()]
        if size >= last_size:  # repeated or out of order: likely a typo
            raise ValueError(_bad_duration(text))
        last_size = size
        total += float(m.group(1)) * size
        pos = m.end()
        found = True
    if not found:
        raise ValueError(_bad_duration(text))
    return total


def _parse_clock(text: str) -> float:
    m = _CLOCK_RE.fullmatch(text)
    if m is None:
        raise ValueError(_bad_duration(text))
    days_s, a_s, b_s, c_s = m.groups()
    a = int(a_s)
    b = int(b_s) if b_s is not None else None
    c = int(c_s) if c_s is not None else None
    if days_s is not None:
        # D-H, D-H:MM, D-H:MM:SS
        hours, minutes, seconds = a, b or 0, c or 0
        total = int(days_s) * 86400 + hours * 3600 + minutes * 60 + seconds
        if (b is not None and b >= 60) or (c is not None and c >= 60):
            raise ValueError(_bad_duration(text))
        return float(total)
    if b is None:  # a bare number was handled by the caller; "5" alone never reaches here
        raise ValueError(_bad_duration(text))
    if c is None:  # MM:SS
        if b >= 60:
            raise ValueError(_bad_duration(text))
        return float(a * 60 + b)
    if b >= 60 or c >= 60:  # H:MM:SS
        raise ValueError(_bad_duration(text))
    return float(a * 3600 + b * 60 + c)


def _bad_duration(text: object) -> str:
    return (
        f"bad duration {text!r}: use e.g. 90s, 30m, 12h, 2d, 1h30m, H:MM:SS (1:30:00), "
        "MM:SS (45:00) or a number of seconds"
    )


def format_mib(mib: int) -> str:
    """MiB -> `512 MiB`, `20 GiB`, `1.5 GiB`, `2 TiB`: one decimal at most, for people."""
    if mib < 0:
        return "-" + format_mib(-mib)
    if mib < MIB_PER_GIB:
        return f"{mib} MiB"
    if mib < MIB_PER_TIB:
        return f"{_one_decimal(mib / MIB_PER_GIB)} GiB"
    return f"{_one_decimal(mib / MIB_PER_TIB)} TiB"


def _one_decimal(x: float) -> str:
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def format_duration(s: float) -> str:
    """Seconds -> `45s`, `3m05s`, `1h02m`, `2d03h`: two units at most, rounded to the second."""
    if not math.isfinite(s):
        return "?"
    if s < 0:
        return "-" + format_duration(-s)
    n = round(s)
    if n < 60:
        return f"{n}s"
    if n < 3600:
        return f"{n // 60}m{n % 60:02d}s"
    if n < 86400:
        return f"{n // 3600}h{n % 3600 // 60:02d}m"
    return f"{n // 86400}d{n % 86400 // 3600:02d}h"


def printable(text: str, width: int | None = None) -> str:
    """One line, shown literally: a job name or log line must never drive the terminal.
    With `width`, cut to it with an ellipsis."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def format_progress(m: Mapping[str, Any], *, percent: bool = True) -> str:
    """`ep 3/5 45%`, `120/500 24%` or `ep 3` from a job's latest metrics ('' when none):
    the counters as the log prints them, then the log parser's `progress` (the one share of
    the run done that `ls` and the dashboard show) unless `percent` is false."""
    label = ""
    if m.get("epoch") is not None and m.get("epochs"):
        label = f"ep {m['epoch']:g}/{m['epochs']:g}"
    elif m.get("step") is not None and m.get("steps"):
        label = f"{m['step']:g}/{m['steps']:g}"
    elif m.get("epoch") is not None:
        label = f"ep {m['epoch']:g}"
    progress = m.get("progress")
    if percent and isinstance(progress, (int, float)) and math.isfinite(progress):
        label = f"{label} {progress:.0%}".lstrip()
    return label


def format_metric(value: Any) -> str:
    """A metric value as `ls`, `show` and the dashboard print it: 4 significant digits; a
    diverged "nan" or "inf" (stored as text, JSON has no such numbers) as it is."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
