"""Memory that follows the queue, not the history: thousands of short jobs through the real
scheduler parts (the simulation's in-memory runner and clock, a real SQLite store), the
process's RSS flat after warm-up. The 10,000-job run and the run through real tmux are
marked `soak` (opt-in: pytest -m soak); 4,000 jobs run in the normal suite."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.sim import Sim
from tests.test_scheduler import add
from tmuxtrain.core.model import Config, JobSpec


def rss() -> int:
    """This process's resident memory in bytes, after a collection."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def forget_ground_truth(sim: Sim) -> None:
    """The simulation keeps every process it ran to check the scheduler against; that is
    the test's memory, not the scheduler's, so it is dropped between batches."""
    r = sim.runner
    assert not r.alive()
    r.procs.clear()
    r.windows.clear()
    r.live.clear()
    r.launches.clear()
    sim.seen_launches = 0
    sim.specs.clear()
    sim.deps.clear()


@pytest.mark.parametrize(
    ("jobs", "batch"),
    [(4_000, 200), pytest.param(10_000, 1_000, marks=pytest.mark.soak)],
    ids=["4000", "10000"],
)
def test_rss_stays_flat_over_thousands_of_jobs(tmp_path: Path, jobs: int, batch: int) -> None:
    sim = Sim(tmp_path, config=Config(headroom_mib=0), seed=1)
    sizes = []
    for b in range(jobs // batch):
        specs = [
            (
                JobSpec(
                    name=f"s{b}-{k}",  # every spec a new text: no help from the spec cache
                    command="sim 1",
                    cwd="/",
                    gpus=k % 2,
                    vram_mib=1024 if k % 2 else None,
                ),
                (),
            )
            for k in range(batch)
        ]
        sim.add(specs)
        sim.run_until_done()
        forget_ground_truth(sim)
        sizes.append(rss())
    assert sim.finish()["succeeded"] == jobs
    warm = sizes[len(sizes) // 2 - 1]  # after the first half: caches at their size
    growth = sizes[-1] - warm
    per_job = growth / (jobs - jobs // 2)
    # Before the spec cache followed the queue: ~2 KB a job (the issue measured 2.2 KB).
    assert per_job < 200, f"RSS grew {growth / 2**20:.1f} MiB over the second half ({sizes})"


def scheduler_rss(tt: Env) -> int:
    pid = tt.client().status()["scheduler"]["pid"]
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_the_real_scheduler_stays_flat_over_real_tmux_jobs(tt: Env) -> None:
    sizes = []
    for b in range(4):
        jobs = "".join(f"  - {{name: t{b}-{k}, command: 'true'}}\n" for k in range(50))
        tt.write("batch.yaml", f"defaults: {{gpus: 0}}\njobs:\n{jobs}")
        ids = add(tt, "--no-start", "batch.yaml")
        assert len(ids) == 50
        tt.cli("up")
        assert tt.client().wait(ids, timeout=300)
        time.sleep(1)  # the windows of the finished jobs are trimmed
        sizes.append(scheduler_rss(tt))
    print("scheduler RSS after each 50 jobs:", sizes)
    assert sizes[-1] - sizes[1] < 2 * 2**20, sizes
