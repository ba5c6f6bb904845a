"""One line -> its metrics, for `tmuxtrain.core.metrics`: the chunk pre-filter (`_TRIGGERS`,
one literal-led regex per built-in format, over raw bytes), ANSI stripping, and `_read`,
which scans a decoded line for `key=value`, `key: value`, "name value" and `| name value |`
fields, reading each name backwards from its separator (`_key_before`); also `parse_line`,
the stateless per-line API.

Separate from `LogParser` because it reads one line with no state beyond it; the triggers
live here, next to the formats they must find, so that a new format gets both at once.
"""

from __future__ import annotations

import re
import sys

from tmuxtrain.core.metrics_counters import _counters
from tmuxtrain.core.metrics_custom import CustomPatterns, _apply_custom, compile_custom
from tmuxtrain.core.metrics_names import (
    _BOOSTING_RANK,
    _END,
    _END_OR_COLON,
    _KNOWN,
    _NUM,
    _PROGRESS_NAMES,
    _QUALIFIERS,
    _lossy,
    _name,
)
from tmuxtrain.core.metrics_reading import _Reading
from tmuxtrain.core.metrics_tables import _Table

# A line that starts with one of these words reports an evaluation ("eval epoch: 2, loss:
# 6.61", a tqdm "valid:" bar): its values get the prefix, off the training curve.
_EVAL_LINE = re.compile(
    r"(?i)(?:[^\]\n]{0,60}\])?[ \t]*(eval(?:uation)?|valid(?:ation)?|val|test(?:ing)?)(?![\w(\[])"
)
_EVAL_PREFIX = {"eval": "eval_", "evaluation": "eval_", "test": "test_", "testing": "test_"}
_PREFIXED = ("eval_", "val_", "valid_", "test_")

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

# A printed ETA for the whole run (OpenMMLab, detectron2: "eta: 1 day, 2:03:04"), taken
# where the parser cannot compute one; Keras' "ETA: 12s" and tqdm's are per epoch.
_ETA = re.compile(r"\beta:?[ \t]+(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)\b")
# XGBoost "[10]\ttrain-logloss:0.2\teval-logloss:0.3", LightGBM "[10]\ttrain's l2: 0.3": the
# boosting round.
_ROUND = re.compile(r"\[(\d+)\]\t")
# fairseq "| epoch 003 | loss 2.31 | ppl 4.96 | wps 1234 |": one "name value" per field.
_PIPE_FIELD = re.compile(rf"[ \t]*([A-Za-z_][\w.-]*)[ \t]+({_NUM})[ \t]*")

_PAIR = re.compile(r"\w=")


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


def parse_line(line: str, custom: CustomPatterns | None = None) -> dict[str, float]:
    """One line of output (ANSI colours allowed) -> the metrics it carries, names normalised.

    Stateless: no ETA, and anonymous progress bars are taken at face value (`LogParser`
    also drops eval bars that would make training progress jump).
    """
    line = _strip_ansi(line)
    out = _read(line).out
    _apply_custom(line, compile_custom(custom), out)
    return out
