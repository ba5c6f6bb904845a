"""The scheduling policies of issue 15, each proven first in the simulation (the real
scheduler parts, a real store, simulated processes and clock; see tests/sim.py, which
checks every tick): fair-share by recent usage, backfill by time limits, learned VRAM,
OOM-aware retries, preemption and topology-aware placement."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from tests.labday import POLICIES, run_day, workload
from tests.sim import START, Sim
from tmuxtrain.core.model import Config, JobSpec, JobState

GIB = 1024


def spec(name: str, command: str = "sim 10", **kw: object) -> JobSpec:
    return JobSpec(name=name, command=command, cwd="/", **kw)  # type: ignore[arg-type]


def start_order(sim: Sim) -> list[str]:
    """The projects of the attempts, in the order they started."""
    return [sim.specs[j].project for j, _, _ in sim.runner.launches]


def gpu_seconds(sim: Sim, since: float, until: float) -> dict[str, float]:
    """What each project really held between `since` and `until` (simulated seconds from
    the start), by the runner's ground truth: GPU-equivalents x seconds."""
    out: dict[str, float] = {}
    t0, t1 = START + since, START + until
    for p in sim.runner.procs.values():
        end = p.killed_at if p.killed_at is not None else p.ends
        a, b = max(p.started, t0), min(end, t1)
        if b > a:
            share = sim.fair.share_of(p.gpus, p.vram_mib)
            project = sim.specs[p.job_id].project
            out[project] = out.get(project, 0.0) + share * (b - a)
    return out


# ---- 1. fair-share by recent usage -------------------------------------------------------


def test_fair_share_alternates_on_a_busy_box(tmp_path: Path) -> None:
    """The issue's queue: six jobs of alpha, then three of beta once alpha's first runs,
    one GPU. Each time the GPU frees, neither project has a GPU in use; recent usage tells
    them apart, so beta's first job comes right after alpha's first and they alternate
    while both have work."""
    sim = Sim(tmp_path, gpus=1, config=Config(policy="fair-share"))
    sim.add([(spec(f"a{i}", project="alpha"), ()) for i in range(6)])
    sim.run(1)
    sim.add([(spec(f"b{i}", project="beta"), ()) for i in range(3)])
    sim.run_until_done()
    sim.finish()
    assert start_order(sim) == ["alpha", "beta"] * 3 + ["alpha"] * 3


def test_fair_share_converges_to_the_shares_over_a_long_run(tmp_path: Path) -> None:
    """Three projects with shares 2:1:1, each with more work than the GPUs can do, of
    mixed sizes (1 or 2 whole GPUs, or a quarter of one): over a long run each project's
    share of the GPU time comes to its configured share."""
    config = Config(
        policy="fair-share", fair_share_half_life_s=600.0, shares={"alpha": 2.0}, headroom_mib=0
    )
    sim = Sim(tmp_path, gpus=4, gpu_mib=80 * GIB, config=config)
    rng = random.Random(15)
    made = 0
    for _ in range(25):  # every 200 s, each project is topped up to 25 waiting jobs
        waiting = Counter(j.spec.project for j in sim.scheduler().store.pending())
        jobs = []
        for project in ("gamma", "beta", "alpha"):
            for _ in range(25 - waiting[project]):
                gpus = rng.choice([1, 1, 2])
                vram = rng.choice([None, None, 20 * GIB]) if gpus == 1 else None
                command = f"sim {rng.choice([5, 10, 20, 40])}"
                made += 1
                jobs.append(
                    (spec(f"j{made}", command, gpus=gpus, vram_mib=vram, project=project), ())
                )
        sim.add(jobs)
        sim.run(200)
    used = gpu_seconds(sim, 1000, 5000)
    total = sum(used.values())
    got = {p: round(u / total, 3) for p, u in sorted(used.items())}
    assert abs(got["alpha"] - 0.5) < 0.04, got
    assert abs(got["beta"] - 0.25) < 0.04, got
    assert abs(got["gamma"] - 0.25) < 0.04, got


def test_fair_share_starves_no_one(tmp_path: Path) -> None:
    """A project with a share of 1 against one of 9, and a 4-GPU job among endless 1-GPU
    jobs of the big project: the small project still gets about its tenth of the GPUs
    (its usage decays while the big one's grows), none of its jobs waits long, and the
    4-GPU job starts (the head of the queue reserves its GPUs: backfill)."""
    config = Config(policy="fair-share", fair_share_half_life_s=300.0, shares={"big": 9.0})
    sim = Sim(tmp_path, gpus=4, config=config)
    made = 0

    def top_up() -> None:
        nonlocal made
        waiting = Counter(j.spec.project for j in sim.scheduler().store.pending())
        jobs = []
        for project in ("big", "small"):
            for _ in range(20 - waiting[project]):
                made += 1
                jobs.append((spec(f"j{made}", "sim 20", project=project), ()))
        sim.add(jobs)

    top_up()
    sim.run(100)
    wide = sim.add([(spec("wide", "sim 30", gpus=4, project="small"), ())])[0]
    for _ in range(30):
        top_up()
        sim.run(100)
    store = sim.scheduler().store
    assert store.get(wide).state is not JobState.PENDING
    used = gpu_seconds(sim, 600, 3100)
    small = used["small"] / sum(used.values())
    assert 0.06 < small < 0.16, used
    waits = [
        j.started_at - j.submitted_at
        for j in store.jobs([JobState.SUCCEEDED])
        if j.spec.project == "small" and j.started_at is not None
    ]
    assert waits and max(waits) < 1500, max(waits)


# ---- 2. backfill by time limits -----------------------------------------------------------


def test_backfill_by_time_limits_the_issues_queue(tmp_path: Path) -> None:
    """On 2 GPUs: A (1 GPU, 8 s limit) runs; B (2 GPUs) waits at the head; C (1 GPU, 2 s
    limit) starts on the free GPU at once, since it ends before A's limit frees B's GPUs;
    D (no limit) and E (20 s) would delay B, so they wait for it. B starts as soon as A
    ends, and no later than A's limit."""
    sim = Sim(tmp_path, gpus=2, config=Config(policy="priority"))
    a, b, c, d, e = sim.add(
        [
            (spec("a", "sim 6", timeout_s=8.0), ()),
            (spec("b", "sim 5", gpus=2), ()),
            (spec("c", "sim 1", timeout_s=2.0), ()),
            (spec("d", "sim 1"), ()),
            (spec("e", "sim 1", timeout_s=20.0), ()),
        ]
    )
    sim.run(1)
    store = sim.scheduler().store
    assert {j.id for j in store.jobs([JobState.RUNNING, JobState.SUCCEEDED])} == {a, c}
    reason = store.get(b).reason
    assert reason.startswith("waiting for 2 free GPUs; expected to start by "), reason
    held_off = f"GPU 0,1 reserved for job {b} (b) at the head of the queue"
    assert store.get(d).reason == store.get(e).reason == held_off  # C is done already
    assert (b, START + 8.0) in [(h, s) for h, s, _ in sim.reservations]
    sim.run_until_done()
    sim.finish()
    started = {j.id: j.started_at or 0.0 for j in store.jobs()}
    assert started[c] == started[a] == START
    assert started[b] == START + 6.0
    assert started[d] >= START + 11.0 and started[e] >= START + 11.0


def test_backfill_never_starts_the_head_later_than_its_reservation(tmp_path: Path) -> None:
    """A lab's queue of mixed sizes, every job with a time limit it keeps, on 4 GPUs: many
    later jobs start early on the head's GPUs (backfill), yet each head starts no later
    than the time its reservation said, whatever starts meanwhile; and the simulation
    checks every decision (tests/sim.py) that no job took reserved GPUs it could not give
    back in time."""
    rng = random.Random(2)
    jobs = []
    for k in range(300):
        gpus = rng.choices([1, 2, 4], [6, 2, 1])[0]
        vram = None if rng.random() < 0.5 else rng.choice([8, 16, 30]) * GIB
        duration = rng.choice([2, 5, 10, 30, 90])
        limit = duration * rng.choice([1.0, 1.5, 3.0])
        jobs.append(
            (spec(f"j{k}", f"sim {duration}", gpus=gpus, vram_mib=vram, timeout_s=limit), ())
        )
    sim = Sim(tmp_path, gpus=4, gpu_mib=40 * GIB, config=Config(policy="priority"))
    sim.add(jobs)
    sim.run_until_done()
    sim.finish()
    started = {j.id: j.started_at for j in sim.scheduler().store.jobs()}
    known = [(h, s, t) for h, s, t in sim.reservations if s is not None]
    assert len(known) > 50
    late = [(h, s, started[h]) for h, s, _ in known if (started[h] or 0) > s + 1e-6]
    assert not late, late[:5]
    heads = {h for h, _, _ in sim.reservations}
    backfilled = [i for i, t in started.items() if any(h < i for h in heads) and t is not None]
    assert backfilled


# ---- 8. a day of a lab --------------------------------------------------------------------


def test_a_small_day_of_a_lab_under_each_policy(tmp_path: Path) -> None:
    """A tenth of the lab's day (tests/labday.py; the whole day is in scripts/bench.py)
    under each policy, with and without backfill, with every per-tick check: every job
    runs; backfill never costs utilisation; fair-share serves the lighter projects before
    the heaviest."""
    subs = workload(scale=0.1)
    results = {
        (policy, backfill): run_day(tmp_path / f"{policy}-{backfill}", policy, backfill, subs, True)
        for policy in POLICIES
        for backfill in (True, False)
    }
    n = sum(len(s.jobs) for s in subs)
    for (policy, _), r in results.items():
        assert r.jobs == n > 150
        assert 0.5 < r.utilisation <= 1.0, (policy, r)
        assert r.longest_multi_gpu_wait_min < r.makespan_h * 60
    for policy in POLICIES:
        on, off = results[policy, True], results[policy, False]
        assert on.utilisation >= off.utilisation - 0.005, (policy, on, off)

    # Fair-share: the heaviest user (vision's sweeps) waits longest, the others less than
    # under FIFO, where whoever queued first is served first.
    fair, fifo = results["fair-share", True].mean_wait_min, results["fifo", True].mean_wait_min
    assert max(fair, key=fair.__getitem__) == "vision", fair
    assert fair["llm"] < fifo["llm"] and fair["speech"] < fifo["speech"], (fair, fifo)
