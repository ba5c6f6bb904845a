"""What one line says, for `tmuxtrain.core.metrics`: `_Reading` (its metrics, where each
value sits, the hints it gives about progress counters) and the *plan* made from it, which
`LogParser` replays on the next line of the same shape instead of reading it again (the
shape memo and the float memo are defined here, next to what they store).

Separate because the line readers (`metrics_lines`, `metrics_counters`, `metrics_tables`)
write these and the parser, `_Progress` and the tables read them: a module of its own keeps
the others free of import cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tmuxtrain.core.metrics_names import _keeps_nonfinite, _num

if TYPE_CHECKING:
    from tmuxtrain.core.metrics_tables import _Table

# Most metric lines repeat one shape with other numbers (a bar redrawn, one print per step).
# `LogParser` remembers how it read a shape (the line with every digit made 0) and replays
# that on the next line of the shape: 2-3x faster than reading it again.
_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")
_PLAN_MAX_LINE = 400  # longer lines are rare and would make the memo big
_PLAN_CACHE = 1024  # shapes remembered per parser, then forgotten all at once
# Values repeat (the lr, the epoch, a total of steps, a loss printed twice): float() of the
# text costs 3x a dict lookup, so replayed values are memoised, at most this many at a time
# in all (~0.4 MB, shared by every parser like `_name`'s cache). Most of the bench log's
# values hit; a log of only new numbers pays ~10% for the misses.
_FLOAT_CACHE = 4096
_FLOATS: dict[bytes, float] = {}
# (hints, ((name, value start, value end), ...), ((start, end, bytes that must match), ...),
#  (name, rank) of the line's training loss or None)
_Plan = tuple[
    int,
    tuple[tuple[str, int, int], ...],
    tuple[tuple[int, int, bytes], ...],
    "tuple[str, int] | None",
]

# Hints a line gives about its progress counters (bit flags).
_HINT_PER_EPOCH = 1  # its step counter restarts every epoch (Lightning, Keras, timm ...)
_HINT_PLAIN_BAR = 2  # step/steps come from a progress bar (maybe an eval bar)
_HINT_ZERO_BASED = 4  # epochs count from 0 (Swin's "Train: [0/300]")
_HINT_LAST_INDEX = 8  # the epoch total is the last epoch's index (Lightning's Rich bar "0/2")
_HINT_RESULTS = 16  # Lightning's validation/test bar: a results table may follow
_HINT_EPOCH_BASE = _HINT_ZERO_BASED | _HINT_LAST_INDEX


class _Reading:
    """What one line says: metrics, where each value sits, and what else the reading
    depended on, so that `LogParser` can replay it on lines of the same shape (a *plan*)."""

    __slots__ = ("checks", "eta", "evaluation", "header", "hints", "lossy", "out", "spans")

    def __init__(self) -> None:
        self.out: dict[str, float] = {}
        self.spans: dict[str, tuple[int, int]] = {}
        self.hints = 0
        self.checks: list[tuple[int, int, str]] = []  # names with digits in them ("acc@1")
        self.eta: float | None = None  # a printed ETA, in seconds
        self.header: _Table | None = None  # the line heads a table (YOLO, fastai, Lightning)
        self.lossy: tuple[str, int] | None = None  # (name, rank) of its best training loss
        self.evaluation = False  # an evaluation pass: its ETA is not the run's

    def put(self, name: str, line: str, start: int, end: int) -> None:
        value = _num(line[start:end])
        if value is not None and (value - value == 0.0 or _keeps_nonfinite(name)):
            self.out[name] = value
            self.spans[name] = (start, end)

    def key(self, line: str, start: int, end: int) -> None:
        text = line[start:end]
        if any(c.isdigit() for c in text):
            self.checks.append((start, end, text))


def _make_plan(line: str, raw: bytes, reading: _Reading) -> _Plan | None:
    """How to read lines shaped like `raw` again: byte spans of its values and names. None
    for lines that change more than metrics (a table header, a printed ETA): read each."""
    if reading.header is not None or reading.eta is not None:
        return None
    if len(line) == len(raw):
        offset = list(range(len(raw) + 1))  # ASCII: characters are bytes
    elif line.encode() == raw:
        offset = [0]
        for ch in line:
            offset.append(offset[-1] + len(ch.encode()))
    else:
        return None  # invalid UTF-8: offsets would not map back
    spans = reading.spans
    items = tuple((k, offset[spans[k][0]], offset[spans[k][1]]) for k in reading.out)
    checks = tuple((offset[a], offset[b], raw[offset[a] : offset[b]]) for a, b, _ in reading.checks)
    return reading.hints, items, checks, reading.lossy
