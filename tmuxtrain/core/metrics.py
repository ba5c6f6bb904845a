"""Raw terminal output of a training job -> metric samples (loss, epoch, step, lr, eta ...).

The input is what tmux `pipe-pane` captures: progress bars redrawn with `\\r`, ANSI colours,
CRLF, multibyte characters split anywhere. Nothing here does I/O or reads a clock: the caller
hands in bytes as they arrive and the time (`now`, POSIX seconds) they were read.

Speed matters: a job can print megabytes a minute and the daemon tails every job on one
core, while most lines carry no metric (warnings, tracebacks, prints). Python's regex engine
skips fast over text only when a pattern starts with a literal (~1 GB/s) or a character
class; a pattern that starts with a name or a lookbehind costs ~40 ns per character. So
`LogParser.feed` finds candidate lines with a few literal-led regexes over the raw bytes of
a chunk (each match runs on to the end of its line, so Python sees a candidate line once
per regex and never the lines in between) and decodes only those; the per-line scans start
at a separator (`=`, `:`, a blank, `/`) and read the name before it by matching the
*reversed* line from there; and a line shape read once is replayed for the next line of
that shape (see `_DIGITS_TO_0`), float() of its value texts memoised. What remains is
Python per candidate line and per value read, ~0.5 us each, and the regex passes (~25%).

State beyond one line is kept small and explicit: which name the training loss goes by
(`_LOSS_RANK`), where the run is (`_Progress`), and the header of a table being printed
(`_Table`: YOLO, fastai, Lightning's results), while which every line is a candidate. A
line that changes that state (a header, a printed ETA) is never replayed from a plan, and
one that makes more lines candidates ends a pass over the chunk, so the rest is found again
(see `LogParser._lines`): where a chunk is cut never changes what is read.

Where the pieces live (each `core/metrics_*.py` module says why it is separate):
`metrics_names` (metric names and values), `metrics_lines` (the byte triggers and the
reading of one line; `parse_line`), `metrics_counters` (`N/M` counters and progress bars),
`metrics_tables` (`_Table`), `metrics_reading` (`_Reading`, hints, the shape and float
memos), `metrics_progress` (`_Progress`, the ETA), `metrics_custom` (a job's own patterns).
This module is the public interface and `LogParser`, which composes them. What the hot
loop (`LogParser._lines`) uses is imported by name into this module's globals, so the split
adds no attribute lookup or call per line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from tmuxtrain.core.metrics_custom import BytesFilter as BytesFilter
from tmuxtrain.core.metrics_custom import CustomPatterns as CustomPatterns
from tmuxtrain.core.metrics_custom import Matcher as Matcher
from tmuxtrain.core.metrics_custom import _apply_custom, _bytes_search
from tmuxtrain.core.metrics_custom import compile_custom as compile_custom
from tmuxtrain.core.metrics_lines import (
    _ANSI_BYTES,
    _CUSTOM,
    _NEWLINE,
    _TABLE,
    _TABLE_ONLY,
    _TRIGGERS,
    _WORDS,
    _read,
)
from tmuxtrain.core.metrics_lines import parse_line as parse_line
from tmuxtrain.core.metrics_names import (
    _BOOSTING_RANK,
    _LOSS_RANK,
    _PROGRESS_NAMES,
    _STATE_NAMES,
    _keeps_nonfinite,
    _lossy,
)
from tmuxtrain.core.metrics_progress import ETA_WINDOW_S as ETA_WINDOW_S
from tmuxtrain.core.metrics_progress import _Progress
from tmuxtrain.core.metrics_reading import (
    _DIGITS_TO_0,
    _FLOAT_CACHE,
    _FLOATS,
    _HINT_PLAIN_BAR,
    _HINT_RESULTS,
    _PLAN_CACHE,
    _PLAN_MAX_LINE,
    _make_plan,
    _Plan,
)
from tmuxtrain.core.metrics_tables import _Table

__all__ = ["LogParser", "Matcher", "Sample", "compile_custom", "parse_line"]

# Distinct metric names one parser tracks. A log that prints thousands of distinct keys (say
# one per layer) must not grow the parser without bound; names past this are ignored.
MAX_METRICS = 256


class Sample(NamedTuple):
    """One metric reading: `step` is where to plot it (the job's step, or epoch if no step).

    With a per-epoch step counter (Lightning, Keras, timm) `step` keeps growing across
    epochs, (epochs done) * steps + step, so that a curve does not fold back on itself.
    A named tuple, not a dataclass: the parser makes one per reading, ~4x cheaper.
    """

    name: str
    value: float
    step: float | None


class LogParser:
    """Incremental parser for one job's log: feed it bytes as they arrive, get samples back.

    Memory is bounded: one incomplete line (at most `max_partial` bytes; a longer line is
    dropped whole), the latest sample per metric name (at most MAX_METRICS names), a memo
    of line shapes (at most _PLAN_CACHE) and the header of the table being printed.

    The scheduler's part: `feed` new bytes, store the samples (thinned as it likes) and
    `latest`; when the job has ended and its last bytes are read, `finish` once and store
    all it returns; `notes` says which of the job's own patterns were disabled.
    """

    def __init__(self, custom: CustomPatterns | None = None, max_partial: int = 65536) -> None:
        self._custom = compile_custom(custom)
        self._custom_triggers: list[Callable[[bytes, int, int], Any]] = []
        self._every_line = False  # a custom pattern that cannot pre-filter raw bytes
        for rx in self._custom.values():
            trigger = _bytes_search(rx)
            if trigger is None:
                self._every_line = True
            else:
                self._custom_triggers.append(trigger)
        self._max_partial = max_partial
        self._partial = b""
        self._skipping = False  # inside a line that outgrew max_partial: drop to its end
        # name -> the latest sample of it: the next differs in value, or in step if the name
        # is not a state name (compared field by field: no key tuple to build per reading)
        self._last: dict[str, Sample] = {}
        self._progress = _Progress()
        self._plans: tuple[dict[bytes, _Plan], dict[bytes, _Plan]] = ({}, {})  # by line flags
        self._loss_rank = len(_LOSS_RANK) + _BOOSTING_RANK  # of the name `loss` follows
        self._table: _Table | None = None  # the table whose rows are being printed
        self._watch = False  # a table may come: every line is a candidate (see `_Table`)

    @property
    def latest(self) -> dict[str, float]:
        """Latest value of every metric seen, plus:

        - `progress`: the fraction of the whole run done, 0..1, once the log shows it (the
          same as `.progress`; `ls` and the dashboard show this one);
        - `eta_s`: seconds left, once progress has a rate (as of the last progress reading,
          not of the last `feed`), or the job's own printed ETA where the parser cannot
          tell the whole run's progress; never after `finish`.

        `loss` is the training loss under whatever name the log gives it (`total_loss`,
        `lm_loss`, `train_loss`, ...: see _LOSS_RANK), and may be NaN or inf: a diverged
        run says so (JSON needs them mapped, e.g. to the strings "NaN" / "Infinity").
        """
        out = {name: sample.value for name, sample in self._last.items()}
        p = self._progress
        if p.value is not None:
            out["progress"] = p.value
        eta = p.eta_s()
        if eta is not None:
            out["eta_s"] = eta
        return out

    @property
    def progress(self) -> float | None:
        """Total progress of the job in [0, 1], when its log shows it."""
        return self._progress.value

    @property
    def notes(self) -> list[str]:
        """Why a job's own pattern stopped being used (a `Matcher`'s `note`, e.g. "took
        longer than 0.1 s on one line: disabled"), one line per pattern, for the job's
        record."""
        out = []
        for name, rx in self._custom.items():
            note = getattr(rx, "note", None)
            if note:
                out.append(f"metrics.{name}: {note}")
        return out

    def finish(self, now: float) -> list[Sample]:
        """The job ended and its last bytes were fed: read the unfinished last line as
        complete, drop the ETA (`eta_s` leaves `latest`), and return the latest sample of
        every metric, so that the stored history ends where `latest` does however it was
        thinned. Store them all (one the history has already is only a repeated point).
        Bytes fed later are still read; the ETA stays gone."""
        if self._partial and not self._skipping:
            buf = self._partial + b"\n"
            self._partial = b""
            self._lines(buf, 0, len(buf) - 1, now, [])
        self._progress.finished = True
        return list(self._last.values())

    def feed(self, data: bytes, now: float) -> list[Sample]:
        """Parse newly arrived bytes (read at `now`); return the samples of completed lines.

        A line ends at `\\n` or `\\r` (a progress-bar redraw is a line of its own; Keras'
        backspaces too) and is decoded as UTF-8 only once complete, so a character split
        between two feeds is whole. Readings repeated with the same value at the same step,
        such as a bar redrawn with the same numbers, are reported once; `epoch`, `epochs`
        and `steps` only when they change.
        """
        if self._skipping:
            cuts = [i for i in (data.find(b"\n"), data.find(b"\r"), data.find(b"\b")) if i >= 0]
            if not cuts:
                return []
            self._skipping = False
            data = data[min(cuts) :]
        buf = self._partial + data
        if b"\x1b" in buf:
            buf = _ANSI_BYTES.sub(b"", buf)
        if b"\r" in buf:
            buf = buf.replace(b"\r", b"\n")
        if b"\b" in buf:
            buf = buf.replace(b"\b", b"\n")
        cut = buf.rfind(b"\n")
        self._partial = buf[cut + 1 :]
        if len(self._partial) > self._max_partial:
            self._partial = b""
            self._skipping = True
        if cut < 0:
            return []
        samples: list[Sample] = []
        pos: int | None = 0
        while pos is not None:  # buf[:cut] would copy a megabyte for nothing
            pos = self._lines(buf, pos, cut, now, samples)
        return samples

    def _candidates(self, buf: bytes, pos: int, n: int) -> dict[int, int]:
        """Line end -> flags, for the lines of buf[pos:n] that may carry a metric; the rest
        is never read. Keyed by where a line ends: where a built-in trigger's match stops."""
        if self._every_line or self._watch:
            every = _WORDS | _CUSTOM if self._every_line else _TABLE | _TABLE_ONLY
            found = dict.fromkeys([m.start() for m in _NEWLINE.finditer(buf, pos, n)], every)
            found[n] = every
            if self._every_line:
                return found
            for rx, flag in _TRIGGERS:
                for end in [m.end() for m in rx.finditer(buf, pos, n)]:
                    found[end] = flag | _TABLE
        else:
            found = {}
            for rx, flag in _TRIGGERS:  # the same flag, or 0 then _WORDS: overwriting is or-ing
                found.update(dict.fromkeys([m.end() for m in rx.finditer(buf, pos, n)], flag))
        # A job's pattern may span lines: the line where its match starts is the candidate.
        find = buf.find
        for search in self._custom_triggers:
            at = pos
            while at <= n:
                m = search(buf, at, n)
                if m is None:
                    break
                end = find(b"\n", m.start(), n)
                if end < 0:
                    end = n
                found[end] = found.get(end, 0) | _CUSTOM
                at = end + 1
        return found

    def _lines(self, buf: bytes, pos: int, n: int, now: float, samples: list[Sample]) -> int | None:
        """Add the samples of the complete lines in buf[pos:n] to `samples`, in order. A
        table's header changes which lines are candidates: then stop after it and return
        where the rest begins (None when all is read)."""
        append = samples.append
        new = tuple.__new__  # Sample(...) goes through a Python-level __new__: 2x slower
        progress = self._progress
        last, plans, floats = self._last, self._plans, _FLOATS
        custom, limit = self._custom, self._max_partial
        loss_rank = self._loss_rank  # written back before returning
        rfind = buf.rfind
        found = self._candidates(buf, pos, n)
        watch = self._watch
        for end in sorted(found):
            start = rfind(b"\n", 0, end) + 1
            if end - start > limit:
                continue  # as if it had arrived in pieces: the same result however it is split
            flags = found[end]
            raw = buf[start:end]
            line = None
            metrics = None
            lossy: tuple[str, int] | None = None
            restart = False
            if flags & _TABLE:
                if self._table is not None or b" metric" in raw:
                    line = raw.decode("utf-8", "replace")
                    got = self._table_line(line)
                    if got is not None:
                        metrics, hints = got
                        lossy = _lossy(metrics)
                if metrics is None and flags & _TABLE_ONLY:
                    continue
            if metrics is None:
                plan = None
                memo = plans[flags & _WORDS]
                if end - start <= _PLAN_MAX_LINE:
                    shape = raw.translate(_DIGITS_TO_0)
                    plan = memo.get(shape)
                if plan is not None:
                    hints, items, checks, lossy = plan
                    if checks and any(raw[a:b] != t for a, b, t in checks):
                        plan = None  # same shape, other digits in a name ("acc@1" / "acc@5")
                    elif not items and not flags & _CUSTOM:
                        if hints & _HINT_RESULTS and not self._watch:
                            self._watch = True  # and read the lines after it as such
                            self._loss_rank = loss_rank
                            return end + 1 if end < n else None
                        continue  # the usual noise line that passed a trigger: a known dead end
                if plan is None:
                    if line is None:
                        line = raw.decode("utf-8", "replace")
                    reading = _read(line, flags & _WORDS)
                    metrics, hints, lossy = reading.out, reading.hints, reading.lossy
                    if reading.header is not None:
                        self._table = reading.header
                        self._watch = True
                    elif hints & _HINT_RESULTS:
                        self._watch = True
                    restart = self._watch and not watch  # then the lines after it are rows
                    if reading.eta is not None:
                        progress.printed_eta = reading.eta
                    if end - start <= _PLAN_MAX_LINE:
                        made = _make_plan(line, raw, reading)
                        if made is not None:
                            if len(memo) >= _PLAN_CACHE:
                                memo.clear()
                            memo[shape] = made
                else:
                    metrics = {}
                    for name, a, b in items:
                        text = raw[a:b]
                        value = floats.get(text)
                        if value is None:
                            value = float(text)
                            if value - value != 0.0:  # nan or inf: news for a loss only
                                if _keeps_nonfinite(name):
                                    metrics[name] = value
                                continue
                            if len(floats) >= _FLOAT_CACHE:
                                floats.clear()
                            floats[text] = value
                        metrics[name] = value
            if flags & _CUSTOM:
                _apply_custom(line or raw.decode("utf-8", "replace"), custom, metrics)
            if metrics:
                if lossy is not None and lossy[1] <= loss_rank:
                    if lossy[1]:  # not `loss` itself
                        value = metrics.get(lossy[0])
                        if value is not None:
                            metrics["loss"] = value
                            loss_rank = lossy[1]
                    else:
                        loss_rank = 0
                if (
                    hints & _HINT_PLAIN_BAR
                    and progress.steps is not None
                    and metrics.get("steps", progress.steps) < progress.steps
                    and not self._main_bar(metrics)
                ):
                    metrics.pop("step", None)
                    metrics.pop("steps")
                if not _PROGRESS_NAMES.isdisjoint(metrics):
                    progress.update(metrics, hints, now)
                x = progress.x
                for name, value in metrics.items():
                    old = last.get(name)
                    if (
                        (old[1] != value and (value == value or old[1] == old[1]))  # NaN
                        or (old[2] != x and name not in _STATE_NAMES)
                        if old is not None
                        else len(last) < MAX_METRICS
                    ):
                        last[name] = sample = new(Sample, (name, value, x))
                        append(sample)
            if restart:
                self._loss_rank = loss_rank
                return end + 1 if end < n else None
        self._loss_rank = loss_rank
        return None

    def _table_line(self, line: str) -> tuple[dict[str, float], int] | None:
        """A line while a table may be printed: a row's values and hints, or None. Notes a
        results table's header and end."""
        table = self._table
        if table is None:
            head = _Table.parse(line)
            if head is not None and head.kind == "kv":
                self._table = head
            return None
        if table.ends_at(line):
            self._table = None
            self._watch = False
            return None
        return table.row(line)

    def _main_bar(self, m: Mapping[str, float]) -> bool:
        """Is this anonymous bar the training bar? An eval bar (HF's has no description,
        fastai's repeats the epoch's) has fewer steps than the training bar: ignore it,
        unless a new epoch began."""
        p = self._progress
        if p.steps is None or p.step is None or m["steps"] >= p.steps:
            return True
        epoch = m.get("epoch")
        return epoch is not None and p.epoch is not None and epoch > p.epoch
