"""A retry after CUDA ran out of memory asks for more memory than the attempt that ran out.

Retrying with the same request would run out again, or, on a GPU shared with other jobs,
wait for the same unlucky moment. So the next attempt asks for what the last one had, its
measured peak or its request, whichever is larger, times `FACTOR`; where that is more
than a GPU can give after the headroom, it asks for whole GPUs (no other tmuxtrain job on
them). A job that already had whole GPUs is retried as it was: there is no more to give.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tmuxtrain.core.model import GpuInfo, Job
from tmuxtrain.core.units import format_mib

FACTOR = 1.5
ROUND_MIB = 256  # asks are rounded up to this, so they read as sizes a person would pick
OOM_REASON = "CUDA out of memory"  # what core.failure.explain calls it


@dataclass(frozen=True)
class Raise:
    """What the next attempt asks for per GPU (None: whole GPUs), and the words for it."""

    vram_mib: int | None
    words: str


def raise_vram(
    asked_mib: int | None, peak_mib: int | None, largest_mib: int | None, headroom_mib: int
) -> Raise:
    """The next attempt's request after an attempt that asked `asked_mib` per GPU (None:
    whole GPUs) and was seen using at most `peak_mib` ran out of memory; `largest_mib` is
    the largest GPU's memory (None: unknown, then no cap)."""
    if asked_mib is None:
        return Raise(None, "it had whole GPUs already")
    had = max(asked_mib, peak_mib or 0)
    want = math.ceil(had * FACTOR / ROUND_MIB) * ROUND_MIB
    seen = f", peak {format_mib(peak_mib)}" if peak_mib else ""
    had_words = f"had {format_mib(asked_mib)}{seen}"
    if largest_mib is not None and want > largest_mib - headroom_mib:
        return Raise(None, f"asks for whole GPUs ({had_words})")
    return Raise(want, f"asks for {format_mib(want)} per GPU ({had_words})")


def largest_gpu(gpus: Iterable[GpuInfo]) -> int | None:
    """The memory of the largest GPU of a snapshot (None when none is known)."""
    return max((g.memory_total_mib for g in gpus if g.memory_total_mib), default=None)


def note(job: Job) -> str:
    """What a pending job's reason adds when its request was raised ('' when it was not)."""
    if job.vram_source != "raised":
        return ""
    asks = "whole GPUs" if job.vram_mib is None else f"{format_mib(job.vram_mib)} per GPU"
    return f"; asks for {asks} after CUDA ran out of memory"
