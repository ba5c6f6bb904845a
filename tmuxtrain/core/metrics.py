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
"""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, cast

__all__ = ["LogParser", "Matcher", "Sample", "compile_custom", "parse_line"]

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
        "device", "data_time", "s", "memory", "nc",
    }
)  # fmt: skip
# A metric name is a short key, not a phrase or a count of things: `num_examples = 10000`,
# `mpirank`, `size_per_device`, "Trainable params: 178", "consumed samples: 3200" are
# set-up facts. Checked after the aliases, so `num_epochs`, `total_steps` and the loss
# names below survive.
_BOOKKEEPING = re.compile(
    r"^(?:num|n|number|count|total)_|per_device|per_gpu"
    r"|(?:size|rank|(?:^|_)id|pid|port|seed|workers?|gpus?|devices?|nodes?|threads|params"
    r"|parameters|samples|examples|tokens|flops|mode|bins|features|version|allocated|reserved"
    r"|(?:^|_)time)$"
)
# The last word of a name of several words ("val loss", "learning rate", "grad norm"):
# anything else ("training mlp: 1024", "number of skipped iterations: 0") is prose.
_METRIC_WORDS = frozenset(
    {
        "loss", "acc", "accuracy", "lr", "rate", "norm", "ppl", "perplexity", "score", "f1",
        "bleu", "rouge", "error", "err", "auc", "map", "precision", "recall", "epoch",
        "step", "iter", "iteration", "mae", "mse", "rmse", "reward", "return", "kl",
        "entropy", "l1", "l2", "logloss", "top1", "top5", "acc1", "acc5", "wer", "cer",
        "iou", "miou", "dice", "psnr", "ssim", "fid", "mem",
    }
)  # fmt: skip
_COUNTER_WORDS = frozenset({"epoch", "step", "iter", "iteration"})

# Other spellings of the names the dashboard and `ls` show.
_ALIASES = {
    "learning_rate": "lr",
    "global_step": "step",
    "iter": "step",
    "iteration": "step",
    "max_epochs": "epochs",
    "num_epochs": "epochs",
    "num_train_epochs": "epochs",
    "max_steps": "steps",
    "total_steps": "steps",
}

# The training loss goes by other names; `loss` (the LOSS column, the default curve) follows
# the best-ranked one a log prints: a log with `loss` keeps it, one with only `total_loss`
# (detectron2), `lm loss` (Megatron), `avr_loss` (kohya) or `train_loss` shows that.
_LOSS_RANK = {
    "loss": 0,
    "train_loss": 1,
    "training_loss": 1,
    "train_loss_step": 1,
    "total_loss": 2,
    "lm_loss": 2,
    "avr_loss": 2,
    "avg_loss": 2,
    "loss_avg": 2,
    "train_total_loss": 2,
    "train_loss_epoch": 3,
}
_BOOSTING_RANK = 4  # XGBoost/LightGBM: the first metric on the training set

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
# A line that starts with one of these words reports an evaluation ("eval epoch: 2, loss:
# 6.61", a tqdm "valid:" bar): its values get the prefix, off the training curve.
_EVAL_LINE = re.compile(
    r"(?i)(?:[^\]\n]{0,60}\])?[ \t]*(eval(?:uation)?|valid(?:ation)?|val|test(?:ing)?)(?![\w(\[])"
)
_EVAL_PREFIX = {"eval": "eval_", "evaluation": "eval_", "test": "test_", "testing": "test_"}
_PREFIXED = ("eval_", "val_", "valid_", "test_")

# Progress metrics are state, not curves: a sample only when the value changes.
_STATE_NAMES = frozenset({"epoch", "epochs", "steps"})
_PROGRESS_NAMES = frozenset({"epoch", "epochs", "step", "steps"})

# A diverged run prints `nan`: kept for losses (see `_keeps_nonfinite`), dropped elsewhere.
_NUM = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|NaN|inf|Inf)(?!\w))"
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
_TABLE = 4  # every line, while a table may be printed (see `_Table`)
_TABLE_ONLY = 8  # ... and no trigger found it: nothing else to read there


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
    # "epoch 3", and table headers: "Epoch GPU_mem box_loss ...", "epoch train_loss ..."
    (_trigger(r"poch[ \t]++\w[^\n]*"), _WORDS),
)
_NEWLINE = re.compile(rb"\n")

# `key=1`, `key: 1`, `'key': 1` (HF dicts), `"key": 1` (JSON lines), `key=tensor(0.31, ...)`
# (a printed torch loss): the value; the name is read backwards by `_key_before`.
# (not a timing: detectron2's "Inference: 0.0512 s/iter")
_KV_VALUE = re.compile(rf"""[=:][ \t]*(?:tensor\(|['"])?({_NUM}){_END}(?![ \t]*m?s/)""")
_SPACE_VALUE = re.compile(rf""" [ \t]*({_NUM}){_END_OR_COLON}""")
# Backwards from a separator: blanks, a quote, the key, then up to two more words, so that
# "val loss: 0.5" is `val_loss` (not the training loss) and "Gradient Accumulation steps =
# 1" is not `steps`. Forwards: (?<![\w.@/-])['"]?KEY(?: WORD){0,2}['"]?[ \t]*.
# A word before the key counts only whole ("it/s train_loss" is not `s_train_loss`); a
# possessive one names a data set (LightGBM "train's l2" is `train_l2`).
_KEY_REV = re.compile(
    r"""[ \t]*['"]?([A-Za-z0-9_.@/-]+)((?: (?:s')?[A-Za-z0-9_]+(?![^ \t])){0,2})"""
)
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
      # Rich (Lightning, Ultralytics 8.4): "Epoch 0/2  ━━━━━╺━━━━ 4/40 0:00:00 • 0:00:01"
    | [ \t]+(?P<rich>[━╸╺╾╼─])
      # fastai: "Epoch 1/3 : |████------| 16.67% [4/24 00:00<00:00... 0.7007]"
    | [ \t]*\[[ \t]*%[\d.]+[ \t]*(?P<fast>\|)
      # Keras, at the start of the line: "450/1000 [=====>....] - ETA: 12s - loss: 0.40"
    | [ \t]*(?P<start>\Z)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
# Keras 2 "[===>...]", Keras 3 "━━━", `verbose=2`: "52/52 - 0s - 3ms/step - loss: ..."
_KERAS_BAR = re.compile(r"[ \t]+(?:\[[=>.]*\]|[━─]+|-[ \t]+\d+m?s[ \t]+-)")
_BAR_CHARS = " \t━╸╺╾╼─"
_RICH_EPOCH = re.compile(r"(?i)\bepoch[ \t]+\d+/\d+")  # Lightning's Rich bar: "Epoch 2/2"
_FASTAI_LOSS = re.compile(rf"\.\.\.[ \t]+({_NUM})\]")  # fastai's bar ends in its smoothed loss
# "| epoch   1 |   200/ 2983 batches | lr 20.00 | ..." (fairseq, PyTorch's examples)
_UNIT_AFTER = re.compile(r"[ \t]*(?:batches|iters|iterations|steps)\b")
# Bracketed counters, read forwards: mmdetection 2.x "Epoch [1][2600/7517]", mmengine
# "Epoch(train) [1][80/90]", "Iter(train) [  50/80000]", "Epoch(val) [1][80/90]", torchvision
# references (DeiT, MAE) "Epoch: [0]  [  78/5005]", Swin "Train: [30/300][240/2859]".
_BRACKETS = re.compile(
    r"(?i)\b(?P<kind>epoch|iter|train)(?:\((?P<mode>train|val|test)\))?:?[ \t]*"
    r"\[[ \t]*(?P<a>\d+)(?:[ \t]*/[ \t]*(?P<b>\d+))?[ \t]*\]"
    r"(?:[ \t]*\[[ \t]*(?P<c>\d+)[ \t]*/[ \t]*(?P<d>\d+)[ \t]*\])?"
)
# A printed ETA for the whole run (OpenMMLab, detectron2: "eta: 1 day, 2:03:04"), taken
# where the parser cannot compute one; Keras' "ETA: 12s" and tqdm's are per epoch.
_ETA = re.compile(r"\beta:?[ \t]+(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)\b")
# XGBoost "[10]\ttrain-logloss:0.2\teval-logloss:0.3", LightGBM "[10]\ttrain's l2: 0.3": the
# boosting round.
_ROUND = re.compile(r"\[(\d+)\]\t")
_TQDM_EPOCH = re.compile(r"(?i)\bepoch[ \t]+(\d+)\b")
# A described bar counts as training progress only if its description says so; "Map:",
# "Downloading:", "Validation DataLoader 0:" and the like would make progress jump around.
_TRAIN_BAR = re.compile(r"(?i)train|epoch|step|iter|batch")
# fairseq "| epoch 003 | loss 2.31 | ppl 4.96 | wps 1234 |": one "name value" per field.
_PIPE_FIELD = re.compile(rf"[ \t]*([A-Za-z_][\w.-]*)[ \t]+({_NUM})[ \t]*")

_PAIR = re.compile(r"\w=")

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


class Sample(NamedTuple):
    """One metric reading: `step` is where to plot it (the job's step, or epoch if no step).

    With a per-epoch step counter (Lightning, Keras, timm) `step` keeps growing across
    epochs, (epochs done) * steps + step, so that a curve does not fold back on itself.
    A named tuple, not a dataclass: the parser makes one per reading, ~4x cheaper.
    """

    name: str
    value: float
    step: float | None


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


@lru_cache(maxsize=4096)
def _name(key: str) -> str:
    """'Train/Loss' -> 'train_loss', 'valAcc' -> 'val_acc', 'mAP50-95' -> 'map50_95',
    'learning rate' -> 'lr', "train's l2" -> 'train_l2'; '' for keys that are not metrics:
    source positions, bookkeeping (`num_examples`, `mpirank`) and phrases ("training mlp")."""
    if _SOURCE.search(key):
        return ""
    words = key.replace("'s ", " ").split(" ")
    if len(words) > 1:
        last = words[-1].lower()
        if last == "value" and len(words) > 2:  # Megatron "lm loss value: 6.5"
            words.pop()
            last = words[-1].lower()
        if len(words) == 2 and words[0].lower() in _QUALIFIERS and last in _COUNTER_WORDS:
            words = words[1:]  # Flax "train epoch: 3" / "eval epoch: 3": the epoch
        elif last not in _METRIC_WORDS and not last.endswith("loss"):
            return ""
    key = "_".join(words)
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", key).lower()  # valAcc; not mAP50
    key = re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    key = _ALIASES.get(key, key)
    if key in _IGNORED:
        return ""
    if key in _LOSS_RANK or key in _STATE_NAMES or key == "step":
        return key
    return "" if _BOOKKEEPING.search(key) else key


def _keeps_nonfinite(name: str) -> bool:
    """A loss of `nan` or `inf` is news (a diverged run), kept; elsewhere it is noise."""
    return "loss" in name


def _num(text: str) -> float | None:
    """The float of a value text, or None. May be NaN/inf: see `_keeps_nonfinite`."""
    try:
        return float(text)
    except ValueError:
        return None


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


def _lossy(names: Iterable[str]) -> tuple[str, int] | None:
    """The best-ranked training-loss name among `names` (see _LOSS_RANK)."""
    best = None
    for name in names:
        rank = _LOSS_RANK.get(name)
        if rank is not None and (best is None or rank < best[1]):
            best = (name, rank)
    return best


def _counters(line: str, rev: str, r: _Reading) -> tuple[str, int]:
    """Read the `N/M` counters of a line: (name prefix, end of the timm head)."""
    n = len(line)
    prefix = ""
    head = -1  # "Train: 3 [ 450/1000" must not also read as a metric named `train`
    words = 0
    done = -1  # slashes before this index were read by `_BRACKETS`
    if "[" in line:
        for bm in _BRACKETS.finditer(line):
            kind, mode = bm.group("kind").lower(), bm.group("mode")
            if mode is not None and mode.lower() != "train":
                done = head = bm.end()  # an evaluation pass: not training progress
                r.evaluation = True
                break
            if bm.group("c") is not None and kind != "iter":
                if bm.group("b") is not None:  # Swin: "Train: [30/300][240/2859]"
                    if kind != "train":
                        continue
                    r.put("epochs", line, *bm.span("b"))
                    r.hints |= _HINT_ZERO_BASED
                elif kind != "epoch":
                    continue
                r.put("epoch", line, *bm.span("a"))
                r.put("step", line, *bm.span("c"))
                r.put("steps", line, *bm.span("d"))
                r.hints |= _HINT_PER_EPOCH
            elif kind == "iter" and bm.group("b") is not None and bm.group("c") is None:
                r.put("step", line, *bm.span("a"))
                r.put("steps", line, *bm.span("b"))
            else:
                continue
            done = head = bm.end()
            break
    for m in _SLASH.finditer(line):
        if m.start() < done:
            continue
        num, total = m.span(1), m.span(1)
        if _UNIT_AFTER.match(line, m.end()):  # "200/ 2983 batches"
            b = _SLASH_REV.match(rev, n - m.start())
            if b is not None:
                r.put("step", line, n - b.end("n"), n - b.start("n"))
                r.put("steps", line, *total)
                r.hints |= _HINT_PER_EPOCH
            continue
        b = _SLASH_REV.match(rev, n - m.start())
        if b is None:
            continue
        num = (n - b.end("n"), n - b.start("n"))
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
        elif b.group("bar") is not None or b.group("rich") is not None:
            if b.group("bar") is not None:
                pct = line.find("%|")
                if pct < 0 or pct > m.start():
                    continue
                desc = line[:pct].rstrip("0123456789 \t")
            else:
                desc = line[: n - b.end("rich")].rstrip(_BAR_CHARS)
                if desc.endswith("%"):  # Ultralytics 8.4: "...: 100% ━━━━ 2/2"
                    desc = desc.rstrip("0123456789.%")
            if not _bar_desc(line, desc, r):
                continue
            r.put("step", line, *num)
            r.put("steps", line, *total)
        elif b.group("fast") is not None:
            if not _bar_desc(line, line[: line.find("|")], r):
                continue
            r.put("step", line, *num)
            r.put("steps", line, *total)
            loss = _FASTAI_LOSS.search(line, m.end())
            if loss:
                r.put("loss", line, *loss.span(1))
        elif _KERAS_BAR.match(line, m.end()):
            r.put("step", line, *num)
            r.put("steps", line, *total)
            r.hints |= _HINT_PER_EPOCH
    if words & 4 or words & 3 == 3:  # "Epoch [3/10], Step [120/1000]": a per-epoch counter
        r.hints |= _HINT_PER_EPOCH
    return prefix, head


def _bar_desc(line: str, desc: str, r: _Reading) -> bool:
    """Is a progress bar with this description the training bar? Notes what it says."""
    r.hints |= _HINT_PLAIN_BAR  # an eval bar may look the same: see `LogParser._main_bar`
    if _RESULTS_BAR.match(desc):
        r.hints |= _HINT_RESULTS
        return False
    epoch = _TQDM_EPOCH.search(desc)
    if epoch:  # Lightning: "Epoch 3:  45%|...| 450/1000"
        r.put("epoch", line, *epoch.span(1))
        r.hints |= _HINT_PER_EPOCH
        if _RICH_EPOCH.search(desc) and "━" in line:
            r.hints |= _HINT_LAST_INDEX
        return True
    return not desc.strip(" \t:") or _TRAIN_BAR.search(desc) is not None


# Tables whose header row names the values of the rows under it: Ultralytics YOLO (v5, v7,
# v8) "Epoch GPU_mem box_loss cls_loss dfl_loss Instances Size" and "Class Images Instances
# Box(P R mAP50 mAP50-95)", fastai "epoch train_loss valid_loss accuracy time", and the
# results table of Lightning's `trainer.validate()` / `test()` ("Validate metric  DataLoader
# 0", then "name value" rows, in box characters or plain).
_HEAD_START = re.compile(
    r"[ \t│┃|]*(?:(?P<col>Epoch|epoch|Class)[ \t]+[A-Za-z_]"
    r"|(?P<kv>Validate|Test|Predict|Validation|Testing) metric\b)"
)
# Lightning prints its results table after a "Validation"/"Testing" bar: such a bar makes
# every line a candidate until the table ends (a scan of every chunk for the table's header
# would cost 2-3% of the parser's time on every job).
_RESULTS_BAR = re.compile(r"[ \t]*(?:Validation|Testing|Predicting)\b")
_HEAD_TOKEN = re.compile(r"[A-Za-z][\w()@.:/…-]*")
_COLON_SP = re.compile(r":(?:[ \t]|$)")  # where a YOLO row's progress bar begins
_TABLE_SKIP = frozenset(
    {"class", "images", "instances", "labels", "size", "img_size", "gpu_mem", "time", "targets"}
)
_TABLE_RENAME = {"p": "precision", "r": "recall"}
_YOLO7_LOSSES = {"box": "box_loss", "obj": "obj_loss", "cls": "cls_loss", "total": "loss"}
_BORDER = frozenset("─━-═┏┓┗┛┡┩└┘┳┻╇┴┬┼ \t")
_BOX = str.maketrans("│┃", "  ")
_BAR_COUNT = re.compile(r"(\d+)/(\d+)")


class _Table:
    """A table being read: how its header named the columns (`kind`: "train" for YOLO's
    training rows, "val" for YOLO's validation rows, "epochs" for fastai, "kv" for
    Lightning's results), and whether rows were read yet."""

    __slots__ = ("hints", "kind", "names", "rows")

    def __init__(self, kind: str, names: tuple[str, ...]) -> None:
        self.kind = kind
        self.names = names
        self.rows = 0
        # YOLOv5/v7 count epochs from 0 to the last index ("0/99"); v8 (with `dfl_loss`)
        # from 1 to the count ("1/100")
        self.hints = _HINT_LAST_INDEX if kind == "train" and "dfl_loss" not in names else 0

    @staticmethod
    def parse(line: str) -> _Table | None:
        """The table this line is the header of, or None (fast for every other line)."""
        m = _HEAD_START.match(line)
        if m is None:
            return None
        if m.group("kv"):
            return _Table("kv", ())
        cut = _COLON_SP.search(line)
        tokens = (line[: cut.start()] if cut else line).split()
        if len(tokens) < 3 or not all(_HEAD_TOKEN.fullmatch(t) for t in tokens):
            return None
        first = tokens[0].lower()
        if first == "class":
            kind = "val"
        elif any(t.lower() == "gpu_mem" for t in tokens):
            kind = "train"
        else:
            kind = "epochs"
        names: list[str] = []
        prefix = ""
        groups = 0
        for t in tokens:
            if "(" in t:  # "Box(P R mAP50 mAP50-95)", then "Mask(P ...)" for segmentation
                group, t = t.split("(", 1)
                groups += 1
                prefix = "" if groups == 1 else group.lower() + "_"
            closing = t.endswith(")")
            t = t.rstrip(")")
            low = t.lower()
            if t.endswith("…"):  # cut to the terminal's width
                name = ""
            elif kind == "train" and low in _YOLO7_LOSSES:
                name = _YOLO7_LOSSES[low]
            else:
                name = _TABLE_RENAME.get(low) or _name(t)
            if name in _TABLE_SKIP:
                name = ""
            names.append(prefix + name if name else "")
            if closing:
                prefix = ""
        if not any(n.endswith("loss") or n in ("precision", "accuracy") for n in names):
            return None  # a sentence that happens to start with "Epoch"
        return _Table(kind, tuple(names))

    def row(self, line: str) -> tuple[dict[str, float], int] | None:
        """The values of one row, and hints; None if the line is no row of this table."""
        out: dict[str, float] = {}
        if self.kind == "kv":
            tokens = line.translate(_BOX).split()
            if len(tokens) >= 2 and tokens[0][0].isalpha():
                value = _num(tokens[1])
                name = _name(tokens[0])
                if value is not None and name:
                    out[name] = value
                    self.rows += 1
                    return out, 0
            return None
        text, bar = line, ""
        if self.kind != "epochs":
            cut = _COLON_SP.search(line)
            if cut:
                text, bar = line[: cut.start()], line[cut.end() :]
        tokens = text.split()
        if len(tokens) != len(self.names):
            return None
        hints = self.hints
        for name, token in zip(self.names, tokens, strict=True):
            if not name:
                continue
            if name == "epoch":
                a, _, b = token.partition("/")
                epoch, epochs = _num(a), _num(b) if b else None
                if epoch is None or epoch != int(epoch):
                    return None
                out["epoch"] = epoch + 1 if self.kind == "epochs" else epoch  # fastai: from 0
                if epochs:
                    out["epochs"] = epochs
            else:
                value = _num(token)
                if value is not None and (value - value == 0.0 or _keeps_nonfinite(name)):
                    out[name] = value
        if len(out) <= ("epoch" in out) + ("epochs" in out):
            return None
        if self.kind == "train":
            count = _BAR_COUNT.search(bar)
            if count:
                out["step"] = float(count.group(1))
                out["steps"] = float(count.group(2))
                hints |= _HINT_PER_EPOCH
        if "loss" not in out and self.kind == "train":
            # YOLO v5/v8 print the parts; their sum is the training loss they minimise
            parts = [v for k, v in out.items() if k.endswith("_loss")]
            if parts:
                out["loss"] = sum(parts)
        self.rows += 1
        return out, hints

    def ends_at(self, line: str) -> bool:
        """A results table (kv) ends at its bottom border, once it has rows."""
        return self.kind == "kv" and self.rows > 0 and bool(line.strip()) and set(line) <= _BORDER


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
    if not prefix:
        ev = _EVAL_LINE.match(line)
        if ev:
            prefix = _EVAL_PREFIX.get(ev.group(1).lower(), "val_")
            r.out.pop("step", None)  # an evaluation bar's counter is not training progress
            r.out.pop("steps", None)

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
                if prefix and name not in _PROGRESS_NAMES and not name.startswith(_PREFIXED):
                    name = prefix + name
                r.put(name, line, *m.span(1))
        pairs = line.count("=")
        if pairs >= 12:
            pairs = len(_PAIR.findall(line))  # not a Keras bar's "[=====>...]"
        if pairs >= 12 and len(r.out) * 3 < pairs * 2:
            # A configuration dump ("engine/trainer: agnostic_nms=False, amp=False, angle=1.0,
            # ..."), not results: settings are mostly flags and words.
            r.out.clear()
            r.spans.clear()

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
                if prefix and name not in _PROGRESS_NAMES and not name.startswith(_PREFIXED):
                    name = prefix + name
                r.put(name, line, *m.span(1))
        at = 0
        for f in fields or ():
            field = _PIPE_FIELD.fullmatch(f)
            if field:
                name = _name(field.group(1))
                if name:
                    r.key(line, at, at + field.end(1))
                    if prefix and name not in _PROGRESS_NAMES:
                        name = prefix + name
                    r.put(name, line, at + field.start(2), at + field.end(2))
            at += len(f) + 1

    r.header = _Table.parse(line)
    if line.startswith("["):
        rnd = _ROUND.match(line)
        if rnd and r.out:  # a boosting round: the first training-set metric is the loss
            r.put("step", line, *rnd.span(1))
            for name in r.out:
                if name.startswith(("train_", "training_")):
                    r.lossy = (name, _BOOSTING_RANK)
                    break
    if prefix:
        r.evaluation = True
    if "eta" in line and not r.evaluation:
        eta = _ETA.search(line)
        if eta:
            days, h, mi, sec = eta.groups()
            r.eta = int(days or 0) * 86400.0 + int(h) * 3600.0 + int(mi) * 60.0 + int(sec)
    if r.lossy is None and r.out:
        r.lossy = _lossy(r.out)
    return r


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


def parse_line(line: str, custom: CustomPatterns | None = None) -> dict[str, float]:
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
        self.last_index = False  # `epochs` is the last epoch's index, not the count
        self.printed_eta: float | None = None  # the job's own whole-run ETA, if it prints one
        self.finished = False  # the job ended: no ETA any more

    def update(self, m: Mapping[str, float], hints: int, now: float) -> None:
        epoch, step = m.get("epoch"), m.get("step")
        if hints & _HINT_EPOCH_BASE:
            self.zero_based = True
            if hints & _HINT_LAST_INDEX:
                self.last_index = True
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
        epochs = self.epochs
        if epochs is not None and self.last_index:
            epochs += 1
        if self.step is not None and self.steps:
            frac = self.step / self.steps
            frac = 1.0 if frac > 1.0 else frac  # min(frac, 1.0), as below
            if self.per_epoch and self.epoch is not None and epochs:
                frac = (self._done_epochs() + frac) / epochs
                return 1.0 if frac > 1.0 else frac
            return frac
        if self.epoch is not None and epochs:
            if self.epoch != int(self.epoch):  # HF's fractional epoch already counts progress
                return min(self.epoch / epochs, 1.0)
            return min((self._done_epochs() + (1 if self.summary else 0)) / epochs, 1.0)
        return None

    def whole(self) -> bool:
        """Does `value` measure the whole run (not only the current epoch)?"""
        return self.value is not None and (not self.per_epoch or bool(self.epochs))

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
        """Seconds left at the smoothed rate, as of the last progress reading; the job's
        own printed ETA where the parser cannot tell the whole run's progress; None once
        the job ended."""
        if self.finished:
            return None
        if self.printed_eta is not None and not self.whole():
            return self.printed_eta
        p = self.value
        if p is None or self.rate is None:
            return None
        if p >= 1.0:
            return 0.0
        return (1.0 - p) / self.rate if self.rate > 0 else None


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
