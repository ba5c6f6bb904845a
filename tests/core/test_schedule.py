"""Queue policy: which pending jobs start where, which are cancelled, and why the rest wait."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tmuxtrain.core.model import Config, GpuInfo, Job, JobSpec, JobState
from tmuxtrain.core.schedule import Decisions, Launch, decide, policy_order

GIB = 1024
NOW = 1_000_000.0
CFG = Config(headroom_mib=0)


def gpus(n: int, total: int = 24 * GIB) -> list[GpuInfo]:
    return [
        GpuInfo(index=i, uuid=f"GPU-{i}", name="Fake", memory_total_mib=total, memory_used_mib=0)
        for i in range(n)
    ]


def job(
    id: int,
    *,
    gpus: int = 1,
    vram: int | None = None,
    priority: int = 0,
    project: str = "default",
    state: JobState = JobState.PENDING,
    on: tuple[int, ...] = (),
    **kw: object,
) -> Job:
    spec = JobSpec(
        name=f"job{id}",
        command="true",
        cwd="/",
        gpus=gpus,
        vram_mib=vram,
        priority=priority,
        project=project,
    )
    return Job(id=id, spec=spec, state=state, gpus=on, **kw)  # type: ignore[arg-type]


def running(id: int, on: tuple[int, ...], vram: int | None = None, **kw: Any) -> Job:
    return job(id, gpus=len(on), vram=vram, state=JobState.RUNNING, on=on, **kw)


def launched(d: Decisions) -> list[int]:
    return [launch.job_id for launch in d.launches]


# ---- order ---------------------------------------------------------------------------------


def test_priority_higher_first_fifo_among_equal() -> None:
    jobs = [job(1), job(2, priority=5), job(3), job(4, priority=5), job(5, priority=-1)]
    order = policy_order(jobs, [], Config(policy="priority"))
    assert [j.id for j in order] == [2, 4, 1, 3, 5]


def test_fifo_ignores_priority() -> None:
    jobs = [job(3), job(1, priority=-5), job(2, priority=9)]
    assert [j.id for j in policy_order(jobs, [], Config(policy="fifo"))] == [1, 2, 3]


def test_priority_decides_who_gets_the_last_gpu() -> None:
    d = decide([job(1), job(2, priority=1)], gpus(1), CFG, NOW)
    assert d.launches == [Launch(2, (0,))]
    assert d.reasons == {1: "waiting for 1 free GPU"}
    d = decide([job(1), job(2, priority=1)], gpus(1), replace(CFG, policy="fifo"), NOW)
    assert launched(d) == [1]


def test_fair_share_alternates_between_equal_shares() -> None:
    jobs = [job(i, project="a") for i in (1, 2, 3)] + [job(i, project="b") for i in (4, 5, 6)]
    order = policy_order(jobs, [], Config(policy="fair-share"))
    assert [j.spec.project for j in order] == ["a", "b", "a", "b", "a", "b"]
    assert [j.id for j in order] == [1, 4, 2, 5, 3, 6]


def test_fair_share_respects_two_to_one() -> None:
    jobs = [job(i, project="a") for i in range(1, 7)] + [job(i, project="b") for i in range(7, 13)]
    cfg = Config(policy="fair-share", shares={"a": 2, "b": 1})
    order = policy_order(jobs, [], cfg)
    first6 = [j.spec.project for j in order[:6]]
    assert first6.count("a") == 4 and first6.count("b") == 2
    # Each project's own jobs stay in priority-then-id order.
    assert [j.id for j in order if j.spec.project == "a"] == [1, 2, 3, 4, 5, 6]
    # On 3 GPUs, project a gets 2 and b gets 1.
    d = decide(jobs, gpus(3), replace(CFG, policy="fair-share", shares={"a": 2, "b": 1}), NOW)
    projects = [next(j for j in jobs if j.id == x).spec.project for x in launched(d)]
    assert sorted(projects) == ["a", "a", "b"]


def test_fair_share_counts_running_jobs() -> None:
    run = [running(10, (0,), project="a"), running(11, (1,), project="a")]
    pending = [job(1, project="a"), job(2, project="a"), job(3, project="b")]
    order = policy_order(pending, run, Config(policy="fair-share"))
    assert [j.id for j in order][:2] == [3, 1]
    d = decide([*run, *pending], gpus(3), replace(CFG, policy="fair-share"), NOW)
    assert launched(d) == [3]


def test_fair_share_priority_within_a_project() -> None:
    jobs = [job(1, project="a"), job(2, project="a", priority=3), job(3, project="b")]
    order = policy_order(jobs, [], Config(policy="fair-share"))
    assert [j.id for j in order] == [2, 3, 1]


def _fair_share_by_definition(
    pending: list[Job], run: list[Job], cfg: Config, usage: dict[str, float]
) -> list[Job]:
    """The plain reading of the rule: take, one at a time, the best job of the project whose
    standing, (decayed GPU-seconds + a minute per day of half-life for each GPU held) /
    share, is lowest (ties: the better job), counting each taken job's GPUs as held."""
    charge = cfg.fair_share_half_life_s / 1440
    use = {p: usage.get(p, 0.0) for p in {j.spec.project for j in pending}}
    for j in run:
        use[j.spec.project] = use.get(j.spec.project, usage.get(j.spec.project, 0.0))
        use[j.spec.project] += len(j.gpus) * charge
    left = sorted(pending, key=lambda j: (-j.spec.priority, j.id))
    out = []
    while left:
        projects = {j.spec.project for j in left}
        heads = [next(j for j in left if j.spec.project == p) for p in sorted(projects)]
        j = min(
            heads,
            key=lambda j: (
                use[j.spec.project] / cfg.shares.get(j.spec.project, 1.0),
                -j.spec.priority,
                j.id,
            ),
        )
        p = j.spec.project
        left.remove(j)
        use[p] += j.spec.gpus * charge  # a CPU-only job holds no GPU
        out.append(j)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(-1, 2), st.integers(0, 4)), max_size=30),
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 3)), max_size=5),
    st.dictionaries(st.sampled_from("abc"), st.sampled_from([0.5, 1.0, 2.0, 3.0])),
    st.dictionaries(st.sampled_from("abcd"), st.sampled_from([0.0, 60.0, 90.0, 3600.0])),
)
def test_fair_share_order_matches_its_definition(
    pend: list[tuple[str, int, int]],
    run: list[tuple[str, int]],
    shares: dict[str, float],
    usage: dict[str, float],
) -> None:
    pending = [
        job(100 - i, project=p, priority=prio, gpus=g) for i, (p, prio, g) in enumerate(pend)
    ]
    running_ = [running(200 + i, tuple(range(g)), project=p) for i, (p, g) in enumerate(run)]
    cfg = Config(policy="fair-share", shares=shares)
    got = [j.id for j in policy_order(pending, running_, cfg, usage)]
    assert got == [j.id for j in _fair_share_by_definition(pending, running_, cfg, usage)]


def test_fair_share_goes_by_recent_usage_not_by_gpus_in_use() -> None:
    """The issue's queue: with one GPU, the GPU that just freed leaves both projects with
    none in use; what tells them apart is what each used lately. beta, which has used
    less, goes next, and a share of 2 makes alpha's use count half."""
    pending = [job(i, project="alpha") for i in (2, 3, 4)] + [job(7, project="beta")]
    usage = {"alpha": 600.0, "beta": 300.0}
    d = decide(pending, gpus(1), replace(CFG, policy="fair-share"), NOW, usage=usage)
    assert launched(d) == [7]
    cfg = replace(CFG, policy="fair-share", shares={"alpha": 2.0})
    d = decide(pending, gpus(1), cfg, NOW, usage={"alpha": 500.0, "beta": 300.0})
    assert launched(d) == [2]


# ---- held, dependencies, backoff -----------------------------------------------------------


def test_held_job_waits_with_reason() -> None:
    d = decide([job(1, held=True), job(2)], gpus(2), CFG, NOW)
    assert launched(d) == [2]
    assert "held" in d.reasons[1]
    assert "release" in d.reasons[1]


def test_dependency_waits_and_names_the_dep() -> None:
    jobs = [running(1, (0,)), job(2, after_ids=(1,))]
    d = decide(jobs, gpus(2), CFG, NOW)
    assert d.launches == []
    assert d.reasons[2] == "waiting for job 1 (job1) to succeed"


def test_dependency_pending_waits() -> None:
    d = decide([job(1, held=True), job(2, after_ids=(1,))], gpus(2), CFG, NOW)
    assert d.reasons[2] == "waiting for job 1 (job1) to succeed"


def test_dependency_succeeded_via_dep_states() -> None:
    d = decide([job(2, after_ids=(1,))], gpus(1), CFG, NOW, {1: (JobState.SUCCEEDED, "base")})
    assert d.launches == [Launch(2, (0,))]


def test_dependency_failed_or_cancelled_cancels() -> None:
    deps = {1: (JobState.FAILED, "base"), 3: (JobState.CANCELLED, "prep")}
    d = decide([job(2, after_ids=(1,)), job(4, after_ids=(3,))], gpus(2), CFG, NOW, deps)
    assert d.launches == []
    assert d.cancels == [(2, "dependency 1 (base) failed"), (4, "dependency 3 (prep) cancelled")]
    assert 2 not in d.reasons and 4 not in d.reasons


def test_a_chain_of_dependents_is_cancelled_in_one_decision() -> None:
    """Nothing may come to wake the scheduler for the next link (found by the simulation:
    a CPU job waited forever on a dependency cancelled in the decision before)."""
    deps = {1: (JobState.FAILED, "base")}
    jobs = [job(4, after_ids=(3,)), job(2, after_ids=(1,)), job(3, after_ids=(2,))]
    d = decide(jobs, gpus(1), CFG, NOW, deps)
    assert d.cancels == [
        (2, "dependency 1 (base) failed"),
        (3, "dependency 2 (job2) cancelled"),
        (4, "dependency 3 (job3) cancelled"),
    ]


def test_failed_dependency_wins_over_a_waiting_one() -> None:
    deps = {1: (JobState.RUNNING, "a"), 2: (JobState.FAILED, "b")}
    d = decide([job(3, after_ids=(1, 2))], gpus(1), CFG, NOW, deps)
    assert d.cancels == [(3, "dependency 2 (b) failed")]


def test_after_evals_waits_for_open_evaluations_then_starts() -> None:
    done = {1: (JobState.SUCCEEDED, "train")}
    waiting = job(2, after_ids=(1,), after_evals=(1,))
    d = decide([waiting], gpus(1), CFG, NOW, done, {1: 2})
    assert d.launches == []
    assert d.reasons[2] == "waiting for the checkpoint evaluations of job 1 (train)"
    plain = job(3, after_ids=(1,))  # a plain dependent does not wait for them
    assert launched(decide([plain], gpus(1), CFG, NOW, done, {1: 2})) == [3]
    assert launched(decide([waiting], gpus(1), CFG, NOW, done, {1: 0})) == [2]
    failed = {1: (JobState.FAILED, "train")}  # the training itself must still succeed
    assert decide([waiting], gpus(1), CFG, NOW, failed, {1: 1}).cancels == [
        (2, "dependency 1 (train) failed")
    ]


def test_all_dependencies_must_succeed() -> None:
    deps = {1: (JobState.SUCCEEDED, "a"), 2: (JobState.PENDING, "b")}
    d = decide([job(3, after_ids=(1, 2))], gpus(1), CFG, NOW, deps)
    assert d.reasons[3] == "waiting for job 2 (b) to succeed"


def test_retry_backoff() -> None:
    j = job(1, attempt=2, not_before=NOW + 90)
    d = decide([j], gpus(1), CFG, NOW)
    assert d.launches == []
    assert d.reasons[1] == "retry 2 in 1m30s"
    assert launched(decide([j], gpus(1), CFG, NOW + 90)) == [1]


# ---- backfill ------------------------------------------------------------------------------


def test_no_backfill_blocks_behind_the_head() -> None:
    cfg = replace(CFG, backfill=False)
    jobs = [running(1, (0,), vram=20 * GIB), job(2, vram=10 * GIB), job(3, vram=2 * GIB)]
    d = decide(jobs, gpus(1), cfg, NOW)
    assert d.launches == []
    assert d.reasons[2] == "waiting for 1 GPU with 10 GiB free"
    assert d.reasons[3] == "queued behind job 2 (job2)"


def test_backfill_lets_a_small_later_job_start() -> None:
    # GPU 0 (80 GiB) is nearly full; the head needs 40 GiB, which only GPU 0 can ever give.
    # The small job fits on GPU 1, which the head could never use.
    snap = [gpus(1, 80 * GIB)[0], replace(gpus(2, 24 * GIB)[1])]
    jobs = [running(1, (0,), vram=77 * GIB), job(2, vram=40 * GIB), job(3, vram=4 * GIB)]
    d = decide(jobs, snap, CFG, NOW)
    assert d.launches == [Launch(3, (1,))]
    assert d.reasons[2] == "waiting for 1 GPU with 40 GiB free"


def test_backfill_never_delays_an_exclusive_head() -> None:
    # Job 2 waits for GPU 0 to be free of jobs. Starting job 3 there means job 2 must now
    # also wait for job 3, and for every later small job that keeps landing there.
    jobs = [running(1, (0,), vram=10 * GIB), job(2), job(3, vram=2 * GIB)]
    d = decide(jobs, gpus(1), CFG, NOW)
    assert d.launches == []
    assert d.reasons[2] == "waiting for 1 free GPU"


def test_backfill_off_does_not_block_behind_held_or_waiting_jobs() -> None:
    cfg = replace(CFG, backfill=False)
    d = decide(
        [job(1, held=True), job(2, after_ids=(9,)), job(3)],
        gpus(1),
        cfg,
        NOW,
        {9: (JobState.RUNNING, "x")},
    )
    assert launched(d) == [3]


def test_backfill_same_shape_reuses_reason() -> None:
    jobs = [running(1, (0,)), job(2), job(3), job(4, gpus=0)]
    d = decide(jobs, gpus(1), CFG, NOW)
    assert d.reasons[2] == d.reasons[3] == "waiting for 1 free GPU"
    assert d.launches == [Launch(4, ())]


def test_cpu_only_jobs_launch_without_gpus() -> None:
    jobs = [running(1, (0,)), *(job(i, gpus=0) for i in (2, 3, 4))]
    d = decide(jobs, gpus(1), CFG, NOW)
    assert d.launches == [Launch(2, ()), Launch(3, ()), Launch(4, ())]
    d = decide([job(5, gpus=0)], [], CFG, NOW)
    assert d.launches == [Launch(5, ())]


def test_launches_in_one_decision_share_gpus_correctly() -> None:
    jobs = [job(i, vram=10 * GIB) for i in range(1, 6)]
    d = decide(jobs, gpus(2), CFG, NOW)  # spread: alternate between the two GPUs
    assert d.launches == [Launch(1, (0,)), Launch(2, (1,)), Launch(3, (0,)), Launch(4, (1,))]
    assert d.reasons[5] == "waiting for 1 GPU with 10 GiB free"
    d = decide(jobs, gpus(2), replace(CFG, placement="pack"), NOW)
    assert d.launches == [Launch(1, (0,)), Launch(2, (0,)), Launch(3, (1,)), Launch(4, (1,))]


def test_exclusive_and_multi_gpu_launches() -> None:
    jobs = [job(1, gpus=2), job(2), job(3)]
    d = decide(jobs, gpus(3), CFG, NOW)
    assert d.launches == [Launch(1, (0, 1)), Launch(2, (2,))]
    assert d.reasons[3] == "waiting for 1 free GPU"


def test_finished_jobs_are_ignored() -> None:
    jobs = [job(1, state=JobState.SUCCEEDED, on=(0,)), job(2, state=JobState.FAILED), job(3)]
    d = decide(jobs, gpus(1), CFG, NOW)
    assert d.launches == [Launch(3, (0,))]
    assert set(d.reasons) == set()


# ---- properties ----------------------------------------------------------------------------


@st.composite
def queues(draw: st.DrawFn) -> tuple[list[Job], list[GpuInfo], Config]:
    n = draw(st.integers(1, 4))
    snap = [
        replace(
            g,
            memory_total_mib=draw(st.sampled_from([16, 24, 80])) * GIB,
            memory_used_mib=draw(st.integers(0, 2 * GIB)),
        )
        for g in gpus(n)
    ]
    cfg = Config(
        policy=draw(st.sampled_from(["fifo", "priority", "fair-share"])),
        backfill=draw(st.booleans()),
        headroom_mib=draw(st.sampled_from([0, GIB])),
        max_jobs_per_gpu=draw(st.integers(1, 4)),
        shares={"a": 2.0},
    )
    jobs: list[Job] = []
    for i in range(1, draw(st.integers(0, 3)) + 1):
        k = draw(st.integers(1, n))
        on = tuple(
            sorted(draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True)))
        )
        vram = draw(st.one_of(st.none(), st.integers(1, 12).map(lambda g: g * GIB)))
        jobs.append(running(i, on, vram))
    for i in range(100, 100 + draw(st.integers(0, 10))):
        jobs.append(
            job(
                i,
                gpus=draw(st.integers(0, 3)),
                vram=draw(st.one_of(st.none(), st.integers(1, 40 * GIB))),
                priority=draw(st.integers(-1, 1)),
                project=draw(st.sampled_from(["a", "b"])),
                held=draw(st.integers(0, 5)) == 0,
            )
        )
    jobs = [
        replace(j, spec=replace(j.spec, vram_mib=None)) if j.spec.gpus == 0 else j for j in jobs
    ]
    return jobs, snap, cfg


@settings(max_examples=200, deadline=None)
@given(queues())
def test_one_decision_never_overcommits(q: tuple[list[Job], list[GpuInfo], Config]) -> None:
    jobs, snap, cfg = q
    d = decide(jobs, snap, cfg, NOW)
    by_id = {j.id: j for j in jobs}
    ids = launched(d)
    assert len(ids) == len(set(ids))
    pending = {j.id for j in jobs if j.state is JobState.PENDING}
    # Every pending job is accounted for exactly once: launched, cancelled or waiting.
    assert set(ids) | {c for c, _ in d.cancels} | set(d.reasons) == pending
    assert not set(ids) & set(d.reasons)
    for launch in d.launches:
        j = by_id[launch.job_id]
        assert not j.held
        assert len(launch.gpus) == j.gpus_requested
        assert len(set(launch.gpus)) == j.gpus_requested
    holders: dict[int, list[tuple[int | None, bool]]] = {g.index: [] for g in snap}
    for j in jobs:
        if j.state is JobState.RUNNING:
            for i in j.gpus:
                holders[i].append((j.vram_mib, False))
    for launch in d.launches:
        for i in launch.gpus:
            holders[i].append((by_id[launch.job_id].vram_mib, True))
    for g in snap:
        on = holders[g.index]
        if not any(new for _, new in on):
            continue
        assert g.memory_total_mib is not None and g.memory_used_mib is not None
        if any(vram is None for vram, new in on if new):
            assert len(on) == 1
            continue
        assert all(vram is not None for vram, _ in on)
        assert len(on) <= cfg.max_jobs_per_gpu
        committed = sum(vram or 0 for vram, _ in on)
        assert g.memory_used_mib + committed <= g.memory_total_mib - cfg.headroom_mib


def test_a_job_that_can_never_fit_holds_up_no_one() -> None:
    """A request larger than the machine waits with its reason, but neither blocks a
    strict queue nor reserves GPUs: nothing it waits for can ever come."""
    for backfill in (False, True):
        d = decide([job(1, gpus=4), job(2)], gpus(2), replace(CFG, backfill=backfill), NOW)
        assert launched(d) == [2]
        assert d.reasons[1] == "needs 4 GPUs, this machine has 2 GPUs"
        assert d.reservation is None


def test_limits_hold_jobs_back_and_say_which() -> None:
    cpu = [job(i, gpus=0, project="p" if i < 13 else "q") for i in range(10, 16)]
    d = decide(cpu, gpus(2), replace(CFG, max_cpu_jobs=2), NOW)
    assert launched(d) == [10, 11]
    assert d.reasons[12] == "held back by max_cpu_jobs (2 CPU-only jobs running)"
    d = decide(cpu, gpus(2), replace(CFG, project_limits={"p": 1}), NOW)
    assert launched(d) == [10, 13, 14, 15]  # q's jobs are not held up by p's limit
    assert d.reasons[11] == "held back by project_limits.p (1 jobs running)"
    both = [running(1, (0,)), job(2), job(3, gpus=0)]
    d = decide(both, gpus(2), replace(CFG, max_running=2), NOW)
    assert launched(d) == [2]
    assert d.reasons[3] == "held back by max_running (2 jobs running)"


def test_the_backfill_reason_names_the_job_it_serves() -> None:
    jobs = [running(1, (0,)), job(2, gpus=2, vram=None), job(3)]
    d = decide(jobs, gpus(2), CFG, NOW)
    assert launched(d) == []
    assert d.reasons[3] == "GPU 0,1 reserved for job 2 (job2) at the head of the queue"


# ---- backfill by time limits (issue 15, point 2) ---------------------------------------


def limited(id: int, timeout: float | None, **kw: Any) -> Job:
    j = job(id, **kw)
    return replace(j, spec=replace(j.spec, timeout_s=timeout))


def test_backfill_by_time_limits_the_issues_queue() -> None:
    """2 GPUs: A (1 GPU, 8 s limit) runs, B (2 GPUs) waits at the head. C (2 s) would be
    done before A's limit frees B's GPUs, so it starts on the free GPU; D (no limit) and E
    (20 s) would delay B, so they wait."""
    a = replace(limited(1, 8.0, state=JobState.RUNNING, on=(0,)), started_at=NOW - 1)
    jobs = [a, job(2, gpus=2), limited(3, 2.0), job(4), limited(5, 20.0)]
    d = decide(jobs, gpus(2), CFG, NOW)
    assert d.launches == [Launch(3, (1,))]
    assert d.reservation == (2, frozenset({0, 1}), 0)
    assert d.reserved_start == NOW + 7
    assert d.reasons[4] == d.reasons[5] == "waiting for 1 free GPU"  # C took the other
    d = decide([a, job(2, gpus=2), job(4), limited(5, 20.0)], gpus(2), CFG, NOW)
    assert d.launches == []
    assert d.reasons[4] == "GPU 0,1 reserved for job 2 (job2) at the head of the queue"
    # Without a limit on A, nothing is known: no later job touches B's GPUs.
    d = decide([replace(a, spec=replace(a.spec, timeout_s=None)), *jobs[1:]], gpus(2), CFG, NOW)
    assert d.launches == [] and d.reserved_start is None


def test_the_head_reserves_the_gpus_that_free_first() -> None:
    """3 GPUs, all busy: GPU 0 until its job's limit in 100 s, GPU 1 for ever, GPU 2 in
    10 s. A 1-GPU head reserves GPU 2, so a 50 s job may take GPU... none is free; and a
    shared job that fits beside the one on GPU 0 may start there."""
    run = [
        replace(limited(1, 100.0, state=JobState.RUNNING, on=(0,), vram=4 * GIB), started_at=NOW),
        running(2, (1,)),
        replace(limited(3, 10.0, state=JobState.RUNNING, on=(2,)), started_at=NOW),
    ]
    d = decide([*run, job(4), limited(5, 50.0, vram=4 * GIB)], gpus(3), CFG, NOW)
    assert d.reservation is not None and d.reservation[1] == frozenset({2})
    assert d.reserved_start == NOW + 10
    assert d.launches == [Launch(5, (0,))]


def test_a_shared_head_waits_for_memory_as_the_limits_free_it() -> None:
    """One 24 GiB GPU holding two 10 GiB jobs ending in 5 s and 30 s: a 12 GiB head can
    start once the first ends (5 s); a 4 s job may use the GPU until then, a 6 s one not."""
    run = [
        replace(limited(1, 5.0, state=JobState.RUNNING, on=(0,), vram=10 * GIB), started_at=NOW),
        replace(limited(2, 30.0, state=JobState.RUNNING, on=(0,), vram=10 * GIB), started_at=NOW),
    ]
    head = job(3, vram=12 * GIB)
    d = decide([*run, head, limited(4, 6.0, vram=2 * GIB)], gpus(1), CFG, NOW)
    assert d.reserved_start == NOW + 5 and d.launches == []
    d = decide([*run, head, limited(4, 4.0, vram=2 * GIB)], gpus(1), CFG, NOW)
    assert d.launches == [Launch(4, (0,))]
