"""A day of a lab, simulated (issue 15, point 8): thousands of jobs of mixed sizes on 8
GPUs, replayed through the real scheduler parts (`tests/sim.py`) under each queue policy,
with and without backfill. `scripts/bench.py` reports it; `tests/test_simulation_policies.py`
checks what it says on a smaller day.

The day: three projects share eight 80 GiB GPUs. `vision` queues hyper-parameter sweeps
(1 GPU each, two sweeps in three sharing a GPU at 20 GiB, limit 30 min); everyone queues short
debug runs (1 GPU, a few minutes, priority 1); `speech` queues 2-GPU trainings; `llm`
queues a few 4- and 8-GPU runs of hours. Submissions come between 08:00 and 20:00; most
jobs carry a time limit above what they need (as people set them), some none.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from tests.sim import START, Sim
from tmuxtrain.core.model import Config, JobSpec

GIB = 1024
HOUR = 3600.0
PROJECTS = ("vision", "speech", "llm")
STEP_S = 120.0  # submissions closer than this are queued together (fewer loop restarts)


@dataclass(frozen=True)
class Submission:
    at: float  # seconds after midnight
    jobs: tuple[JobSpec, ...]


def _job(name: str, project: str, minutes: float, limit_min: float | None, **kw: object) -> JobSpec:
    return JobSpec(
        name=name,
        command=f"sim {round(minutes * 60)}",
        cwd="/",
        project=project,
        timeout_s=None if limit_min is None else limit_min * 60,
        **kw,  # type: ignore[arg-type]
    )


def workload(seed: int = 15, scale: float = 1.0) -> list[Submission]:
    """The day's submissions, in time order; `scale` < 1 gives a smaller day (fewer of
    every kind)."""
    rng = random.Random(seed)
    out: list[Submission] = []

    def when() -> float:  # the working day, shortened with the day's scale
        return 8 * HOUR + rng.uniform(0, 12 * HOUR * scale)

    for s in range(round(20 * scale)):  # vision sweeps
        shared = s % 3 != 0
        n = rng.randint(40, 80)
        jobs = tuple(
            _job(
                f"sweep{s}-{k}", "vision", rng.uniform(3, 12), 30,
                vram_mib=20 * GIB if shared else None,
            )
            for k in range(n)
        )  # fmt: skip
        out.append(Submission(when(), jobs))
    for d in range(round(600 * scale)):  # debug runs, anyone's
        project = rng.choice(PROJECTS)
        spec = _job(f"debug{d}", project, rng.uniform(1, 5), 10, priority=1)
        out.append(Submission(when(), (spec,)))
    for s in range(round(15 * scale)):  # speech trainings
        limit = None if rng.random() < 0.3 else 90.0
        jobs = tuple(
            _job(f"speech{s}-{k}", "speech", rng.uniform(15, 45), limit, gpus=2)
            for k in range(rng.randint(2, 4))
        )
        out.append(Submission(when(), jobs))
    for r in range(max(2, round(6 * scale))):  # llm runs
        gpus = 8 if r % 3 == 0 else 4
        limit = None if r % 5 == 4 else 150.0
        spec = _job(f"llm{r}", "llm", rng.uniform(30, 90), limit, gpus=gpus)
        out.append(Submission(when(), (spec,)))
    out.sort(key=lambda s: s.at)
    return out


@dataclass(frozen=True)
class DayResult:
    policy: str
    backfill: bool
    jobs: int
    utilisation: float  # GPU-equivalents held / (GPUs x from first submit to last end)
    makespan_h: float
    mean_wait_min: dict[str, float]  # per project
    longest_multi_gpu_wait_min: float


def run_day(
    root: Path, policy: str, backfill: bool, submissions: list[Submission], checked: bool
) -> DayResult:
    """Replay `submissions` on 8 simulated 80 GiB GPUs under `policy`; `checked` runs the
    simulation's per-tick checks too (slower)."""
    config = Config(policy=policy, backfill=backfill, headroom_mib=0)
    sim = Sim(root, gpus=8, gpu_mib=80 * GIB, config=config, checked=checked, idle_tick_s=600.0)
    submitted: dict[int, float] = {}
    first = START + submissions[0].at
    batch: list[JobSpec] = []
    for k, sub in enumerate(submissions):  # replayed in steps of STEP_S, as they come
        batch += sub.jobs
        t = START + sub.at
        if k + 1 < len(submissions) and START + submissions[k + 1].at < t + STEP_S:
            continue
        if t > sim.clock.now:
            sim.run(t - sim.clock.now)
        for i in sim.add([(spec, ()) for spec in batch]):
            submitted[i] = sim.clock.now
        batch = []
    sim.run_until_done()
    if checked:
        sim.finish()
    procs = list(sim.runner.procs.values())
    started = {p.job_id: p.started for p in procs}
    last = max(p.ends for p in procs)
    held = sum(sim.fair.share_of(p.gpus, p.vram_mib) * (p.ends - p.started) for p in procs)
    waits: dict[str, list[float]] = {}
    multi = 0.0
    for i, at in submitted.items():
        spec = sim.specs[i]
        wait = started[i] - at
        waits.setdefault(spec.project, []).append(wait)
        if spec.gpus > 1:
            multi = max(multi, wait)
    sim.close()
    return DayResult(
        policy,
        backfill,
        len(submitted),
        held / (8 * (last - first)),
        (last - first) / HOUR,
        {p: statistics.mean(w) / 60 for p, w in sorted(waits.items())},
        multi / 60,
    )


POLICIES = ("fifo", "priority", "fair-share")
