"""Preemption, opt-in: which running jobs to stop so a long-waiting, more important one can
start. Pure: the launcher asks after each decision, the reaper carries the stop out (Ctrl-C,
then SIGTERM after half the grace so the job can checkpoint, as a cancel does).

Only jobs that said `preemptible: true` are ever stopped. A stopped job goes back to pending
without using up a retry, and its next attempt runs `resume:` where it gave one, with
`TMUXTRAIN_RESTARTS` counting the restarts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tmuxtrain.core.allocate import allocate
from tmuxtrain.core.model import PREEMPTED, Config, GpuInfo, Holding, Job, JobState, Request
from tmuxtrain.core.schedule import Limits, policy_order
from tmuxtrain.core.units import format_duration

CONSIDERED = 16  # waiting jobs looked at per decision: a long queue stays cheap


@dataclass(frozen=True)
class Preemption:
    """Stop running job `job_id` so that pending job `for_job` can start."""

    job_id: int
    for_job: int
    reason: str


def command_of(job: Job) -> str:
    """The command an attempt runs: `resume` after a preemption where the job gave one."""
    return job.spec.resume if job.restarts and job.spec.resume else job.spec.command


def waiting_since(job: Job) -> float:
    """When a pending job began to wait: its submission, or the end of its last attempt's
    backoff (a preempted job's wait starts when it was stopped)."""
    return max(job.submitted_at, job.not_before or 0.0)


def next_due(jobs: Sequence[Job], config: Config, now: float) -> float:
    """The next time after `now` a pending job will have waited `preempt_after` (inf: none),
    when the scheduler must decide again though nothing else changed."""
    after = config.preempt_after_s
    if after is None:
        return float("inf")
    times = (waiting_since(j) + after for j in jobs if j.state is JobState.PENDING)
    return min((t for t in times if t > now), default=float("inf"))


def choose(
    pending: Sequence[Job],
    running: Sequence[Job],
    gpus: Sequence[GpuInfo],
    config: Config,
    now: float,
    order: Sequence[Job],
    launched: Mapping[int, tuple[int, ...]],
    dep_states: Mapping[int, tuple[JobState, str]],
) -> list[Preemption]:
    """The running jobs to stop now, all for one pending job, or [].

    Preconditions: `order` is the queue policy's order of `pending`; `launched` the jobs
    the decision just started (id -> GPUs). Nothing is stopped while an earlier stop is
    still under way, or when `preempt_after` is not set. The pending job is the first in
    `order` that is not held, waits for no dependency, retry backoff or limit, did not
    start, needs GPUs and has waited `preempt_after` (of the first `CONSIDERED` such
    jobs, the first that preemption can start). Its victims are running
    `preemptible` jobs of lower priority that the policy would start after it; the fewest
    of them, lowest priority and latest started first (the least work lost), whose GPUs
    and memory let it start. None when no such set exists.
    """
    after = config.preempt_after_s
    if after is None or any(stopping(j) for j in running):
        return []
    candidates = [j for j in running if j.spec.preemptible and j.gpus and _running_free(j)]
    if not candidates:
        return []
    started = [j for j in pending if j.id in launched] if launched else []
    starting = [Holding(j.id, launched[j.id], j.vram_mib) for j in started]
    considered = 0
    tried: set[tuple[object, ...]] = set()  # shapes that no stop can start
    for job in order:
        if not _eligible(job, now, after, launched, dep_states):
            continue
        considered += 1
        if considered > CONSIDERED:
            break
        victims = [v for v in candidates if _before(job, v, running, config)]
        if not victims:
            continue
        victims.sort(key=lambda v: (v.spec.priority, -(v.started_at or 0.0)))
        shape = (job.spec.gpus, job.vram_mib, job.spec.project, *(v.id for v in victims))
        if shape in tried:
            continue
        chosen = _fewest(job, victims, running, (started, starting), gpus, config)
        if chosen:
            waited = format_duration(now - waiting_since(job))
            why = f"{PREEMPTED} for job {job.id} ({job.name}), which waited {waited}"
            return [Preemption(v.id, job.id, why) for v in chosen]
        tried.add(shape)
    return []


def stopping(job: Job) -> bool:
    """Is `job` being stopped for preemption?"""
    return job.cancel_requested_at is not None and job.cancel_reason.startswith(PREEMPTED)


def _running_free(job: Job) -> bool:
    """Running and not being stopped already (cancel, timeout)."""
    return job.cancel_requested_at is None


def _eligible(
    job: Job,
    now: float,
    after: float,
    launched: Mapping[int, tuple[int, ...]],
    deps: Mapping[int, tuple[JobState, str]],
) -> bool:
    if job.held or job.spec.gpus == 0 or job.id in launched or job.queued:
        return False
    if job.not_before is not None and job.not_before > now:
        return False
    if any(deps.get(d, (JobState.PENDING, ""))[0] is not JobState.SUCCEEDED for d in job.after_ids):
        return False
    return now - waiting_since(job) >= after


def _before(job: Job, victim: Job, running: Sequence[Job], config: Config) -> bool:
    """Would the policy start `job` ahead of `victim` back in the queue? (Else stopping
    the victim would only start it again.)"""
    if victim.spec.priority >= job.spec.priority:
        return False
    back = dataclasses.replace(victim, state=JobState.PENDING, gpus=())
    rest = [r for r in running if r.id != victim.id]
    return policy_order([job, back], rest, config)[0].id == job.id


def _fewest(
    job: Job,
    victims: Sequence[Job],
    running: Sequence[Job],
    starting: tuple[Sequence[Job], Sequence[Holding]],
    gpus: Sequence[GpuInfo],
    config: Config,
) -> list[Job]:
    """The victims (in their order) whose stop lets `job` start, taking them one by one
    until it fits, then dropping those it fits without; [] when even all are not enough."""
    taken: list[Job] = []
    for v in victims:
        taken.append(v)
        if _fits(job, taken, running, starting, gpus, config):
            break
    else:
        return []
    for v in reversed(taken[:-1]):
        fewer = [t for t in taken if t.id != v.id]
        if _fits(job, fewer, running, starting, gpus, config):
            taken = fewer
    return taken


def _fits(
    job: Job,
    stopped: Sequence[Job],
    running: Sequence[Job],
    starting: tuple[Sequence[Job], Sequence[Holding]],
    gpus: Sequence[GpuInfo],
    config: Config,
) -> bool:
    """Could `job` start once `stopped` ended: within the limits (`max_running`,
    `project_limits`...), on GPUs with room, beside what this decision starts?"""
    gone = {j.id for j in stopped}
    rest = [j for j in running if j.id not in gone]
    if Limits(config, [*rest, *starting[0]]).why_not(job) is not None:
        return False
    holdings = [Holding(j.id, j.gpus, j.vram_mib) for j in running if j.gpus and j.id not in gone]
    snapshot = [_without(g, gone) for g in gpus]
    alloc = allocate(
        snapshot, [*holdings, *starting[1]], Request(job.spec.gpus, job.vram_mib),
        headroom_mib=config.headroom_mib, max_jobs_per_gpu=config.max_jobs_per_gpu,
        pack=config.placement == "pack", keep_free=config.keep_free,
    )  # fmt: skip
    return alloc.ok


def _without(gpu: GpuInfo, jobs: set[int]) -> GpuInfo:
    """`gpu` as it will look once `jobs` ended: their memory no longer in use."""
    freed = sum(m for j, m in gpu.job_used_mib.items() if j in jobs)
    if not freed:
        return gpu
    used = None if gpu.memory_used_mib is None else max(0, gpu.memory_used_mib - freed)
    rest = {j: m for j, m in gpu.job_used_mib.items() if j not in jobs}
    return dataclasses.replace(gpu, memory_used_mib=used, job_used_mib=rest)
