"""Preemption, opt-in: which running jobs are stopped for which waiting one, and what a
stopped attempt means."""

from __future__ import annotations

from collections.abc import Sequence

from tmuxtrain.core import preempt
from tmuxtrain.core.model import PREEMPTED, Config, GpuInfo, Job, JobSpec, JobState
from tmuxtrain.core.reconcile import outcome

GIB = 1024
CONFIG = Config(preempt_after_s=60.0, headroom_mib=0)


def gpus(n: int = 1, total: int = 24 * GIB) -> list[GpuInfo]:
    return [GpuInfo(i, f"GPU-{i}", "g", total, 0) for i in range(n)]


def running(
    job_id: int, on: tuple[int, ...], *, priority: int = 0, preemptible: bool = True,
    started: float = 0.0, vram: int | None = None, **kw: object,
) -> Job:  # fmt: skip
    spec = JobSpec(f"r{job_id}", "train", "/", gpus=len(on), vram_mib=vram, priority=priority,
                   preemptible=preemptible)  # fmt: skip
    return Job(job_id, spec, JobState.RUNNING, gpus=on, started_at=started, **kw)  # type: ignore[arg-type]


def waiting(job_id: int, *, n: int = 1, priority: int = 5, since: float = 0.0, **kw: object) -> Job:
    spec = JobSpec(f"p{job_id}", "train", "/", gpus=n, priority=priority)
    return Job(job_id, spec, submitted_at=since, **kw)  # type: ignore[arg-type]


def choose(
    pending: Sequence[Job], run: Sequence[Job], g: Sequence[GpuInfo], now: float = 100.0,
    config: Config = CONFIG, deps: dict[int, tuple[JobState, str]] | None = None,
) -> list[tuple[int, int]]:  # fmt: skip
    order = sorted(pending, key=lambda j: (-j.spec.priority, j.id))
    found = preempt.choose(pending, run, g, config, now, order, {}, deps or {})
    return [(p.job_id, p.for_job) for p in found]


def test_a_higher_priority_job_that_waited_long_enough_stops_a_preemptible_one() -> None:
    [p] = preempt.choose(
        [waiting(9)], [running(1, (0,))], gpus(), CONFIG, 100.0, [waiting(9)], {}, {}
    )
    assert (p.job_id, p.for_job) == (1, 9)
    assert p.reason == "preempted for job 9 (p9), which waited 1m40s"
    assert p.reason.startswith(PREEMPTED)


def test_never_without_preempt_after_nor_before_it_nor_for_jobs_that_did_not_opt_in() -> None:
    assert choose([waiting(9)], [running(1, (0,))], gpus(), config=Config()) == []
    assert choose([waiting(9, since=50.0)], [running(1, (0,))], gpus()) == []  # 50 s < 60 s
    assert choose([waiting(9)], [running(1, (0,), preemptible=False)], gpus()) == []
    assert choose([waiting(9, priority=0)], [running(1, (0,))], gpus()) == []  # not higher


def test_only_jobs_that_could_start_but_for_gpus_preempt() -> None:
    run = [running(1, (0,))]
    assert choose([waiting(9, held=True)], run, gpus()) == []
    assert choose([waiting(9, not_before=120.0)], run, gpus()) == []  # retry backoff
    assert choose([waiting(9, after_ids=(3,))], run, gpus()) == []  # dependency pending
    done = {3: (JobState.SUCCEEDED, "dep")}
    assert choose([waiting(9, after_ids=(3,))], run, gpus(), deps=done) == [(1, 9)]
    # A retry's wait counts from the end of its backoff.
    assert choose([waiting(9, not_before=80.0)], run, gpus()) == []
    cpu = Job(9, JobSpec("cpu", "x", "/", gpus=0, priority=5))
    assert choose([cpu], run, gpus()) == []


def test_the_fewest_victims_lowest_priority_and_latest_started_first() -> None:
    run = [
        running(1, (0,), priority=-1, started=10.0),
        running(2, (1,), priority=-1, started=20.0),  # the latest: the least work lost
        running(3, (2,), priority=-2, started=5.0),  # the lowest priority
    ]
    assert choose([waiting(9)], run, gpus(3)) == [(3, 9)]
    assert choose([waiting(9, n=2)], run, gpus(3)) == [(3, 9), (2, 9)]
    # Not enough even with every victim (GPU 0 holds a job that did not opt in): none.
    run[0] = running(1, (0,), priority=-1, preemptible=False)
    assert choose([waiting(9, n=3)], run, gpus(3)) == []


def test_shared_gpus_count_the_memory_the_victims_free() -> None:
    g = [GpuInfo(0, "GPU-0", "g", 24 * GIB, 20 * GIB, job_used_mib={1: 10 * GIB, 2: 10 * GIB})]
    run = [running(1, (0,), vram=10 * GIB, priority=-1), running(2, (0,), vram=10 * GIB)]
    small = Job(9, JobSpec("p9", "t", "/", vram_mib=12 * GIB, priority=5))
    assert choose([small], run, g) == [(1, 9)]  # 4 GiB free + 10 GiB freed >= 12 GiB
    big = Job(9, JobSpec("p9", "t", "/", vram_mib=20 * GIB, priority=5))
    assert choose([big], run, g) == [(1, 9), (2, 9)]


def test_one_stop_at_a_time_and_none_that_the_policy_would_restart_first() -> None:
    stopping = running(1, (0,), cancel_requested_at=90.0, cancel_reason="preempted for job 8")
    assert choose([waiting(9)], [stopping, running(2, (1,))], gpus(2)) == []
    # A job being cancelled is no victim (it ends anyway).
    cancelling = running(1, (0,), cancel_requested_at=90.0, cancel_reason="cancelled by user")
    assert choose([waiting(9)], [cancelling], gpus()) == []
    # fifo starts the older job first: stopping it would only start it again.
    fifo = Config(policy="fifo", preempt_after_s=60.0, headroom_mib=0)
    assert choose([waiting(9)], [running(1, (0,), priority=-5)], gpus(), config=fifo) == []


def test_a_stopped_attempt_goes_back_to_pending_without_using_a_retry() -> None:
    job = running(1, (0,), cancel_requested_at=90.0, cancel_reason="preempted for job 9")
    for code in (0, 130, 143, None):
        out = outcome(job, code, "", 100.0, 5.0)
        assert (out.state, out.reason, out.not_before) == (
            JobState.PENDING, "preempted for job 9", 100.0,
        )  # fmt: skip
    # Retries count the attempts that ended by themselves: attempt 3 after 2 restarts is
    # the first failure, retried once (retries: 1) with the first backoff.
    spec = JobSpec("a", "x", "/", retries=1)
    third = Job(1, spec, JobState.RUNNING, attempt=3, restarts=2)
    assert outcome(third, 1, "", 100.0, 5.0).not_before == 105.0
    fourth = Job(1, spec, JobState.RUNNING, attempt=4, restarts=2)
    assert outcome(fourth, 1, "", 100.0, 5.0).state is JobState.FAILED


def test_a_rerun_after_preemption_runs_resume_where_given() -> None:
    spec = JobSpec("a", "python t.py", "/", resume="python t.py --resume")
    assert preempt.command_of(Job(1, spec)) == "python t.py"
    assert preempt.command_of(Job(1, spec, attempt=2)) == "python t.py"  # a plain retry
    assert preempt.command_of(Job(1, spec, attempt=2, restarts=1)) == "python t.py --resume"
    plain = JobSpec("a", "python t.py", "/")
    assert preempt.command_of(Job(1, plain, restarts=1)) == "python t.py"


def test_limits_count_stop_only_what_frees_the_limit_that_holds_the_job_back() -> None:
    # max_running 2, both slots taken: stopping the preemptible job frees a slot too.
    capped = Config(preempt_after_s=60.0, headroom_mib=0, max_running=2)
    run = [running(1, (0,)), running(2, (1,), preemptible=False, priority=-1)]
    assert choose([waiting(9)], run, gpus(3), config=capped) == [(1, 9)]
    # project_limits holds the waiting job back: stopping another project's job frees
    # nothing it needs.
    per_project = Config(preempt_after_s=60.0, headroom_mib=0, project_limits={"p": 1})
    mine = Job(2, JobSpec("mine", "t", "/", project="p", priority=-1), JobState.RUNNING,
               gpus=(1,), started_at=0.0)  # fmt: skip
    theirs = running(1, (0,))
    urgent = Job(9, JobSpec("p9", "t", "/", project="p", priority=5))
    assert choose([urgent], [theirs, mine], gpus(2), config=per_project) == []
