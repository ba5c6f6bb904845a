"""Learned VRAM in the scheduler simulation: a sweep that declares no `vram` runs one job
per GPU until its first jobs succeeded, then shares the GPUs at its measured size, and no
GPU ever holds more than it has, by declaration or by what the jobs really use."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from tests.sim import Sim, Violation
from tmuxtrain.core.learn import with_margin
from tmuxtrain.core.model import Config, GpuInfo, JobSpec, JobState
from tmuxtrain.gpus.fake import FakeProbe

GIB = 1024


class MeasuringProbe:
    """Simulated GPUs on which each live simulated process uses what `use` says for its
    job, as NVML's per-process memory would show it (the fake at the hardware edge); it
    checks that the real use never exceeds a GPU's memory."""

    kind = "fake"

    def __init__(self, sim: Sim, use: Callable[[int], int]) -> None:
        self.sim = sim
        self.use = use
        self.inner = FakeProbe(sim.settings.gpus or "")
        self.note = self.inner.note

    def probe(
        self,
        held: dict[int, dict[int, int]] | None = None,
        owners: Callable[[], dict[int, int]] | None = None,
    ) -> list[GpuInfo]:
        now = self.sim.clock.now
        real: dict[int, dict[int, int]] = {}
        for p in self.sim.runner.alive():
            if p.wrapper_alive(now):
                for index in p.gpus:
                    real.setdefault(index, {})[p.job_id] = self.use(p.job_id)
        out: list[GpuInfo] = []
        for gpu in self.inner.probe(held, owners):
            on = real.get(gpu.index, {})
            jobs = {**gpu.job_used_mib, **on}
            if sum(on.values()) > (gpu.memory_total_mib or 0):
                raise Violation(f"GPU {gpu.index} really over-committed: {on}")
            out.append(
                dataclasses.replace(
                    gpu,
                    job_used_mib=jobs,
                    memory_used_mib=sum(jobs.values()),
                    unmeasured=gpu.unmeasured - on.keys(),
                )
            )
        return out

    def close(self) -> None:
        pass


def test_a_sweep_learns_and_shares_the_gpus(tmp_path: Path) -> None:
    """24 jobs of 30 s that each use 9 GiB, on 2 GPUs of 80 GiB: exclusive, that is 12
    rounds (360 s); learned after the first round, 4 share each GPU (max_jobs_per_gpu)."""
    config = Config(headroom_mib=1024, retry_backoff_s=1.0)
    sim = Sim(tmp_path, gpus=2, config=config)
    sweep = JobSpec(name="s", command="sim 30", cwd="/", gpus=1, sweep="lr-sweep")
    ids = sim.add([(dataclasses.replace(sweep, name=f"s{k}"), ()) for k in range(24)])
    sim.probe = lambda s: MeasuringProbe(s, lambda job_id: 9 * GIB)
    sim.run(45.0)  # the first round done and measured, the second running...
    sim.crash()  # ...when the scheduler dies: peaks and asks are in the store
    sim.run_until_done()
    assert sim.restarts == 1
    procs = sim.runner.procs.values()
    took = max(p.ends for p in procs) - min(p.started for p in procs)
    sim.finish()
    jobs = sim.scheduler().store.jobs(ids=ids)
    assert all(j.state is JobState.SUCCEEDED for j in jobs)
    assert all(j.vram_peak_mib == 9 * GIB for j in jobs)
    first, rest = jobs[:2], jobs[2:]
    assert [j.vram_source for j in first] == ["declared"] * 2  # ran exclusive, measured
    assert {(j.vram_source, j.vram_mib) for j in rest} == {("learned", with_margin(9 * GIB))}
    assert took < 150, f"the sweep took {took:.0f} s, as if it never shared"
    most = max(sum(1 for _ in group) for group in _overlaps(sim))
    assert most == 8  # 4 per GPU


def test_a_sweep_whose_peak_does_not_fit_twice_stays_one_per_gpu(tmp_path: Path) -> None:
    """Jobs that use 50 GiB of 80: learned at 55 GiB, still one per GPU, never two."""
    sim = Sim(tmp_path, gpus=2, config=Config(headroom_mib=1024))
    sweep = JobSpec(name="s", command="sim 10", cwd="/", gpus=1, sweep="big")
    ids = sim.add([(dataclasses.replace(sweep, name=f"s{k}"), ()) for k in range(6)])
    sim.probe = lambda s: MeasuringProbe(s, lambda job_id: 50 * GIB)
    sim.run_until_done()
    sim.finish()
    jobs = sim.scheduler().store.jobs(ids=ids)
    assert jobs[-1].vram_mib == with_margin(50 * GIB)
    assert max(sum(1 for _ in group) for group in _overlaps(sim)) == 2


def _overlaps(sim: Sim) -> list[list[int]]:
    """For each launch, the jobs whose simulated processes ran at its start time."""
    procs = list(sim.runner.procs.values())
    return [[q.job_id for q in procs if q.started <= p.started < q.ends] for p in procs]
