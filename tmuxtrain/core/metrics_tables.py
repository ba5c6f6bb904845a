"""Tables, for `tmuxtrain.core.metrics`: a header row that names the columns of the rows
under it (Ultralytics YOLO, fastai, the results table of Lightning's `validate()`/`test()`).

Separate because a table is read across lines: its header is state that `LogParser` keeps
(`_Table`), and while one may be printed every line is a candidate; each row alone says
nothing a line reader could read.
"""

from __future__ import annotations

import re

from tmuxtrain.core.metrics_names import _keeps_nonfinite, _name, _num
from tmuxtrain.core.metrics_reading import _HINT_LAST_INDEX, _HINT_PER_EPOCH

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
