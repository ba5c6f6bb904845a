"""Checkpoint-triggered evaluation, as pure functions: when is a new checkpoint (a file or a
directory) complete, is a rewritten one new, what evaluation job does it get, and which
checkpoint scores best."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tmuxtrain.core.model import JobSpec

SETTLE_S = 1.0  # a file unchanged for this long has stopped growing
EVAL_PRIORITY_BOOST = 1  # ahead of training at the same priority: evaluation never lags far
LOWER_IS_BETTER = re.compile(r"loss|err|ppl|perplexity|wer|cer|mse|mae|rmse", re.I)
# Hugging Face's Trainer writes checkpoint-STEP/ file by file, trainer_state.json last: a
# pause between two files (gathering optimizer state) is not the end of the checkpoint.
HF_DIR = re.compile(r"checkpoint-\d+")
HF_LAST_FILE = "trainer_state.json"
EVALS_SUFFIX = ".evals"  # `after: [train.evals]`: train's checkpoint evaluations too


@dataclass(frozen=True)
class Seen:
    """A candidate file: its (size, mtime) and since when it has looked like that."""

    size: int
    mtime: float
    since: float


def settle(
    seen: Mapping[str, Seen],
    observed: Mapping[str, tuple[int, float]],
    now: float,
    settle_s: float = SETTLE_S,
) -> tuple[dict[str, Seen], list[str]]:
    """Track candidate files between scans; return the new state and the files that are
    complete (unchanged in size and mtime for `settle_s`). Vanished files are forgotten."""
    state: dict[str, Seen] = {}
    ready = []
    for path, (size, mtime) in observed.items():
        old = seen.get(path)
        if old is None or (old.size, old.mtime) != (size, mtime):
            state[path] = Seen(size, mtime, now)
            continue
        if now - old.since >= settle_s:
            ready.append(path)
        state[path] = old
    return state, sorted(ready)


def dir_complete(name: str, files: Collection[str]) -> bool:
    """Whether a checkpoint directory named `name`, holding `files` (its top-level file
    names), may be complete once it stops changing: a Hugging Face `checkpoint-STEP` only
    once it has `trainer_state.json` (written last), any other one once it is not empty."""
    if HF_DIR.fullmatch(name):
        return HF_LAST_FILE in files
    return bool(files)


def is_rewrite(recorded: tuple[int, float] | None, current: tuple[int, float]) -> bool:
    """Whether a checkpoint file evaluated as `recorded` (size, mtime) is a new checkpoint
    now: rewritten in place (Lightning's `last.ckpt` every epoch). Unknown: no."""
    return recorded is not None and recorded != current


def eval_name(parent: str, path: str, version: int = 1) -> str:
    """`NAME-eval-checkpoint-500`; a rewritten file's later versions `NAME-eval-last.ckpt@2`."""
    base = posixpath.basename(path.rstrip("/"))
    return f"{parent}-eval-{base}" + (f"@{version}" if version > 1 else "")


def evals_ref(ref: str) -> str | None:
    """The job an `after` entry waits for the evaluations of (`train.evals` -> `train`),
    or None for a plain dependency."""
    if ref.endswith(EVALS_SUFFIX) and len(ref) > len(EVALS_SUFFIX):
        return ref[: -len(EVALS_SUFFIX)]
    return None


def eval_spec(parent: JobSpec, path: str, version: int = 1) -> JobSpec:
    """The evaluation job for one checkpoint: `{checkpoint}` becomes the quoted path."""
    ck = parent.checkpoints
    assert ck is not None
    path = path.rstrip("/") or path
    rel = posixpath.relpath(path, parent.cwd) if path.startswith(parent.cwd + "/") else path
    command = ck.eval.replace("{checkpoint}", shlex.quote(path))
    return JobSpec(
        name=eval_name(parent.name, path, version),
        command=command,
        cwd=parent.cwd,
        env=dict(parent.env),
        inherit_env=parent.inherit_env,
        gpus=ck.gpus,
        vram_mib=ck.vram_mib,
        priority=parent.priority + EVAL_PRIORITY_BOOST,
        project=parent.project,
        metrics=dict(parent.metrics),
        hooks={},
        source=f"checkpoint {rel}",
        runner=parent.runner,  # evaluated where the training ran (Slurm too)
    )


def lower_is_better(metric: str) -> bool:
    if metric.startswith(("min:", "max:")):
        return metric.startswith("min:")
    return bool(LOWER_IS_BETTER.search(metric))


def best_index(checkpoints: Sequence[Mapping[str, Any]], metric: str) -> int | None:
    """Which checkpoint scored best on `metric` (`min:`/`max:` prefix, else losses and
    errors are minimised and everything else maximised); None until one has a score."""
    name = metric.split(":", 1)[1] if metric.startswith(("min:", "max:")) else metric
    scored = [
        (float(c["metrics"][name]), i)
        for i, c in enumerate(checkpoints)
        if isinstance(c.get("metrics"), Mapping)
        and isinstance(c["metrics"].get(name), (int, float))
    ]
    if not scored:
        return None
    pick = min if lower_is_better(metric) else max
    return pick(scored)[1]
