"""Backfill by time limits, as Slurm's backfill scheduler does it. Pure.

The job at the head of the queue that cannot start gets a reservation: the GPUs it can
have earliest and the time they free, known from the running jobs' time limits (`timeout`:
a job ends by `started_at + timeout` at the latest; one without a limit may run for ever).
A later job may start on a reserved GPU only when its own time limit ends by that time,
so it is gone before the head can start; on the other GPUs it starts freely. A job
without a `timeout`, or a reservation whose time is unknown, never touches reserved GPUs.

A time limit is enforced by the scheduler (Ctrl-C at the limit, then SIGTERM and SIGKILL
within `cancel_grace`), so a backfilled job may outlive its limit by that grace at most.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from tmuxtrain.core.allocate import GpuLoad
from tmuxtrain.core.model import GpuInfo, Holding, Job, Request


def ends_by(job: Job, now: float) -> float:
    """When a running job ends at the latest, by its time limit (epoch seconds; inf without
    one). A job past its limit is being stopped: now."""
    limit = job.spec.timeout_s
    if limit is None or job.started_at is None:
        return math.inf
    return max(now, job.started_at + limit)


def fits_before(job: Job, start: float | None, now: float) -> bool:
    """Whether `job`, started now, is over by its time limit before a reservation at
    `start` (None: unknown, so never)."""
    limit = job.spec.timeout_s
    return start is not None and limit is not None and now + limit <= start


def _free_at(
    load: GpuLoad,
    info: GpuInfo | None,
    on: Sequence[Holding],
    ends: Mapping[int, float],
    request: Request,
    headroom_mib: int,
    max_jobs_per_gpu: int,
    now: float,
) -> float:
    """The earliest time this GPU can take one GPU of `request` once the jobs on it end by
    their limits; inf when that is not known (a job without a limit, memory unknown or held
    by processes outside tmuxtrain that may never free it)."""
    if load.external_mib is None or load.total_mib is None:
        return math.inf
    if request.vram_mib is None:  # whole GPU: every job on it gone, outside use within headroom
        if load.external_mib > headroom_mib:
            return math.inf
        return max((ends.get(h.job_id, math.inf) for h in on), default=now)
    used = info.job_used_mib if info is not None else {}
    room = load.total_mib - load.external_mib - headroom_mib
    if room < request.vram_mib:
        return math.inf
    left = sorted(on, key=lambda h: ends.get(h.job_id, math.inf))
    t = now
    while left:
        exclusive = any(h.vram_mib is None for h in left)
        held = sum(max(h.vram_mib, used.get(h.job_id, 0)) for h in left if h.vram_mib is not None)
        if not exclusive and len(left) < max_jobs_per_gpu and room - held >= request.vram_mib:
            return t
        t = ends.get(left.pop(0).job_id, math.inf)
        if t == math.inf:
            return t
    return t


def shadow(
    candidates: Sequence[int],
    loads: Sequence[GpuLoad],
    infos: Sequence[GpuInfo],
    holdings: Sequence[Holding],
    ends: Mapping[int, float],
    request: Request,
    headroom_mib: int,
    max_jobs_per_gpu: int,
    now: float,
) -> tuple[frozenset[int], float | None]:
    """The head's reservation: of `candidates` (GPU indices, best first when times tie),
    the `request.gpus` that free earliest by time limits, and when the last of them frees
    (None when not known). No candidates: nothing reserved."""
    if not candidates or len(candidates) < request.gpus:
        return frozenset(), None
    by_index = {x.index: x for x in loads}
    info = {g.index: g for g in infos}
    on: dict[int, list[Holding]] = {i: [] for i in candidates}
    for h in holdings:
        for i in h.gpus:
            if i in on:
                on[i].append(h)
    times = {
        i: _free_at(
            by_index[i], info.get(i), on[i], ends, request, headroom_mib, max_jobs_per_gpu, now
        )
        for i in candidates
    }
    chosen = sorted(candidates, key=times.__getitem__)[: request.gpus]  # stable: ties keep rank
    start = max(times[i] for i in chosen)
    return frozenset(chosen), (None if start == math.inf else start)
