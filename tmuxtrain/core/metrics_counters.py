"""Progress counters in a line, for `tmuxtrain.core.metrics`: `N/M` read backwards from the
`/` by what precedes N ("epoch 3/10", "step 120/1000", tqdm, Rich and Keras bars, fairseq,
timm, fastai), bracketed counters (OpenMMLab, torchvision references, Swin) and whether a
progress bar's description makes it the training bar.

Separate because it is the largest single reader and the one that sets the hints
`_Progress` relies on (a per-epoch counter, a 0-based epoch, an eval bar); `_read` calls it
for lines with a `/`.
"""

from __future__ import annotations

import re

from tmuxtrain.core.metrics_names import _NUM
from tmuxtrain.core.metrics_reading import (
    _HINT_LAST_INDEX,
    _HINT_PER_EPOCH,
    _HINT_PLAIN_BAR,
    _HINT_RESULTS,
    _HINT_ZERO_BASED,
    _Reading,
)
from tmuxtrain.core.metrics_tables import _RESULTS_BAR

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
_TQDM_EPOCH = re.compile(r"(?i)\bepoch[ \t]+(\d+)\b")
# A described bar counts as training progress only if its description says so; "Map:",
# "Downloading:", "Validation DataLoader 0:" and the like would make progress jump around.
_TRAIN_BAR = re.compile(r"(?i)train|epoch|step|iter|batch")


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
