"""OOM-aware retry and preemption in the scheduler simulation (tests/sim.py): the real
scheduler parts over a real store, simulated processes and GPUs, checked after every tick
(no GPU overcommitted, counting the raised requests; no job twice; each attempt ended
once)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sim import Sim, random_jobs
from tests.test_simulation import POLICIES, fault
from tmuxtrain.core.model import Config, JobSpec, JobState
from tmuxtrain.runners.base import run_token

GIB = 1024


def spec(name: str, command: str, **kw: object) -> JobSpec:
    return JobSpec(name=name, command=command, cwd="/", **kw)  # type: ignore[arg-type]


def kinds(sim: Sim, job_id: int) -> list[str]:
    events = sim.scheduler().store.history.events(limit=10**6, job_id=job_id)
    return [e["kind"] for e in events]


# ---- OOM-aware retry ----------------------------------------------------------------------


def test_jobs_that_run_out_of_memory_ask_for_more_until_they_fit(tmp_path: Path) -> None:
    """300 jobs on 4 x 40 GiB GPUs that need up to 3x what they declare: each retry after
    CUDA ran out of memory asks 1.5x what the last attempt had, up to whole GPUs, so all
    succeed, in as few attempts as that allows, and the raised requests are what the
    GPUs are shared by (the simulation checks every tick that none is overcommitted)."""
    config = Config(retry_backoff_s=2.0, headroom_mib=GIB)
    sim = Sim(tmp_path, gpus=4, gpu_mib=40 * GIB, config=config)
    rng = random.Random(15)
    jobs = []
    for k in range(300):
        declared = rng.choice([2, 4, 6, 8]) * GIB
        need = int(declared * rng.choice([1.0, 1.0, 1.2, 1.6, 2.0, 3.0]))
        jobs.append((spec(f"j{k}", f"sim {rng.choice([5, 20, 60])} needs={need}",
                          vram_mib=declared, retries=4), ()))  # fmt: skip
    ids = sim.add(jobs)
    sim.run_until_done()
    sim.finish()
    store = sim.scheduler().store
    raised = 0
    for job_id, (s, _) in zip(ids, jobs, strict=True):
        j = store.get(job_id)
        need = int(s.command.split("needs=")[1])
        assert j.state is JobState.SUCCEEDED, (job_id, j.reason)
        ask, tries = s.vram_mib, 1  # the attempts the 1.5x rule takes to reach the need
        while ask is not None and ask < need:
            ask = -(-int(ask * 1.5) // 256) * 256
            ask = None if ask > 39 * GIB else ask
            tries += 1
        assert (j.attempt, j.vram_mib) == (tries, ask), (job_id, s.vram_mib, need)
        if tries > 1:
            raised += 1
            assert j.vram_source == "raised"
            # A simulated GPU shows what a job asks for, which is no measurement: no peak.
            assert j.vram_peak_mib is None
            assert kinds(sim, job_id).count("retrying") == tries - 1
        else:
            assert j.vram_source == "declared"
    assert raised > 100


def test_a_raise_past_a_whole_gpu_asks_for_the_gpu_and_the_reason_says_so(
    tmp_path: Path,
) -> None:
    sim = Sim(tmp_path, gpus=1, gpu_mib=40 * GIB, config=Config(retry_backoff_s=30.0))
    [a] = sim.add([(spec("big", "sim 100 needs=36000", vram_mib=20 * GIB, retries=3), ())])
    store = sim.scheduler().store
    sim.run(12)  # attempt 1 (20 GiB) ran out of memory after 10 s
    j = store.get(a)
    assert (j.state, j.attempt, j.vram_mib, j.vram_source) == (
        JobState.PENDING, 2, 30 * GIB, "raised",
    )  # fmt: skip
    assert j.reason.endswith("; asks for 30 GiB per GPU after CUDA ran out of memory")
    assert j.reason.startswith("retry 2 in ")
    [retrying] = store.history.events(job_id=a, kinds=["retrying"])
    assert retrying["reason"] == (
        "CUDA out of memory (exit code 1); retrying: asks for 30 GiB per GPU (had 20 GiB)"
    )
    assert retrying["vram_mib"] == 30 * GIB
    sim.run(40)  # attempt 2 (30 GiB) ran out too: 45 GiB is more than the GPU
    j = store.get(a)
    assert (j.attempt, j.vram_mib, j.vram_source) == (3, None, "raised")
    sim.run_until_done()
    sim.finish()
    j = store.get(a)
    assert (j.state, j.attempt, j.vram_mib) == (JobState.SUCCEEDED, 3, None)


def test_an_oom_without_retries_left_fails_and_other_failures_ask_for_nothing_more(
    tmp_path: Path,
) -> None:
    sim = Sim(tmp_path, gpus=1, config=Config(retry_backoff_s=1.0))
    a, b, c = sim.add([
        (spec("no-retry", "sim 10 needs=9000", vram_mib=4 * GIB), ()),
        (spec("crash", "sim 10 exit=3", vram_mib=4 * GIB, retries=1), ()),
        (spec("whole", "sim 10 exit=1 oom", retries=1), ()),
    ])  # fmt: skip
    sim.run_until_done()
    sim.finish()
    store = sim.scheduler().store
    ja, jb, jc = store.get(a), store.get(b), store.get(c)
    assert (ja.state, ja.attempt, ja.vram_mib, ja.vram_source) == (
        JobState.FAILED, 1, 4 * GIB, "declared",
    )  # fmt: skip
    assert ja.reason == "CUDA out of memory (exit code 1)"
    assert (jb.state, jb.attempt, jb.vram_mib, jb.vram_source) == (
        JobState.FAILED, 2, 4 * GIB, "declared",
    )  # fmt: skip
    # Whole GPUs already: retried as it was.
    assert (jc.state, jc.attempt, jc.vram_mib, jc.vram_source) == (
        JobState.FAILED, 2, None, "declared",
    )  # fmt: skip
    [retrying] = store.history.events(job_id=c, kinds=["retrying"])
    assert retrying["reason"].endswith("retrying: it had whole GPUs already")


# ---- preemption ---------------------------------------------------------------------------


def test_urgent_jobs_preempt_only_jobs_that_opted_in_which_resume_later(tmp_path: Path) -> None:
    """2 GPUs full of long low-priority jobs, half of them preemptible; urgent jobs come
    and wait: after `preempt_after` each stops one preemptible job (Ctrl-C, then SIGTERM),
    which goes back to pending without using a retry and later runs its `resume` command
    with a restart counted. Jobs that did not opt in are never stopped."""
    config = Config(preempt_after_s=60.0, cancel_grace_s=10.0, retry_backoff_s=5.0)
    sim = Sim(tmp_path, gpus=2, config=config)
    low = sim.add([
        (spec(f"low{k}", "sim 1000", preemptible=k % 2 == 0, resume="sim 200",
              priority=-1), ())
        for k in range(4)
    ])  # fmt: skip
    sim.run(30)
    assert {j for j, _, _ in sim.runner.launches} == {low[0], low[1]}  # on GPU 0 and 1
    urgent = sim.add([(spec("urgent", "sim 100", priority=5), ())])[0]
    added = sim.clock.now
    sim.run(50)
    store = sim.scheduler().store
    assert store.get(urgent).state is JobState.PENDING  # has not waited 60 s yet
    assert store.get(low[0]).cancel_requested_at is None
    sim.run(40)
    ju = store.get(urgent)
    assert ju.state is JobState.RUNNING
    start = next(t for j, _, t in sim.runner.launches if j == urgent)
    assert added + 60 <= start <= added + 60 + 12  # waited, then a grace at most
    j0 = store.get(low[0])  # the preemptible one was stopped, the other one never
    assert (j0.state, j0.attempt, j0.restarts) == (JobState.PENDING, 2, 1)
    [stopped] = store.history.events(job_id=low[0], kinds=["preempted"])
    assert stopped["reason"] == f"preempted for job {urgent} (urgent), which waited 1m00s"
    assert stopped["exit_code"] == 130  # it ended at Ctrl-C
    assert store.get(low[1]).state is JobState.RUNNING
    assert kinds(sim, low[0])[-3:] == ["started", "preempting", "preempted"]
    sim.run_until_done()
    sim.finish()
    for job_id in low:
        j = store.get(job_id)
        assert j.state is JobState.SUCCEEDED
        if job_id == low[0]:
            assert (j.attempt, j.restarts) == (2, 1)  # no retry used (it has none)
            rerun = sim.runner.procs[run_token(sim.settings.home, job_id, 2)]
            assert rerun.ends - rerun.started == 200  # its resume command
        else:
            assert (j.attempt, j.restarts) == (1, 0)
            assert "preempting" not in kinds(sim, job_id)


def test_the_waiting_job_says_whom_it_preempts_until_that_one_is_gone(tmp_path: Path) -> None:
    """A preemptible job that ignores Ctrl-C and SIGTERM holds its GPU until SIGKILL at
    the end of the grace; meanwhile the waiting job's reason names it."""
    config = Config(preempt_after_s=60.0, cancel_grace_s=10.0)
    sim = Sim(tmp_path, gpus=1, config=config)
    [low] = sim.add([(spec("low", "sim 1000 ignore-term", preemptible=True, priority=-1), ())])
    sim.run(5)
    [urgent] = sim.add([(spec("urgent", "sim 10", priority=9), ())])
    sim.run(63)  # the stop began at 60 s: Ctrl-C, SIGTERM at 5 s, SIGKILL at 10 s
    store = sim.scheduler().store
    assert store.get(low).state is JobState.RUNNING
    assert store.get(urgent).reason == "waiting for 1 free GPU; preempting job 1 (low)"
    sim.run(10)
    assert store.get(urgent).state is not JobState.PENDING
    [stopped] = store.history.events(job_id=low, kinds=["preempted"])
    assert stopped["exit_code"] == 137
    sim.run_until_done()
    sim.finish()
    assert store.get(low).restarts == 1


def test_no_preemption_without_preempt_after(tmp_path: Path) -> None:
    sim = Sim(tmp_path, gpus=1, config=Config())
    [low] = sim.add([(spec("low", "sim 500", preemptible=True, priority=-1), ())])
    sim.run(5)
    [urgent] = sim.add([(spec("urgent", "sim 10", priority=9), ())])
    sim.run_until_done()
    sim.finish()
    start = {j: t for j, _, t in sim.runner.launches}
    assert start[urgent] >= start[low] + 500  # it waited for the whole of low
    assert store_restarts(sim, low) == 0


def store_restarts(sim: Sim, job_id: int) -> int:
    return sim.scheduler().store.get(job_id).restarts


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(5, 60),
    gpus=st.integers(1, 3),
    policy=st.sampled_from(POLICIES),
    faults=st.lists(st.integers(0, 2**16), max_size=8),
)
def test_random_queues_with_preemption_and_ooms_keep_every_promise(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    n: int,
    gpus: int,
    policy: str,
    faults: list[int],
) -> None:
    """Random queues where some jobs are preemptible and some run out of memory, under
    every policy, with scheduler crashes and tmux deaths in between: every promise of
    the simulation holds, only jobs that opted in are ever stopped, and a stop never
    uses up a retry."""
    config = Config(policy=policy, retry_backoff_s=2.0, cancel_grace_s=4.0, headroom_mib=0,
                    preempt_after_s=20.0)  # fmt: skip
    sim = Sim(tmp_path_factory.mktemp("sim"), gpus=gpus, gpu_mib=40 * GIB, config=config)
    rng = random.Random(seed)
    jobs = []
    for s, deps in random_jobs(rng, n, 1, max_gpus=gpus, max_vram_mib=40 * GIB):
        if s.vram_mib is not None and rng.random() < 0.3:
            s = replace(s, command=f"{s.command} needs={int(s.vram_mib * 1.4)}")
        if rng.random() < 0.4:
            s = replace(s, preemptible=True, priority=-1, resume=rng.choice([None, "sim 2"]))
        jobs.append((s, deps))
    sim.add(jobs)
    for f in faults:
        sim.run(f % 97)
        fault(sim, random.Random(f))
    sim.run_until_done()
    counts = sim.finish()
    assert counts["jobs"] == n
    store = sim.scheduler().store
    for j in store.jobs():
        stops = kinds(sim, j.id).count("preempted")
        assert stops == j.restarts
        assert j.spec.preemptible or stops == 0


def test_a_preempted_job_never_starts_before_the_job_it_made_room_for(tmp_path: Path) -> None:
    """Under fair-share a preempted job's project can be the least served once it stopped,
    so it came first again and was preempted again, 1,652 times in one queue (found by the
    random test above). It now waits until the job it made room for has started."""
    config = Config(policy="fair-share", retry_backoff_s=2.0, cancel_grace_s=4.0,
                    headroom_mib=0, preempt_after_s=20.0)  # fmt: skip
    sim = Sim(tmp_path, gpus=1, gpu_mib=40 * GIB, config=config)
    rng = random.Random(3)
    jobs = []
    for s, deps in random_jobs(rng, 40, 1, max_gpus=1, max_vram_mib=40 * GIB):
        if s.vram_mib is not None and rng.random() < 0.3:
            s = replace(s, command=f"{s.command} needs={int(s.vram_mib * 1.4)}")
        if rng.random() < 0.4:
            s = replace(s, preemptible=True, priority=-1, resume=rng.choice([None, "sim 2"]))
        jobs.append((s, deps))
    sim.add(jobs)
    sim.run_until_done(limit_s=20_000)
    sim.finish()
    store = sim.scheduler().store
    stops = store.history.events(limit=10**6, kinds=["preempted"])
    assert 0 < len(stops) <= 20
    for stop in stops:  # the job it stopped for started before it started again
        for_job = int(stop["reason"].split()[3])
        starts = {(e["job_id"], e["attempt"]): e["t"]
                  for e in store.history.events(limit=10**6, kinds=["started"])}  # fmt: skip
        mine = starts.get((stop["job_id"], stop["attempt"] + 1))
        theirs = min(t for (j, _), t in starts.items() if j == for_job and t >= stop["t"])
        assert mine is None or theirs <= mine
