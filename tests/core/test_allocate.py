"""The allocator: GPU snapshot + holdings + request -> GPU indices, or the reason why not."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tmuxtrain.core.allocate import allocate, gpu_loads
from tmuxtrain.core.model import Allocation, GpuInfo, Holding, Request

GIB = 1024


def gpu(
    index: int,
    total: int | None = 24 * GIB,
    used: int | None = 0,
    job_used: dict[int, int] | None = None,
) -> GpuInfo:
    return GpuInfo(
        index=index,
        uuid=f"GPU-{index}",
        name="Fake",
        memory_total_mib=total,
        memory_used_mib=used,
        job_used_mib=job_used or {},
    )


def gpus(n: int, total: int = 24 * GIB) -> list[GpuInfo]:
    return [gpu(i, total) for i in range(n)]


# ---- exclusive requests --------------------------------------------------------------------


def test_exclusive_takes_lowest_free_indices() -> None:
    held = [Holding(1, (1,), None)]
    assert allocate(gpus(4), held, Request(2, None)).gpus == (0, 2)
    assert allocate(gpus(4), [], Request(1, None)).gpus == (0,)
    assert allocate(gpus(4), [Holding(1, (0,), 2 * GIB)], Request(1, None)).gpus == (1,)


def test_exclusive_refuses_gpus_with_outside_use_above_headroom() -> None:
    snap = [gpu(0, used=2 * GIB), gpu(1, used=GIB), gpu(2)]
    assert allocate(snap, [], Request(2, None), headroom_mib=GIB).gpus == (1, 2)
    a = allocate(snap, [], Request(3, None), headroom_mib=GIB)
    # The reason says what stands in the way: memory held outside tmuxtrain.
    assert a == Allocation((), "waiting for 3 free GPUs: GPU 0 has 2 GiB used by other processes")
    assert not a.ok


def test_exclusive_waits_for_free_gpu() -> None:
    a = allocate(gpus(1), [Holding(1, (0,), GIB)], Request(1, None))
    assert a.gpus == ()
    assert a.reason == "waiting for 1 free GPU"


# ---- shared (vram) requests ----------------------------------------------------------------


def test_shared_spreads_by_default_and_packs_when_asked() -> None:
    held = [Holding(5, (2,), 4 * GIB)]
    assert allocate(gpus(3), held, Request(1, 4 * GIB)).gpus == (0,)  # an idle GPU first
    assert allocate(gpus(3), held, Request(1, 4 * GIB), pack=True).gpus == (2,)


def test_spread_prefers_fewer_jobs_then_more_free_memory() -> None:
    held = [Holding(1, (0,), 4 * GIB), Holding(2, (1,), 14 * GIB), Holding(3, (2,), GIB)]
    held.append(Holding(4, (2,), GIB))
    # GPUs 0 and 1 run one job each; GPU 0 has more free memory.
    assert allocate(gpus(3), held, Request(1, 8 * GIB)).gpus == (0,)


def test_pack_is_best_fit_among_used_gpus() -> None:
    # GPU 0 has 23-4 = 19 GiB free, GPU 1 has 23-14 = 9 GiB: the tighter one is chosen.
    held = [Holding(1, (0,), 4 * GIB), Holding(2, (1,), 14 * GIB)]
    assert allocate(gpus(3), held, Request(1, 8 * GIB), pack=True).gpus == (1,)
    # 10 GiB does not fit GPU 1 any more, so the used GPU 0 wins over the empty GPU 2.
    assert allocate(gpus(3), held, Request(1, 10 * GIB), pack=True).gpus == (0,)
    # 20 GiB fits only the empty GPU.
    assert allocate(gpus(3), held, Request(1, 20 * GIB), pack=True).gpus == (2,)


def test_shared_never_on_exclusively_held_gpu() -> None:
    held = [Holding(1, (0,), None)]
    assert allocate(gpus(2), held, Request(1, GIB)).gpus == (1,)
    a = allocate(gpus(1), held, Request(1, GIB))
    assert a.reason == "waiting for 1 GPU with 1 GiB free"


def test_multi_gpu_gets_distinct_gpus() -> None:
    a = allocate(gpus(4), [Holding(1, (3,), 20 * GIB)], Request(3, 4 * GIB))
    assert len(a.gpus) == 3
    assert len(set(a.gpus)) == 3
    assert 3 not in a.gpus  # only 3 GiB left there
    assert a.gpus == tuple(sorted(a.gpus))


def test_unknown_memory_is_never_free() -> None:
    snap = [gpu(0, used=None), gpu(1, total=None), gpu(2)]
    assert allocate(snap, [], Request(1, None)).gpus == (2,)
    assert allocate(snap, [], Request(1, GIB)).gpus == (2,)
    assert not allocate(snap, [], Request(2, GIB)).ok
    assert not allocate(snap, [], Request(2, None)).ok
    assert not allocate(snap[:2], [], Request(1, GIB)).ok


def test_external_usage_is_respected() -> None:
    # 24 GiB GPU: 20 GiB used, 8 GiB of it by our job 7 (declared 8 GiB): 12 GiB external.
    snap = [gpu(0, used=20 * GIB, job_used={7: 8 * GIB})]
    held = [Holding(7, (0,), 8 * GIB)]
    [load] = gpu_loads(snap, held, GIB)
    assert load.external_mib == 12 * GIB
    assert load.free_mib == 24 * GIB - 12 * GIB - 8 * GIB - GIB
    assert allocate(snap, held, Request(1, 3 * GIB)).gpus == (0,)
    assert not allocate(snap, held, Request(1, 3 * GIB + 1)).ok


def test_usage_of_a_job_that_holds_nothing_here_is_external() -> None:
    # job 9's process shows on GPU 0 but job 9 holds GPU 1: its use counts as external on 0.
    snap = [gpu(0, used=10 * GIB, job_used={9: 10 * GIB}), gpu(1)]
    held = [Holding(9, (1,), 2 * GIB)]
    loads = gpu_loads(snap, held, 0)
    assert loads[0].external_mib == 10 * GIB
    assert loads[0].free_mib == 14 * GIB


def test_declared_vram_counts_before_nvml_sees_it() -> None:
    held = [Holding(3, (0,), 10 * GIB)]
    [load] = gpu_loads([gpu(0, used=0)], held, GIB)
    assert load.free_mib == 13 * GIB
    assert allocate([gpu(0)], held, Request(1, 13 * GIB)).ok
    assert not allocate([gpu(0)], held, Request(1, 13 * GIB + 1)).ok


def test_observed_use_above_declared_counts() -> None:
    snap = [gpu(0, used=10 * GIB, job_used={3: 10 * GIB})]
    held = [Holding(3, (0,), 4 * GIB)]
    [load] = gpu_loads(snap, held, GIB)
    assert load.external_mib == 0
    assert load.free_mib == 13 * GIB
    assert not allocate(snap, held, Request(1, 14 * GIB)).ok


def test_headroom() -> None:
    assert allocate(gpus(1), [], Request(1, 23 * GIB), headroom_mib=GIB).ok
    assert allocate(gpus(1), [], Request(1, 24 * GIB), headroom_mib=0).ok
    held = [Holding(1, (0,), 10 * GIB)]
    assert allocate(gpus(1), held, Request(1, 12 * GIB), headroom_mib=2 * GIB).ok
    assert not allocate(gpus(1), held, Request(1, 12 * GIB + 1), headroom_mib=2 * GIB).ok


def test_max_jobs_per_gpu() -> None:
    held = [Holding(1, (0,), GIB), Holding(2, (0,), GIB)]
    assert allocate(gpus(2), held, Request(1, GIB), max_jobs_per_gpu=2).gpus == (1,)
    assert allocate(gpus(2), held, Request(1, GIB), max_jobs_per_gpu=3, pack=True).gpus == (0,)
    assert not allocate(gpus(1), held, Request(1, GIB), max_jobs_per_gpu=2).ok


def test_request_larger_than_any_gpu() -> None:
    a = allocate([gpu(0, 24 * GIB), gpu(1, 48 * GIB)], [], Request(1, 60 * GIB))
    assert a.reason == "needs 60 GiB per GPU, the largest GPU has 47 GiB after headroom"


def test_contract_reason() -> None:
    held = [Holding(1, (0,), 10 * GIB)]
    a = allocate(gpus(1), held, Request(1, 20 * GIB))
    assert a == Allocation((), "waiting for 1 GPU with 20 GiB free")
    a = allocate(gpus(2), [Holding(1, (0,), 10 * GIB)], Request(2, 20 * GIB))
    assert a.reason == "waiting for 2 GPUs with 20 GiB free"


def test_more_gpus_than_the_machine_has() -> None:
    assert allocate(gpus(1), [], Request(2, None)).reason == (
        "needs 2 GPUs, this machine has 1 GPU"
    )
    assert allocate([], [], Request(1, GIB)).reason == "needs 1 GPU, this machine has no GPUs"


def test_cpu_only_request() -> None:
    assert allocate([], [], Request(0, None)) == Allocation(())
    assert allocate(gpus(1), [Holding(1, (0,), None)], Request(0, None)).ok


def test_gpu_loads_fields() -> None:
    snap = [gpu(0, used=5 * GIB, job_used={1: 3 * GIB}), gpu(1, used=None), gpu(2)]
    held = [Holding(1, (0,), 2 * GIB), Holding(2, (0,), GIB), Holding(3, (2,), None)]
    l0, l1, l2 = gpu_loads(snap, held, GIB)
    assert (l0.index, l0.jobs, l0.exclusive) == (0, 2, False)
    assert l0.external_mib == 2 * GIB
    assert l0.free_mib == 24 * GIB - 2 * GIB - (3 * GIB + GIB) - GIB
    assert (l1.free_mib, l1.external_mib, l1.total_mib) == (None, None, 24 * GIB)
    assert (l2.jobs, l2.exclusive) == (1, True)


def test_holding_on_unknown_index_is_ignored() -> None:
    assert allocate(gpus(1), [Holding(1, (5,), None)], Request(1, None)).gpus == (0,)


# ---- properties ----------------------------------------------------------------------------


@dataclass
class Scenario:
    gpus: list[GpuInfo]
    holdings: list[Holding]
    requests: list[Request]
    headroom: int
    max_jobs: int


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(1, 4))
    headroom = draw(st.sampled_from([0, 512, GIB]))
    max_jobs = draw(st.integers(1, 4))
    holdings: list[Holding] = []
    for job_id in range(1, draw(st.integers(0, 4)) + 1):
        k = draw(st.integers(1, n))
        on = tuple(
            sorted(draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True)))
        )
        vram = draw(st.one_of(st.none(), st.integers(1, 16).map(lambda g: g * GIB)))
        holdings.append(Holding(job_id, on, vram))
    snap = []
    for i in range(n):
        total = draw(st.one_of(st.none(), st.sampled_from([8, 16, 24, 80]).map(lambda g: g * GIB)))
        observed = {
            h.job_id: draw(st.integers(0, 12 * GIB))
            for h in holdings
            if i in h.gpus and draw(st.booleans())
        }
        external = draw(st.integers(0, 4 * GIB))
        used = None if draw(st.integers(0, 9)) == 0 else external + sum(observed.values())
        snap.append(gpu(i, total, used, observed))
    requests = draw(
        st.lists(
            st.builds(
                Request,
                st.integers(0, n + 1),
                st.one_of(st.none(), st.integers(1, 30 * GIB)),
            ),
            max_size=8,
        )
    )
    return Scenario(snap, holdings, requests, headroom, max_jobs)


def _state(sc: Scenario, holdings: list[Holding], g: GpuInfo) -> tuple[list[Holding], int | None]:
    """Holders on GPU g and its external use, computed independently of gpu_loads."""
    on = [h for h in holdings if g.index in h.gpus]
    if g.memory_used_mib is None or g.memory_total_mib is None:
        return on, None
    observed = sum(g.job_used_mib.get(h.job_id, 0) for h in on)
    return on, max(0, g.memory_used_mib - observed)


def _eligible(sc: Scenario, holdings: list[Holding], req: Request) -> set[int]:
    out = set()
    for g in sc.gpus:
        on, external = _state(sc, holdings, g)
        if external is None or g.memory_total_mib is None:
            continue
        if req.vram_mib is None:
            if not on and external <= sc.headroom:
                out.add(g.index)
            continue
        if any(h.vram_mib is None for h in on) or len(on) >= sc.max_jobs:
            continue
        committed = sum(max(h.vram_mib or 0, g.job_used_mib.get(h.job_id, 0)) for h in on)
        if g.memory_total_mib - external - committed - sc.headroom >= req.vram_mib:
            out.add(g.index)
    return out


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_greedy_allocation_never_overcommits(sc: Scenario) -> None:
    holdings = list(sc.holdings)
    new_ids: set[int] = set()
    next_id = 1000
    for req in sc.requests:
        eligible = _eligible(sc, holdings, req)
        a = allocate(sc.gpus, holdings, req, headroom_mib=sc.headroom, max_jobs_per_gpu=sc.max_jobs)
        if req.gpus == 0:
            assert a == Allocation(())
            continue
        # Complete and sound: it succeeds exactly when enough GPUs can take the request.
        assert a.ok == (len(eligible) >= req.gpus), (eligible, a)
        if not a.ok:
            assert a.gpus == ()
            assert a.reason
            continue
        assert len(a.gpus) == req.gpus
        assert len(set(a.gpus)) == req.gpus
        assert set(a.gpus) <= eligible
        if req.vram_mib is None:
            assert list(a.gpus) == sorted(eligible)[: req.gpus]  # lowest indices
        holdings.append(Holding(next_id, a.gpus, req.vram_mib))
        new_ids.add(next_id)
        next_id += 1

    for g in sc.gpus:
        on, external = _state(sc, holdings, g)
        new = [h for h in on if h.job_id in new_ids]
        if not new:
            continue
        assert external is not None and g.memory_total_mib is not None  # never on unknown
        if any(h.vram_mib is None for h in new):
            assert len(on) == 1  # an exclusive holder never shares
            assert external <= sc.headroom
            continue
        assert all(h.vram_mib is not None for h in on)
        assert len(on) <= sc.max_jobs
        committed = sum(max(h.vram_mib or 0, g.job_used_mib.get(h.job_id, 0)) for h in on)
        assert external + committed <= g.memory_total_mib - sc.headroom


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_loads_passed_in_give_the_same_answer(sc: Scenario) -> None:
    loads = gpu_loads(sc.gpus, sc.holdings, sc.headroom)
    for req in sc.requests:
        kw: dict[str, Any] = {"headroom_mib": sc.headroom, "max_jobs_per_gpu": sc.max_jobs}
        assert allocate(sc.gpus, sc.holdings, req, loads=loads, **kw) == allocate(
            sc.gpus, sc.holdings, req, **kw
        )


def test_reasons_name_the_processes_outside_tmuxtrain() -> None:
    snap = [replace(gpu(0, used=20 * GIB), others=((4711, "alice", 20 * GIB),))]
    a = allocate(snap, [], Request(1, None), headroom_mib=GIB)
    assert (
        a.reason
        == "waiting for 1 free GPU: GPU 0 has 20 GiB used by other processes (pid 4711, alice)"
    )
    a = allocate(snap, [], Request(1, 8 * GIB), headroom_mib=GIB)
    assert a.reason.startswith("waiting for 1 GPU with 8 GiB free: GPU 0 has 20 GiB used by other")


def test_keep_free_leaves_whole_gpus_without_tmuxtrain_jobs() -> None:
    snap = gpus(3)
    busy = [Holding(9, (0,), 4 * GIB)]
    # Exclusive: GPUs 1 and 2 are idle; one must stay so.
    assert allocate(snap, busy, Request(1, None), keep_free=1).gpus == (1,)
    a = allocate(snap, busy, Request(2, None), keep_free=1)
    assert not a.ok and "keep_free" in a.reason
    # Shared: it goes to GPU 0 (already busy) rather than take an idle GPU it may not.
    assert allocate(snap, busy, Request(1, 4 * GIB), keep_free=2).gpus == (0,)
    full = [Holding(9, (0,), 20 * GIB)]
    a = allocate(snap, full, Request(1, 8 * GIB), keep_free=2, headroom_mib=0)
    assert not a.ok and "keep_free" in a.reason
    assert allocate(snap, full, Request(1, 8 * GIB), keep_free=1, headroom_mib=0).gpus == (1,)


def test_a_reserved_gpu_names_the_job_it_waits_for() -> None:
    a = allocate(gpus(1), [], Request(1, None), exclude=frozenset({0}),
                 reserved_for="job 12 (big-run) at the head of the queue")  # fmt: skip
    assert a.reason == "GPU 0 reserved for job 12 (big-run) at the head of the queue"
