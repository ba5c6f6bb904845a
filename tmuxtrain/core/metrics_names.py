"""Metric names and values, for `tmuxtrain.core.metrics`: which keys a log prints are metrics,
what they are called (`_name`: "Train/Loss" -> `train_loss`, "learning rate" -> `lr`), which
of them is the training loss (`_LOSS_RANK`), and what a value looks like (`_NUM`).

Separate because every reader uses it (lines, counters, tables, the parser) and it is the
part a new log format most often extends: a word, an alias, a bookkeeping key. It holds no
state; `_name` is memoised (shared by every parser).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

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

# Progress metrics are state, not curves: a sample only when the value changes.
_STATE_NAMES = frozenset({"epoch", "epochs", "steps"})
_PROGRESS_NAMES = frozenset({"epoch", "epochs", "step", "steps"})

# A diverged run prints `nan`: kept for losses (see `_keeps_nonfinite`), dropped elsewhere.
_NUM = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|NaN|inf|Inf)(?!\w))"
# A value ends where a token ends, so `12:30:45`, `x.py:558:`, `45%`, `12s` and
# `11,181,642` are not values.
_END = r"""(?=[\s;|)\]}'"]|,(?!\d)|$)"""
_END_OR_COLON = r"""(?=[\s;:|)\]}'"]|,(?!\d)|$)"""  # "epoch 3: ..."

# "x.py:558", "ProcessGroupNCCL.cpp:1234]": a source position, not a metric.
_SOURCE = re.compile(r"\.(?:py|pyx|c|cc|cpp|cxx|h|hpp|cu|cuh|rs|go|js|ts|java)$")


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


def _lossy(names: Iterable[str]) -> tuple[str, int] | None:
    """The best-ranked training-loss name among `names` (see _LOSS_RANK)."""
    best = None
    for name in names:
        rank = _LOSS_RANK.get(name)
        if rank is not None and (best is None or rank < best[1]):
            best = (name, rank)
    return best
