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
"""

from __future__ import annotations

import math
import re
import sys
from collections import deque
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

__all__ = ["LogParser", "Sample", "compile_custom", "parse_line"]

# Distinct metric names one parser tracks. A log that prints thousands of distinct keys (say
# one per layer) must not grow the parser without bound; names past this are ignored.
MAX_METRICS = 256

# The ETA's rate is the progress made over about this many seconds: long enough to ride
# out bursts of output, stalled data loaders and validation pauses, short enough to follow
# a real change of speed. It is measured from a few anchor points, so memory stays bounded.
ETA_WINDOW_S = 300.0
_ETA_ANCHORS = 32
_ANCHOR_GAP_S = ETA_WINDOW_S / _ETA_ANCHORS

# Keys that look numeric but are bookkeeping, not metrics (Lightning's `v_num`, timm's
# `Data:`/`Time:` timings, Lightning's "TPU available: False, using: 0 TPU cores" ...).
_IGNORED = frozenset(
    {
        "v_num", "eta", "time", "data", "using", "used", "pid", "port", "rank", "local_rank",
        "global_rank", "node_rank", "world_size", "line", "seed", "version", "gpu", "cuda",
        "device",
    }
)  # fmt: skip

# Other spellings of the names the dashboard and `ls` show.
_ALIASES = {
    "learning_rate": "lr",
    "global_step": "step",
    "iter": "step",
    "iteration": "step",
    "max_epochs": "epochs",
    "num_epochs": "epochs",
    "max_steps": "steps",
    "total_steps": "steps",
}

# Names read without `=` or `:` ("loss 0.42", "epoch 3", "| ppl 4.96") only when well
# known, since "line 12" or "Using 4 GPUs" are noise; qualifiers may precede them.
_KNOWN = frozenset(
    {
        "epoch", "step", "iter", "iteration", "loss", "train_loss", "val_loss", "valid_loss",
        "eval_loss", "test_loss", "nll_loss", "lr", "ppl", "perplexity", "acc", "accuracy",
        "val_acc", "grad_norm", "gnorm",
    }
)  # fmt: skip
_QUALIFIERS = frozenset(
    {"train", "training", "val", "valid", "validation", "eval", "test", "avg", "average", "mean"}
)

# Progress metrics are state, not curves: a sample only when the value changes.
_STATE_NAMES = frozenset({"epoch", "epochs", "steps"})
_PROGRESS_NAMES = frozenset({"epoch", "epochs", "step", "steps"})

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# A value ends where a token ends, so `12:30:45`, `x.py:558:`, `45%`, `12s` and
# `11,181,642` are not values.
_END = r"""(?=[\s;|)\]}'"]|,(?!\d)|$)"""
_END_OR_COLON = r"""(?=[\s;:|)\]}'"]|,(?!\d)|$)"""  # "epoch 3: ..."

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\r\n]*(?:\x07|\x1b\\)|[@-Z\\^_])")

_ANSI_BYTES = re.compile(_ANSI.pattern.encode())

# Chunk pre-filter, run on the raw bytes (decoding comes later, for the few lines found):
# each built-in format has one of these, and each starts with a literal. `_WORDS` marks
# lines worth the scan for space-separated values ("epoch 3 loss 0.42"). A trigger runs on
# to the end of its line (`[^\n]*`), so one `finditer` pass yields each line once, by its
# end, and skips the rest of the line in C. Its quantifiers are possessive (`*+`, `?+`,
# `(?>...)`): what follows each could not start with what it would give back, so they find
# the same lines, and the many `:` and `/` of noise ("12:30:45", "x.py:558:", paths) fail
# without backtracking: ~20% less scan time.
_WORDS = 1
_CUSTOM = 2  # found by a job's own pattern: only those lines are searched with them


def _trigger(pattern: str) -> re.Pattern[bytes]:
    """A trigger regex. Python 3.10 lacks possessive quantifiers and atomic groups: there,
    the same pattern without them (the same lines found, only slower)."""
    if sys.version_info < (3, 11):
        for fast, slow in (("*+", "*"), ("?+", "?"), ("++", "+"), ("(?>", "(?:")):
            pattern = pattern.replace(fast, slow)
    return re.compile(pattern.encode())


_TRIGGERS: tuple[tuple[re.Pattern[bytes], int], ...] = (
    # flag-0 triggers first: `LogParser._candidates` lets later flags overwrite earlier ones
    (_trigger(r"""=[ \t]*+['"]?+(?:tensor\()?+[-+]?+\.?+\d[^\n]*"""), 0),
    # not a clock: "12:30:45" has two digits before the `:`, "f1: 0.9" has one
    (_trigger(rf""":(?<![\d:]\d:)[ \t]*+['"]?+(?>{_NUM}){_END}[^\n]*"""), 0),
    (_trigger(r"/[ \t]*+\d[^\n]*"), 0),
    (_trigger(r"oss[ \t]++[-+]?+\.?+\d[^\n]*"), _WORDS),
    (_trigger(r"poch[ \t]++\d[^\n]*"), _WORDS),
)
_NEWLINE = re.compile(rb"\n")

# `key=1`, `key: 1`, `'key': 1` (HF dicts), `"key": 1` (JSON lines), `key=tensor(0.31, ...)`
# (a printed torch loss): the value; the name is read backwards by `_key_before`.
_KV_VALUE = re.compile(rf"""[=:][ \t]*(?:tensor\()?({_NUM}){_END}""")
_SPACE_VALUE = re.compile(rf""" [ \t]*({_NUM}){_END_OR_COLON}""")
# Backwards from a separator: blanks, a quote, the key, then up to two more words, so that
# "val loss: 0.5" is `val_loss` (not the training loss) and "Gradient Accumulation steps =
# 1" is not `steps`. Forwards: (?<![\w.@/-])['"]?KEY(?: WORD){0,2}['"]?[ \t]*.
_KEY_REV = re.compile(r"""[ \t]*['"]?([A-Za-z0-9_.@/-]+)((?: [A-Za-z0-9_]+){0,2})""")
# "x.py:558", "ProcessGroupNCCL.cpp:1234]": a source position, not a metric.
_SOURCE = re.compile(r"\.(?:py|pyx|c|cc|cpp|cxx|h|hpp|cu|cuh|rs|go|js|ts|java)$")

# `N/M` counters, recognised backwards from the `/` by what precedes N.
_SLASH = re.compile(r"/[ \t]*(\d+)(?![\w.])")
_SLASH_REV = re.compile(
    r"""[ \t]*(?P<n>\d+)(?:
      # "epoch 3/10", "Epoch [3/10]", "step 120/1000", "Step: [120/1000]", "batch 5/100"
      [ \t]*\[?[ \t]*[:\#]?[ \t]*s?(?P<word>hcope|pets|noitareti|reti|hctab)(?![\w-])
      # fairseq train_inner: "epoch 001:    100 / 1000 loss=9.5, ..."
    | [ \t]+:(?P<fe>\d+)[ \t]+hcope(?![\w-])
      # timm: "Train: 3 [ 450/1000 ( 45%)]  Loss: ...", "Test: [  0/390]  Loss: ..."
    | [ \t]*\[[ \t]*(?:(?P<te>\d+)[ \t]*)?(?:\)AME\([ \t]*)?:[ \t]*
      (?P<timm>niart|tset|lave)(?![\w-])
      # tqdm: "{desc}: 45%|████▌     | 450/1000 [00:30<00:37, 14.8it/s, loss=0.31]"
    | [ \t]*(?P<bar>\|)
      # Keras, at the start of the line: "450/1000 [=====>....] - ETA: 12s - loss: 0.40"
    | [ \t]*(?P<start>\Z)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_KERAS_BAR = re.compile(r"[ \t]+(?:\[[=>.]*\]|[━─]+)")  # Keras 2 "[===>...]", Keras 3 "━━━"
_TQDM_EPOCH = re.compile(r"(?i)\bepoch[ \t]+(\d+)\b")
# A described bar counts as training progress only if its description says so; "Map:",
# "Downloading:", "Validation DataLoader 0:" and the like would make progress jump around.
_TRAIN_BAR = re.compile(r"(?i)train|epoch|step|iter|batch")
# fairseq "| epoch 003 | loss 2.31 | ppl 4.96 | wps 1234 |": one "name value" per field.
_PIPE_FIELD = re.compile(rf"[ \t]*([A-Za-z_][\w.-]*)[ \t]+({_NUM})[ \t]*")

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
# (hints, ((name, value start, value end), ...), ((start, end, bytes that must match), ...))
_Plan = tuple[int, tuple[tuple[str, int, int], ...], tuple[tuple[int, int, bytes], ...]]

# Hints a line gives about its progress counters (bit flags).
_HINT_PER_EPOCH = 1  # its step counter restarts every epoch (Lightning, Keras, timm ...)
_HINT_PLAIN_BAR = 2  # step/steps come from an anonymous progress bar (maybe an eval bar)


class Sample(NamedTuple):
    """One metric reading: `step` is where to plot it (the job's step, or epoch if no step).

    With a per-epoch step counter (Lightning, Keras, timm) `step` keeps growing across
    epochs, (epochs done) * steps + step, so that a curve does not fold back on itself.
    A named tuple, not a dataclass: the parser makes one per reading, ~4x cheaper.
    """

    name: str
    value: float
    step: float | None


def compile_custom(
    custom: Mapping[str, str | re.Pattern[str]] | None,
) -> dict[str, re.Pattern[str]]:
    """Compile a job file's `metrics:` patterns (MULTILINE, so `^` means line start)."""
    if not custom:
        return {}
    return {
        name: rx if isinstance(rx, re.Pattern) else re.compile(rx, re.MULTILINE)
        for name, rx in custom.items()
    }


@lru_cache(maxsize=4096)
def _name(key: str) -> str:
    """'Train/Loss' -> 'train_loss', 'valAcc' -> 'val_acc', 'learning_rate' -> 'lr';
    '' for keys that are not metrics."""
    if _SOURCE.search(key):
        return ""
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()
    key = re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    key = _ALIASES.get(key, key)
    return "" if key in _IGNORED else key


def _num(text: str) -> float | None:
    """A finite float, or None: NaN/inf would break JSON output and every plot downstream."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def _key_before(line: str, rev: str, at: int) -> tuple[str, int] | None:
    """The key that ends just before line index `at`, and where its match starts."""
    n = len(line)
    k = _KEY_REV.match(rev, n - at)
    if k is None:
        return None
    key = k.group(1)[::-1]
    if not (key[0].isalpha() or key[0] == "_"):
        return None
    more = k.group(2)
    end = k.end(1)  # in `rev`: where the words we keep end
    if more:
        words = [key]
        for word in more[1:].split(" "):
            if not word[-1].isalpha():  # reversed: its first letter is last
                break
            words.append(word[::-1])
            end += 1 + len(word)
        key = " ".join(reversed(words))
    # The start of what was kept, not of everything matched: the shape memo checks the
    # text from here on, and must not cover a number before the key ("120 loss=").
    return key, n - end


class _Reading:
    """What one line says: metrics, where each value sits, and what else the reading
    depended on, so that `LogParser` can replay it on lines of the same shape (a *plan*)."""

    __slots__ = ("checks", "hints", "out", "spans")

    def __init__(self) -> None:
        self.out: dict[str, float] = {}
        self.spans: dict[str, tuple[int, int]] = {}
        self.hints = 0
        self.checks: list[tuple[int, int, str]] = []  # names with digits in them ("acc@1")

    def put(self, name: str, line: str, start: int, end: int) -> None:
        value = _num(line[start:end])
        if value is not None:
            self.out[name] = value
            self.spans[name] = (start, end)

    def key(self, line: str, start: int, end: int) -> None:
        text = line[start:end]
        if any(c.isdigit() for c in text):
            self.checks.append((start, end, text))


def _counters(line: str, rev: str, r: _Reading) -> tuple[str, int]:
    """Read the `N/M` counters of a line: (name prefix, end of the timm head)."""
    n = len(line)
    prefix = ""
    head = -1  # "Train: 3 [ 450/1000" must not also read as a metric named `train`
    words = 0
    for m in _SLASH.finditer(line):
        b = _SLASH_REV.match(rev, n - m.start())
        if b is None:
            continue
        num, total = (n - b.end("n"), n - b.start("n")), m.span(1)
        word = b.group("word")
        if word is not None:
            word = word.lower()
            if word == "hcope":
                r.put("epoch", line, *num)
                r.put("epochs", line, *total)
                words |= 1
            else:
                r.put("step", line, *num)
                r.put("steps", line, *total)
                words |= 4 if word == "hctab" else 2
        elif b.group("fe") is not None:
            r.put("epoch", line, n - b.end("fe"), n - b.start("fe"))
            r.put("step", line, *num)
            r.put("steps", line, *total)
            r.hints |= _HINT_PER_EPOCH
        elif b.group("timm") is not None:
            head = m.end()
            if b.group("timm").lower() == "niart":
                if b.group("te") is not None:
                    r.put("epoch", line, n - b.end("te"), n - b.start("te"))
                r.put("step", line, *num)
                r.put("steps", line, *total)
                r.hints |= _HINT_PER_EPOCH
            else:
                prefix = "eval_"  # timm's validation pass: keep it off the training curve
        elif b.group("bar") is not None:
            pct = line.find("%|")
            if pct < 0 or pct > m.start():
                continue
            desc = line[:pct].rstrip("0123456789 \t")
            epoch = _TQDM_EPOCH.search(desc)
            if epoch:  # Lightning: "Epoch 3:  45%|...| 450/1000"
                r.put("epoch", line, *epoch.span(1))
                r.hints |= _HINT_PER_EPOCH
            elif desc.strip(" \t:") and not _TRAIN_BAR.search(desc):
                continue
            else:
                r.hints |= _HINT_PLAIN_BAR
            r.put("step", line, *num)
            r.put("steps", line, *total)
        elif _KERAS_BAR.match(line, m.end()):
            r.put("step", line, *num)
            r.put("steps", line, *total)
            r.hints |= _HINT_PER_EPOCH
    if words & 4 or words & 3 == 3:  # "Epoch [3/10], Step [120/1000]": a per-epoch counter
        r.hints |= _HINT_PER_EPOCH
    return prefix, head


def _read(line: str, flags: int = _WORDS) -> _Reading:
    """One ANSI-free line -> what the built-in formats read in it."""
    r = _Reading()
    rev = line[::-1]
    prefix, head = _counters(line, rev, r) if "/" in line else ("", -1)

    fields = None
    if flags & _WORDS and line.count("|") >= 2 and "%|" not in line:
        fields = line.split("|")
        # fairseq: "| epoch 001 | valid on 'valid' subset | loss 8.9 |" is a validation loss.
        if any(f.strip() == "valid" or f.strip().startswith("valid on") for f in fields):
            prefix = "val_"

    if "=" in line or ":" in line:
        for m in _KV_VALUE.finditer(line):
            at = m.start()
            if at <= head:
                continue
            found = _key_before(line, rev, at)
            if found is None:
                continue
            name = _name(found[0])
            if name:
                r.key(line, found[1], at)
                if prefix and name != "epoch":
                    name = prefix + name
                r.put(name, line, *m.span(1))

    if flags & _WORDS:
        for m in _SPACE_VALUE.finditer(line):
            at = m.start()
            found = _key_before(line, rev, at)
            if found is None:
                continue
            words = found[0].split(" ")
            if words[-1].lower() not in _KNOWN:
                continue
            i = len(words) - 1
            while i and words[i - 1].lower() in _QUALIFIERS:
                i -= 1
            name = _name(" ".join(words[i:]))
            if name:
                r.key(line, found[1], at)
                if prefix and name != "epoch":
                    name = prefix + name
                r.put(name, line, *m.span(1))
        at = 0
        for f in fields or ():
            field = _PIPE_FIELD.fullmatch(f)
            if field:
                name = _name(field.group(1))
                if name:
                    r.key(line, at, at + field.end(1))
                    if prefix and name != "epoch":
                        name = prefix + name
                    r.put(name, line, at + field.start(2), at + field.end(2))
            at += len(f) + 1
    return r


def _apply_custom(line: str, custom: Mapping[str, re.Pattern[str]], out: dict[str, float]) -> None:
    """A job's own patterns, read after (so they win over) the built-in formats."""
    for name, rx in custom.items():
        m = rx.search(line)
        if m:
            groups = m.groupdict()
            raw = groups.get("value") if "value" in groups else (m.group(1) if rx.groups else None)
            value = _num(raw.replace(",", "")) if raw else None
            if value is not None:
                out[name] = value


def _make_plan(line: str, raw: bytes, reading: _Reading) -> _Plan | None:
    """How to read lines shaped like `raw` again: byte spans of its values and names."""
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
    return reading.hints, items, checks


def _bytes_pattern(rx: re.Pattern[str]) -> re.Pattern[bytes] | None:
    """A custom pattern as a raw-bytes pre-filter (ASCII semantics), or None if it has none."""
    try:
        return re.compile(rx.pattern.encode("ascii"), rx.flags & ~re.UNICODE)
    except (UnicodeEncodeError, re.error):
        return None


def parse_line(
    line: str, custom: Mapping[str, str | re.Pattern[str]] | None = None
) -> dict[str, float]:
    """One line of output (ANSI colours allowed) -> the metrics it carries, names normalised.

    Stateless: no ETA, and anonymous progress bars are taken at face value (`LogParser`
    also drops eval bars that would make training progress jump).
    """
    line = _strip_ansi(line)
    out = _read(line).out
    _apply_custom(line, compile_custom(custom), out)
    return out


class _Progress:
    """Where the job is (epoch, step) and how fast it moves; turns that into an ETA."""

    def __init__(self) -> None:
        self.epoch: float | None = None
        self.epochs: float | None = None
        self.step: float | None = None
        self.steps: float | None = None
        self.zero_based = False  # epochs counted from 0 (Lightning, timm) once we see an epoch 0
        self.per_epoch: bool | None = None  # does the step counter restart every epoch?
        self.per_epoch_seen = False  # per_epoch was observed, not guessed from the format
        self.step_read: float | None = None  # the last step read (`step` may be reset to 0)
        self.step_epoch: float | None = None  # the epoch when it was read
        self.summary = False  # the last epoch line also reported results (an epoch's end)
        self.value: float | None = None  # progress in [0, 1]
        self.head: tuple[float, float] | None = None  # (time, progress) of the last reading
        # earlier readings, at least ETA_WINDOW_S / _ETA_ANCHORS seconds apart
        self.anchors: deque[tuple[float, float]] = deque(maxlen=_ETA_ANCHORS + 2)
        self.rate: float | None = None  # progress per second over the window
        self.x: float | None = None  # where to plot readings now, see `_x`

    def update(self, m: Mapping[str, float], hints: int, now: float) -> None:
        epoch, step = m.get("epoch"), m.get("step")
        if epoch is not None:
            if epoch == 0:
                self.zero_based = True
            if self.per_epoch and step is None and self.epoch is not None and epoch > self.epoch:
                # Keras: "Epoch 2/3" comes before the first step line of that epoch; the last
                # step read (1000/1000) belongs to the epoch before.
                self.step = 0.0
            self.epoch = epoch
            self.summary = step is None and not m.keys() <= _PROGRESS_NAMES  # no set built
        epochs, steps = m.get("epochs"), m.get("steps")
        if epochs:
            self.epochs = epochs
        if steps:
            self.steps = steps
        if hints & _HINT_PER_EPOCH and not self.per_epoch_seen:
            self.per_epoch = True
        if step is not None:
            if (
                self.step_read is not None
                and self.epoch is not None
                and self.step_epoch is not None
                and self.epoch > self.step_epoch
                and step != self.step_read
            ):
                # The epoch moved on since the last step reading: a restarted counter is
                # per-epoch, one that kept growing is global, whatever the format suggested.
                self.per_epoch = step < self.step_read
                self.per_epoch_seen = True
            self.step = self.step_read = step
            self.step_epoch = self.epoch
        self.x = self._x()
        self._advance(now)

    def _done_epochs(self) -> float:
        assert self.epoch is not None
        done = self.epoch - (0 if self.zero_based else 1)
        return 0.0 if done < 0.0 else done  # max(done, 0.0): no builtin call on this hot path

    def _x(self) -> float | None:
        """Where to plot a reading: a step that grows across epochs, else the epoch."""
        if self.step is not None:
            if self.per_epoch and self.steps and self.epoch is not None:
                return self._done_epochs() * self.steps + self.step
            return self.step
        return self.epoch

    def fraction(self) -> float | None:
        """Total progress in [0, 1]: (epochs done + step/steps) / epochs, or what is known."""
        if self.step is not None and self.steps:
            frac = self.step / self.steps
            frac = 1.0 if frac > 1.0 else frac  # min(frac, 1.0), as below
            if self.per_epoch and self.epoch is not None and self.epochs:
                frac = (self._done_epochs() + frac) / self.epochs
                return 1.0 if frac > 1.0 else frac
            return frac
        if self.epoch is not None and self.epochs:
            if self.epoch != int(self.epoch):  # HF's fractional epoch already counts progress
                return min(self.epoch / self.epochs, 1.0)
            return min((self._done_epochs() + (1 if self.summary else 0)) / self.epochs, 1.0)
        return None

    def _advance(self, now: float) -> None:
        """Take a progress reading; the rate is the progress since the oldest anchor in the
        window over the time since then.

        A reading is stamped with the time its bytes were read, so output that comes in
        bursts (pipe-pane buffering, a stalled loader, a validation pass) looks like
        progress in steps; over a window of minutes those steps average out, where the rate
        of the last interval alone would swing between zero and many times the truth.
        """
        p = self.fraction()
        if p is None:
            return
        self.value = p
        head, anchors = self.head, self.anchors
        if head is not None and p < head[1]:
            # Progress went back (a per-epoch count with the number of epochs unknown):
            # measure afresh, keeping the last rate until there is a new one.
            anchors.clear()
            head = None
        if (
            head is not None
            and now > head[0]
            and (not anchors or head[0] - anchors[-1][0] >= _ANCHOR_GAP_S)
        ):
            anchors.append(head)  # the last reading of an earlier time
        t = now if head is None or not head[0] > now else head[0]  # max(), without the call
        self.head = (t, p)
        while len(anchors) > 1 and anchors[1][0] <= t - ETA_WINDOW_S:
            anchors.popleft()
        if anchors and t > anchors[0][0]:
            self.rate = (p - anchors[0][1]) / (t - anchors[0][0])

    def eta_s(self) -> float | None:
        """Seconds left at the smoothed rate, as of the last progress reading."""
        p = self.value
        if p is None or self.rate is None:
            return None
        if p >= 1.0:
            return 0.0
        return (1.0 - p) / self.rate if self.rate > 0 else None


class LogParser:
    """Incremental parser for one job's log: feed it bytes as they arrive, get samples back.

    Memory is bounded: one incomplete line (at most `max_partial` bytes; a longer line is
    dropped whole), the latest sample per metric name (at most MAX_METRICS names) and a
    memo of line shapes (at most _PLAN_CACHE).
    """

    def __init__(self, custom: dict[str, str] | None = None, max_partial: int = 65536) -> None:
        self._custom = compile_custom(custom)
        self._custom_triggers: list[re.Pattern[bytes]] = []
        self._every_line = False  # a custom pattern that cannot pre-filter raw bytes
        for rx in self._custom.values():
            trigger = _bytes_pattern(rx)
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

    @property
    def latest(self) -> dict[str, float]:
        """Latest value of every metric seen, plus `eta_s` (seconds) once progress has a rate.

        `eta_s` is as of the last progress reading, not of the last `feed`.
        """
        out = {name: sample.value for name, sample in self._last.items()}
        eta = self._progress.eta_s()
        if eta is not None:
            out["eta_s"] = eta
        return out

    @property
    def progress(self) -> float | None:
        """Total progress of the job in [0, 1], when its log shows it."""
        return self._progress.value

    def feed(self, data: bytes, now: float) -> list[Sample]:
        """Parse newly arrived bytes (read at `now`); return the samples of completed lines.

        A line ends at `\\n` or `\\r` (a progress-bar redraw is a line of its own) and is
        decoded as UTF-8 only once complete, so a character split between two feeds is
        whole. Readings repeated with the same value at the same step, such as a bar redrawn
        with the same numbers, are reported once; `epoch`, `epochs` and `steps` only when
        they change.
        """
        if self._skipping:
            cuts = [i for i in (data.find(b"\n"), data.find(b"\r")) if i >= 0]
            if not cuts:
                return []
            self._skipping = False
            data = data[min(cuts) :]
        buf = self._partial + data
        if b"\x1b" in buf:
            buf = _ANSI_BYTES.sub(b"", buf)
        if b"\r" in buf:
            buf = buf.replace(b"\r", b"\n")
        cut = buf.rfind(b"\n")
        self._partial = buf[cut + 1 :]
        if len(self._partial) > self._max_partial:
            self._partial = b""
            self._skipping = True
        if cut < 0:
            return []
        return self._lines(buf, cut, now)  # buf[:cut] would copy a megabyte for nothing

    def _candidates(self, buf: bytes, n: int) -> dict[int, int]:
        """Line end -> flags, for the lines of buf[:n] that may carry a metric; the rest is
        never read. Keyed by where a line ends: where a built-in trigger's match stops."""
        if self._every_line:
            every = _WORDS | _CUSTOM
            found = dict.fromkeys([m.start() for m in _NEWLINE.finditer(buf, 0, n)], every)
            found[n] = every
            return found
        found = {}
        for rx, flag in _TRIGGERS:  # the same flag, or 0 then _WORDS: overwriting is or-ing
            found.update(dict.fromkeys([m.end() for m in rx.finditer(buf, 0, n)], flag))
        # A job's pattern may span lines: the line where its match starts is the candidate.
        find = buf.find
        for rx in self._custom_triggers:
            search = rx.search
            pos = 0
            while pos <= n:
                m = search(buf, pos, n)
                if m is None:
                    break
                end = find(b"\n", m.start(), n)
                if end < 0:
                    end = n
                found[end] = found.get(end, 0) | _CUSTOM
                pos = end + 1
        return found

    def _lines(self, buf: bytes, n: int, now: float) -> list[Sample]:
        """The samples of the complete lines in buf[:n], in order."""
        samples: list[Sample] = []
        append = samples.append
        new = tuple.__new__  # Sample(...) goes through a Python-level __new__: 2x slower
        progress = self._progress
        last, plans, floats = self._last, self._plans, _FLOATS
        custom, limit = self._custom, self._max_partial
        rfind = buf.rfind
        found = self._candidates(buf, n)
        for end in sorted(found):
            start = rfind(b"\n", 0, end) + 1
            if end - start > limit:
                continue  # as if it had arrived in pieces: the same result however it is split
            flags = found[end]
            raw = buf[start:end]
            line = None
            plan = None
            memo = plans[flags & _WORDS]
            if end - start <= _PLAN_MAX_LINE:
                shape = raw.translate(_DIGITS_TO_0)
                plan = memo.get(shape)
            if plan is not None:
                hints, items, checks = plan
                if checks and any(raw[a:b] != t for a, b, t in checks):
                    plan = None  # same shape, other digits in a name ("acc@1" / "acc@5")
                elif not items and not flags & _CUSTOM:
                    continue  # the usual noise line that passed a trigger: a known dead end
            if plan is None:
                line = raw.decode("utf-8", "replace")
                reading = _read(line, flags & _WORDS)
                metrics, hints = reading.out, reading.hints
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
                        if not math.isfinite(value):
                            continue
                        if len(floats) >= _FLOAT_CACHE:
                            floats.clear()
                        floats[text] = value
                    metrics[name] = value
            if flags & _CUSTOM:
                _apply_custom(line or raw.decode("utf-8", "replace"), custom, metrics)
            if not metrics:
                continue
            if hints & _HINT_PLAIN_BAR and "steps" in metrics and not self._main_bar(metrics):
                metrics.pop("step", None)
                metrics.pop("steps")
            if not _PROGRESS_NAMES.isdisjoint(metrics):
                progress.update(metrics, hints, now)
            x = progress.x
            for name, value in metrics.items():
                old = last.get(name)
                if (
                    old[1] != value or (old[2] != x and name not in _STATE_NAMES)
                    if old is not None
                    else len(last) < MAX_METRICS
                ):
                    last[name] = sample = new(Sample, (name, value, x))
                    append(sample)
        return samples

    def _main_bar(self, m: Mapping[str, float]) -> bool:
        """Is this anonymous bar the training bar? An eval bar (HF's has no description)
        runs while the training bar is unfinished and has fewer steps; ignore it."""
        p = self._progress
        if p.steps is None or p.step is None or p.step >= p.steps:
            return True
        return m["steps"] >= p.steps
