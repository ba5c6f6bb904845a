"""Raw terminal output of a training job -> metric samples (loss, epoch, step, lr, eta ...).

The input is what tmux `pipe-pane` captures: progress bars redrawn with `\\r`, ANSI colours,
CRLF, multibyte characters split anywhere. Nothing here does I/O or reads a clock: the caller
hands in bytes as they arrive and the time (`now`, POSIX seconds) they were read.

Speed matters more than it seems: a job can print megabytes a minute and the daemon tails every
job on one core. Most lines carry no metric (warnings, tracebacks, prints), so `LogParser.feed`
first finds candidate lines with one character-class regex and a few substring searches over
the whole chunk, and runs the per-format regexes on those lines only.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["LogParser", "Sample", "compile_custom", "parse_line"]

# Distinct metric names one parser tracks. A log that prints thousands of distinct keys (say
# one per layer) must not grow the parser without bound; names past this are ignored.
MAX_METRICS = 256

# Time constant (seconds) of the ETA's rate smoothing: long enough to ride out bursts of
# output and validation pauses, short enough to follow a real change of speed.
ETA_TAU_S = 120.0

# Keys that look numeric but are bookkeeping, not metrics (Lightning's `v_num`, timm's
# `Data:`/`Time:` timings, Lightning's "TPU available: False, using: 0 TPU cores" ...).
_IGNORED = frozenset(
    {
        "v_num",
        "eta",
        "time",
        "data",
        "using",
        "used",
        "pid",
        "port",
        "rank",
        "local_rank",
        "global_rank",
        "node_rank",
        "world_size",
        "line",
        "seed",
        "version",
        "gpu",
        "cuda",
        "device",
    }
)

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

# Progress metrics are state, not curves: a sample only when the value changes.
_STATE_NAMES = frozenset({"epoch", "epochs", "steps"})
_PROGRESS_NAMES = frozenset({"epoch", "epochs", "step", "steps"})

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# A value must end where a token ends: `12:30:45`, `x.py:558:`, `45%`, `12s` and
# `11,181,642` are not values.
_END = r"(?=[\s;|)\]}]|,(?!\d)|$)"

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)|[@-Z\\^_])")

# Pre-filter: every built-in format except the space-separated one ("loss 0.42") has a `=`
# or `:` before a number, or an `N/M` counter. Starting with a character class lets the
# regex engine skip quickly over text that cannot match.
_TRIGGER = re.compile(r"""[=:][ \t]*['"]?(?:tensor\()?[-+]?\.?\d|/[ \t]*\d""")
# ... and the space-separated formats are found by keyword (searched in lowercased text).
_KEYWORDS = ("epoch", "loss", "step", "iter", "accuracy", "ppl")

# key=value, key: value, 'key': value, "key": value (HF dicts, JSON lines, tqdm postfix,
# Keras " - loss: 0.40", `loss=tensor(0.31, device='cuda:0')`). A key may be a phrase of up
# to three words ("val loss: 0.5" -> val_loss, "Gradient Accumulation steps = 1" is not
# `steps`), so an eval loss printed in words does not overwrite the training loss.
_KV = re.compile(
    r"""(?<![\w.@/-])['"]?([A-Za-z_][\w.@/-]*(?: [A-Za-z][A-Za-z0-9_]*){0,2})['"]?[ \t]*[=:]"""
    rf"""[ \t]*(?:tensor\()?({_NUM}){_END}"""
)
# "loss 0.42", "epoch 3", "| ppl 4.96": space-separated, only for well-known names since
# "line 12" or "Using 4 GPUs" are noise.
_KNOWN = re.compile(
    rf"""(?<![\w.-])(epoch|step|iter|iteration|loss|train_loss|val_loss|valid_loss|eval_loss|"""
    rf"""test_loss|lr|ppl|perplexity|acc|accuracy|val_acc|grad_norm|gnorm)[ \t]+({_NUM})"""
    rf"""(?=[\s;:|)\]}}]|,(?!\d)|$)""",
    re.IGNORECASE,
)
# "epoch 3/10", "Epoch [3/10]", "step 120/1000", "Step: [120/1000]", "batch 5/100".
_PROG = re.compile(
    r"(?<![\w-])(epoch|step|iter|iteration|batch)s?[ \t]*[:#]?[ \t]*\[?[ \t]*(\d+)[ \t]*/"
    r"[ \t]*(\d+)[ \t]*\]?",
    re.IGNORECASE,
)
# fairseq train_inner: "epoch 001:    100 / 1000 loss=9.5, ppl=724.1, ...".
_FAIRSEQ_INNER = re.compile(r"(?<![\w-])epoch[ \t]+(\d+):[ \t]+(\d+)[ \t]*/[ \t]*(\d+)")
# tqdm: "{desc}: 45%|████▌     | 450/1000 [00:30<00:37, 14.8it/s, loss=0.31]".
_TQDM = re.compile(
    r"^[ \t]*(?:(.*?):?[ \t]*)?\d+%\|[^|]*\|[ \t]*(\d+(?:\.\d+)?[kMGT]?)/(\d+(?:\.\d+)?[kMGT]?)"
)
_TQDM_EPOCH = re.compile(r"(?i)\bepoch[ \t]+(\d+)\b")
# A described bar counts as training progress only if its description says so; "Map:",
# "Downloading:", "Validation DataLoader 0:" and the like would make progress jump around.
_TRAIN_BAR = re.compile(r"(?i)train|epoch|step|iter|batch")
# Keras 2 "450/1000 [=====>....] - ETA: 12s - loss: 0.40" and Keras 3 "450/1000 ━━━━ 12s".
_KERAS = re.compile(r"^[ \t]*(\d+)/(\d+)[ \t]+(?:\[[=>.]*\]|[━─]+)")
# timm: "Train: 3 [ 450/1000 ( 45%)]  Loss: 2.31 (2.40) ..." and "Test: [  0/390]  Loss: ...".
_TIMM = re.compile(
    r"(?<![\w-])(Train|Test|Eval)(?: \(EMA\))?[ \t]*:[ \t]*(?:(\d+)[ \t]*)?\[[ \t]*(\d+)"
    r"[ \t]*/[ \t]*(\d+)[ \t]*(?:\([ \t]*\d+%\))?\]?"
)
# fairseq "| epoch 003 | loss 2.31 | ppl 4.96 |": one "name value" per field.
_PIPE_FIELD = re.compile(rf"[ \t]*([A-Za-z_][\w.-]*)[ \t]+({_NUM})[ \t]*")

_SCALE = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}

# Hints a line gives about its progress counters (bit flags).
_HINT_PER_EPOCH = 1  # its step counter restarts every epoch (Lightning, Keras, timm ...)
_HINT_PLAIN_BAR = 2  # step/steps come from an anonymous progress bar (maybe an eval bar)


@dataclass(frozen=True)
class Sample:
    """One metric reading: `step` is where to plot it (the job's step, or epoch if no step)."""

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
def _norm(key: str) -> str:
    """'Train/Loss' -> 'train_loss', 'valAcc' -> 'val_acc', 'learning_rate' -> 'lr'."""
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()
    key = re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    return _ALIASES.get(key, key)


def _num(text: str) -> float | None:
    """A finite float, or None: NaN/inf would break JSON output and every plot downstream."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(text: str) -> float:
    """tqdm counts with unit_scale: '1.2k' -> 1200."""
    scale = _SCALE.get(text[-1])
    return float(text[:-1]) * scale if scale else float(text)


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def _put(out: dict[str, float], key: str, raw: str, prefix: str = "") -> None:
    name = _norm(key)
    if not name or name in _IGNORED:
        return
    value = _num(raw)
    if value is not None:
        out[prefix + name if name != "epoch" else name] = value


def _parse(line: str, custom: Mapping[str, re.Pattern[str]]) -> tuple[dict[str, float], int]:
    """One ANSI-free line -> (metrics, hint flags). Structural formats first, then generic."""
    out: dict[str, float] = {}
    hints = 0
    prefix = ""
    slash = "/" in line

    if "Train" in line or "Test" in line or "Eval" in line:
        m = _TIMM.search(line)
        if m:
            if m.group(1) == "Train":
                if m.group(2) is not None:
                    out["epoch"] = float(m.group(2))
                out["step"] = float(m.group(3))
                out["steps"] = float(m.group(4))
                hints |= _HINT_PER_EPOCH
            else:
                prefix = "eval_"  # timm's validation pass: keep it off the training curve
            # "Train: 3" must not also read as a metric named `train`.
            line = line[: m.start()] + " " + line[m.end() :]

    bar = None
    if "%|" in line:
        bar = _TQDM.match(line)
        if bar:
            desc = bar.group(1) or ""
            epoch = _TQDM_EPOCH.search(desc)
            if epoch:  # Lightning: "Epoch 3:  45%|...| 450/1000"
                out["epoch"] = float(epoch.group(1))
                hints |= _HINT_PER_EPOCH
            n, total = bar.group(2), bar.group(3)
            scaled = not (n[-1].isdigit() and total[-1].isdigit())  # "440M/440M": bytes
            if epoch or not (scaled or (desc and not _TRAIN_BAR.search(desc))):
                out["step"] = _count(n)
                out["steps"] = _count(total)
                if not epoch:
                    hints |= _HINT_PLAIN_BAR
            line = line[bar.end() :] + " " + desc
    elif slash:
        m = _KERAS.match(line)
        if m:
            out["step"] = float(m.group(1))
            out["steps"] = float(m.group(2))
            hints |= _HINT_PER_EPOCH

    if slash:
        m = _FAIRSEQ_INNER.search(line)
        if m:
            out["epoch"] = float(m.group(1))
            out["step"] = float(m.group(2))
            out["steps"] = float(m.group(3))
            hints |= _HINT_PER_EPOCH
            line = line[: m.start()] + " " + line[m.end() :]
        found = 0
        for m in _PROG.finditer(line):
            word = m.group(1).lower()
            if word == "epoch":
                out["epoch"] = float(m.group(2))
                out["epochs"] = float(m.group(3))
                found |= 1
            else:
                out["step"] = float(m.group(2))
                out["steps"] = float(m.group(3))
                found |= 4 if word == "batch" else 2
        if found & 4 or found == 3:  # "Epoch [3/10], Step [120/1000]": a per-epoch counter
            hints |= _HINT_PER_EPOCH
        if found:
            line = _PROG.sub(" ", line)

    fields = None
    if bar is None and line.count("|") >= 2:
        fields = line.split("|")
        # fairseq: "| epoch 001 | valid on 'valid' subset | loss 8.9 |" is a validation loss.
        if any(f.strip() == "valid" or f.strip().startswith("valid on") for f in fields):
            prefix = "val_"

    if "=" in line or ":" in line:
        for m in _KV.finditer(line):
            _put(out, m.group(1), m.group(2), prefix)

    low = line.lower()
    if any(word in low for word in _KEYWORDS) or "lr" in low or "acc" in low or "norm" in low:
        for m in _KNOWN.finditer(line):
            _put(out, m.group(1), m.group(2), prefix)

    if fields is not None:
        for f in fields:
            m = _PIPE_FIELD.fullmatch(f)
            if m:
                _put(out, m.group(1), m.group(2), prefix)

    for name, rx in custom.items():
        m = rx.search(line)
        if m:
            groups = m.groupdict()
            raw = groups.get("value") if "value" in groups else (m.group(1) if rx.groups else None)
            value = _num(raw.replace(",", "")) if raw else None
            if value is not None:
                out[name] = value  # a job's own pattern wins over the built-in reading
    return out, hints


def parse_line(
    line: str, custom: Mapping[str, str | re.Pattern[str]] | None = None
) -> dict[str, float]:
    """One line of output (ANSI colours allowed) -> the metrics it carries, names normalised.

    Stateless: no ETA, and anonymous progress bars are taken at face value (`LogParser`
    also drops eval bars that would make training progress jump).
    """
    metrics, _ = _parse(_strip_ansi(line), compile_custom(custom))
    return metrics


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
        self.step_epoch: float | None = None  # the epoch when `step` was last read
        self.summary = False  # the last epoch line also reported results (an epoch's end)
        self.value: float | None = None  # progress in [0, 1]
        self.t_last: float | None = None
        self.p_last = 0.0
        self.rate: float | None = None  # progress per second, smoothed
        self.eta_s: float | None = None

    def update(self, m: Mapping[str, float], hints: int, now: float) -> None:
        epoch, step = m.get("epoch"), m.get("step")
        if epoch is not None:
            if epoch == 0:
                self.zero_based = True
            self.epoch = epoch
            self.summary = step is None and len(m.keys() - _PROGRESS_NAMES) > 0
        if m.get("epochs"):
            self.epochs = m["epochs"]
        if m.get("steps"):
            self.steps = m["steps"]
        if hints & _HINT_PER_EPOCH and not self.per_epoch_seen:
            self.per_epoch = True
        if step is not None:
            if (
                self.step is not None
                and self.epoch is not None
                and self.step_epoch is not None
                and self.epoch > self.step_epoch
                and step != self.step
            ):
                # The epoch moved on since the last step reading: a restarted counter is
                # per-epoch, one that kept growing is global, whatever the format suggested.
                self.per_epoch = step < self.step
                self.per_epoch_seen = True
            self.step = step
            self.step_epoch = self.epoch
        self._advance(now)

    def _done_epochs(self) -> float:
        assert self.epoch is not None
        return max(self.epoch - (0 if self.zero_based else 1), 0.0)

    def x(self) -> float | None:
        """Where to plot a reading: a step that grows across epochs, else the epoch."""
        if self.step is not None:
            if self.per_epoch and self.steps and self.epoch is not None:
                return self._done_epochs() * self.steps + self.step
            return self.step
        return self.epoch

    def fraction(self) -> float | None:
        """Total progress in [0, 1]: (epochs done + step/steps) / epochs, or what is known."""
        if self.step is not None and self.steps:
            frac = min(self.step / self.steps, 1.0)
            if self.per_epoch and self.epoch is not None and self.epochs:
                return min((self._done_epochs() + frac) / self.epochs, 1.0)
            return frac
        if self.epoch is not None and self.epochs:
            if self.epoch != int(self.epoch):  # HF's fractional epoch already counts progress
                return min(self.epoch / self.epochs, 1.0)
            return min((self._done_epochs() + (1 if self.summary else 0)) / self.epochs, 1.0)
        return None

    def _advance(self, now: float) -> None:
        """Fold a new progress point into a time-weighted moving average of the rate.

        Lines arrive in bursts (pipe-pane buffering, a feed per tick), so points sharing a
        `now` just move the newest point; the rate is measured between distinct times, each
        interval weighted by its length, which makes the estimate the same whether the
        progress came in one burst or a hundred.
        """
        p = self.fraction()
        if p is None:
            return
        self.value = p
        if self.t_last is None or p < self.p_last:
            # First point, or progress went back (a new per-epoch bar when the number of
            # epochs is unknown): start measuring again, keep the rate learned so far.
            self.t_last, self.p_last = now, p
        elif now > self.t_last:
            dt = now - self.t_last
            inst = (p - self.p_last) / dt
            if self.rate is None:
                self.rate = inst
            else:
                self.rate += (1.0 - math.exp(-dt / ETA_TAU_S)) * (inst - self.rate)
            self.t_last, self.p_last = now, p
        else:
            self.p_last = p
        if p >= 1.0:
            self.eta_s = 0.0
        elif self.rate is not None and self.rate > 0:
            self.eta_s = (1.0 - p) / self.rate
        else:
            self.eta_s = None


class LogParser:
    """Incremental parser for one job's log: feed it bytes as they arrive, get samples back.

    Memory is bounded: the decoder's few bytes, one incomplete line (at most `max_partial`
    characters; a longer line is dropped whole), and the latest value per metric name.
    """

    def __init__(self, custom: dict[str, str] | None = None, max_partial: int = 65536) -> None:
        self._custom = compile_custom(custom)
        self._max_partial = max_partial
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._skipping = False  # inside a line that outgrew max_partial: drop to its end
        self._latest: dict[str, float] = {}
        self._last: dict[str, tuple[float, float | None]] = {}
        self._progress = _Progress()

    @property
    def latest(self) -> dict[str, float]:
        """Latest value of every metric seen, plus `eta_s` (seconds) once progress has a rate."""
        out = dict(self._latest)
        if self._progress.eta_s is not None:
            out["eta_s"] = self._progress.eta_s
        return out

    @property
    def progress(self) -> float | None:
        """Total progress of the job in [0, 1], when its log shows it."""
        return self._progress.value

    def feed(self, data: bytes, now: float) -> list[Sample]:
        """Parse newly arrived bytes (read at `now`); return the samples of completed lines.

        A line ends at `\\n` or `\\r` (a progress-bar redraw is a line of its own). Repeated
        readings, such as a bar redrawn with the same numbers, are reported once.
        """
        text = self._decoder.decode(data)
        if not text:
            return []
        if self._skipping:
            cut = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=-1)
            if cut < 0:
                return []
            self._skipping = False
            text = text[cut:]
        text = self._partial + text
        if "\x1b" in text:
            text = _ANSI.sub("", text)
        if "\r" in text:
            text = text.replace("\r", "\n")
        cut = text.rfind("\n")
        self._partial = text[cut + 1 :]
        if len(self._partial) > self._max_partial:
            self._partial = ""
            self._skipping = True
        if cut < 0:
            return []
        return self._lines(text[:cut], now)

    def _candidates(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of the lines that may carry a metric; the rest is never looked at."""
        found: dict[int, int] = {}
        n = len(text)

        def scan(search: object) -> None:
            pos = 0
            while True:
                m = search(text, pos)  # type: ignore[operator]
                if m is None:
                    return
                i = m.start()
                start = text.rfind("\n", 0, i) + 1
                end = text.find("\n", i)
                if end < 0:
                    end = n
                found[start] = end
                pos = end + 1

        scan(_TRIGGER.search)
        for rx in self._custom.values():
            scan(rx.search)
        low = text.lower()
        if len(low) == len(text):  # same offsets (lower() can lengthen a few characters)
            for word in _KEYWORDS:
                find = low.find
                i = find(word)
                while i >= 0:
                    start = text.rfind("\n", 0, i) + 1
                    end = text.find("\n", i)
                    if end < 0:
                        end = n
                    found[start] = end
                    i = find(word, end + 1)
        else:
            scan(re.compile("|".join(_KEYWORDS), re.IGNORECASE).search)
        return sorted(found.items())

    def _lines(self, text: str, now: float) -> list[Sample]:
        samples: list[Sample] = []
        progress = self._progress
        for start, end in self._candidates(text):
            if end - start > self._max_partial:
                continue  # as if it had arrived in pieces: the same result however it is split
            metrics, hints = _parse(text[start:end], self._custom)
            if not metrics:
                continue
            if hints & _HINT_PLAIN_BAR and not self._main_bar(metrics):
                del metrics["step"], metrics["steps"]
                if not metrics:
                    continue
            if _PROGRESS_NAMES.intersection(metrics):
                progress.update(metrics, hints, now)
            x = progress.x()
            for name, value in metrics.items():
                self._emit(samples, name, value, x)
        return samples

    def _main_bar(self, m: Mapping[str, float]) -> bool:
        """Is this anonymous bar the training bar? An eval bar (HF's has no description)
        runs while the training bar is unfinished and has fewer steps; ignore it."""
        p = self._progress
        if p.steps is None or p.step is None or p.step >= p.steps:
            return True
        return m["steps"] >= p.steps

    def _emit(self, samples: list[Sample], name: str, value: float, x: float | None) -> None:
        if name not in self._latest and len(self._latest) >= MAX_METRICS:
            return
        self._latest[name] = value
        key = (value, None if name in _STATE_NAMES else x)
        if self._last.get(name) == key:
            return
        self._last[name] = key
        samples.append(Sample(name, value, x))
