"""The simulation's fair-share check (see tests/sim.py): fair-share's definition computed
apart from the scheduler's own bookkeeping, and held against every decision."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from tests.sim import START
from tmuxtrain.core.model import Config, Job, JobState
from tmuxtrain.core.schedule import Decisions
from tmuxtrain.store import Store

if TYPE_CHECKING:
    from tests.sim import Sim


def capacity_wait(reason: str) -> bool:
    """A pending job's reason says it waits for GPUs (not for a dependency, a retry
    backoff, a release or a limit)."""
    return reason.startswith(
        ("waiting for ", "GPU ", "queued behind job ")
    ) and not reason.startswith("waiting for job ")


class FairShareCheck:
    """Fair-share's definition, computed apart from the scheduler's own bookkeeping: the
    attempt records read here as they come (GPU-equivalents from their GPUs and vram), summed
    against a fixed time origin (2^(t/H) terms), and checked against every decision."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.row = 0
        self.sums: dict[str, float] = {}  # per project: sum of w * (2^(end/H) - 2^(start/H))
        self.half_life: float | None = None

    def share_of(self, gpus: tuple[int, ...], vram: int | None) -> float:
        if vram is None:
            return float(len(gpus))
        return len(gpus) * min(1.0, vram / self.sim.gpu_mib)

    def usage(
        self, store: Store, half_life: float, running: list[Job], now: float
    ) -> dict[str, float]:
        if half_life != self.half_life:  # a new config: count everything again
            self.half_life, self.row, self.sums = half_life, 0, {}
        h = half_life
        rows = store.db.execute(
            "SELECT rowid, job_id, started_at, finished_at, gpus, vram_mib FROM attempts"
            " WHERE rowid > ? AND finished_at IS NOT NULL ORDER BY rowid",
            (self.row,),
        )
        for row, job_id, started, finished, gpus, vram in rows:
            self.row = row
            w = self.share_of(tuple(json.loads(gpus)), vram)
            if started is None or finished <= started or w == 0:
                continue
            p = self.sim.specs[job_id].project
            term = w * (2 ** ((finished - START) / h) - 2 ** ((started - START) / h))
            self.sums[p] = self.sums.get(p, 0.0) + term
        scale = h / math.log(2) * 2 ** (-(now - START) / h)
        out = {p: v * scale for p, v in self.sums.items()}
        for j in running:
            assert j.started_at is not None
            w = self.share_of(j.gpus, j.vram_mib)
            u = w * h / math.log(2) * (1 - 2 ** (-(now - j.started_at) / h))
            out[j.spec.project] = out.get(j.spec.project, 0.0) + u
        return out

    def check(self, decision: Decisions, store: Store, config: Config, now: float) -> None:
        launched = {launch.job_id: launch for launch in decision.launches}
        running = [j for j in store.jobs([JobState.RUNNING]) if j.id not in launched]
        h = config.fair_share_half_life_s
        raw = self.usage(store, h, running, now)
        charge = h / 1440
        for j in running:
            raw[j.spec.project] = (
                raw.get(j.spec.project, 0.0) + self.share_of(j.gpus, j.vram_mib) * charge
            )
        waiting: dict[str, list[int]] = {}
        for job_id, reason in decision.reasons.items():
            if capacity_wait(reason):
                waiting.setdefault(self.sim.specs[job_id].project, []).append(job_id)
        jobs = {j.id: j for j in store.jobs(ids=launched)}

        def standing(p: str) -> float:
            return raw.get(p, 0.0) / config.shares.get(p, 1.0)

        suspects: list[tuple[Job, float, str, float, int]] = []
        for launch in decision.launches:
            job = jobs[launch.job_id]
            spec = job.spec
            p = spec.project
            mine = standing(p)
            for q, ids in waiting.items():
                theirs = standing(q)
                if q == p or theirs >= mine - 1e-9 * max(1.0, mine):
                    continue
                for w in ids:  # a job of a project below p's standing waits: like this one?
                    other = self.sim.specs[w]
                    if other.gpus == spec.gpus and (
                        spec.timeout_s is None or (other.timeout_s or math.inf) <= spec.timeout_s
                    ):
                        suspects.append((job, mine, q, theirs, w))
            raw[p] = raw.get(p, 0.0) + self.share_of(launch.gpus, job.vram_mib) * charge
        if suspects:
            asks = {j.id: j.vram_mib for j in store.jobs(ids={s[-1] for s in suspects})}
            for job, mine, q, theirs, w in suspects:
                assert asks[w] != job.vram_mib, (
                    f"job {job.id} of {job.spec.project} (standing {mine:.6g}) started while"
                    f" job {w} of {q} (standing {theirs:.6g}) waited: {decision.reasons[w]}"
                )
