"""Learned VRAM for sweeps: what a job that declared no `vram` asks for, once a sibling ran.

A sweep is the jobs of one job file with one command shape (one `matrix`, say; the key
is `JobSpec.sweep`). Without a `vram` each would take whole GPUs, one each, though most
sweeps use a fraction of a GPU. Once siblings with the same GPU count have succeeded,
the largest peak any of them was measured at (per GPU, from NVML's per-process memory
credited to the job's process tree) plus a margin becomes the ask of the sweep's pending
jobs, so they share GPUs. Only succeeded siblings count: one that crashed at start-up
used too little, one that ran out of memory tells nothing good.

Never learned: a job that declares `vram` (its own word wins), one with `vram:
exclusive`, a CPU-only job, an ad-hoc command (no sweep), and one whose ask was raised
after running out of memory. A learned ask that would not fit the largest GPU stays
exclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from tmuxtrain.core.model import Job

MARGIN_FRACTION = 0.10  # the peak plus 10 %...
MARGIN_MIN_MIB = 512  # ...or plus 512 MiB, whichever is more...
ROUND_MIB = 256  # ...rounded up to a multiple of 256 MiB

SweepKey = tuple[str, int]  # (sweep, GPUs per job)


def learnable(job: Job) -> bool:
    """Whether `job` may ask for a learned size instead of whole GPUs."""
    s = job.spec
    return (
        s.sweep is not None
        and s.vram_mib is None
        and not s.vram_exclusive
        and s.gpus > 0
        and job.vram_source in ("declared", "learned")
    )


def sweep_of(job: Job) -> SweepKey:
    assert job.spec.sweep is not None
    return (job.spec.sweep, job.spec.gpus)


def with_margin(peak_mib: int) -> int:
    """A measured peak plus the margin: max(10 %, 512 MiB), rounded up to 256 MiB."""
    raw = max(peak_mib * (1 + MARGIN_FRACTION), peak_mib + MARGIN_MIN_MIB)
    return math.ceil(raw / ROUND_MIB) * ROUND_MIB


def learned_asks(
    pending: Sequence[Job], peaks: Mapping[SweepKey, int], largest_mib: int
) -> dict[int, int | None]:
    """The asks that change: job id -> the learned MiB per GPU, or None to go back to its
    declaration (a job edited to declare `vram`, or whose sweep's learned size no longer
    fits). `peaks`: each sweep's largest measured peak over its succeeded jobs;
    `largest_mib`: the largest GPU's memory after headroom."""
    targets: dict[SweepKey, int | None] = {}
    for key, peak in peaks.items():
        ask = with_margin(peak) if peak > 0 else None
        targets[key] = ask if ask is not None and ask <= largest_mib else None
    out: dict[int, int | None] = {}
    for job in pending:  # the whole queue, before every decision: keep it lean
        learned = job.vram_source == "learned"
        s = job.spec
        target = targets.get((s.sweep, s.gpus)) if s.sweep is not None and learnable(job) else None
        if target != (job.vram_request_mib if learned else None) or (target is None and learned):
            out[job.id] = target
    return out
