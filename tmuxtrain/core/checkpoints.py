"""Checkpoint-triggered evaluation, as pure functions: when is a new checkpoint file complete,
what evaluation job does it get, and which checkpoint scores best."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tmuxtrain.core.model import JobSpec

SETTLE_S = 1.0  # a file unchanged for this long has stopped growing
EVAL_PRIORITY_BOOST = 1  # ahead of training at the same priority: evaluation never lags far
LOWER_IS_BETTER = re.compile(r"loss|err|ppl|perplexity|wer|cer|mse|mae|rmse", re.I)


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


def eval_spec(parent: JobSpec, path: str) -> JobSpec:
    """The evaluation job for one checkpoint: `{checkpoint}` becomes the quoted path."""
    ck = parent.checkpoints
    assert ck is not None
    rel = posixpath.relpath(path, parent.cwd) if path.startswith(parent.cwd + "/") else path
    command = ck.eval.replace("{checkpoint}", shlex.quote(path))
    return JobSpec(
        name=f"{parent.name}-eval-{posixpath.basename(path)}",
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
