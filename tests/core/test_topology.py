"""Topology-aware placement: a multi-GPU job gets the best-linked set of free GPUs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from tmuxtrain.core.allocate import allocate
from tmuxtrain.core.model import GpuInfo, Holding, Request
from tmuxtrain.core.topology import FAR, NVLINK, SOCKET, SWITCH, best_linked, set_cost, tier

GIB = 1024


def dgx_like() -> dict[int, dict[int, int]]:
    """8 GPUs, two CPU sockets of two PCIe switches each; NVLink pairs (0,1) (2,3) (4,5) (6,7)
    and, across the switches of socket 0, (1,2) as well."""
    links: dict[int, dict[int, int]] = {i: {} for i in range(8)}
    for a, b in itertools.combinations(range(8), 2):
        if a // 4 != b // 4:
            t = FAR
        elif a // 2 != b // 2:
            t = SOCKET
        else:
            t = SWITCH
        links[a][b] = t
    for a, b in [(0, 1), (2, 3), (4, 5), (6, 7), (1, 2)]:
        links[a][b] = NVLINK
    return links


def gpu(index: int, links: dict[int, int] | None = None, total: int = 80 * GIB) -> GpuInfo:
    return GpuInfo(
        index=index,
        uuid=f"GPU-{index}",
        name="A100",
        memory_total_mib=total,
        memory_used_mib=0,
        links=tuple(sorted((links or {}).items())),
    )


def machine(links: dict[int, dict[int, int]]) -> list[GpuInfo]:
    return [gpu(i, links.get(i)) for i in range(len(links))]


def test_a_link_told_by_either_side_counts_and_unknown_is_far() -> None:
    links = {0: {1: NVLINK}, 2: {}}
    assert tier(links, 1, 0) == NVLINK
    assert tier(links, 0, 2) == FAR
    assert set_cost(links, (0, 1)) == (NVLINK, 0)
    assert set_cost(links, (0, 1, 2)) == (FAR, 6)


def test_nvlink_pair_wins_over_lower_indices() -> None:
    links = dgx_like()
    # GPU 0 busy: the lowest free pair (1, 2) is NVLinked too; with 1 busy, (2, 3) is.
    assert best_linked([1, 2, 3, 4, 5, 6, 7], 2, links) == (1, 2)
    assert best_linked([0, 2, 3, 4, 5, 6, 7], 2, links) == (2, 3)
    # Only 0 and 3 of socket 0 free, and all of socket 1: the NVLink pair 4,5 wins.
    assert best_linked([0, 3, 4, 5, 7], 2, links) == (4, 5)


def test_then_one_switch_then_one_socket() -> None:
    links = dgx_like()
    # No NVLink pair free: 0 and 4 cross sockets, 4 and 6 share a socket, 6 and 7 a switch.
    assert best_linked([0, 4, 6], 2, links) == (4, 6)
    assert best_linked([0, 4, 6, 7], 2, links) == (6, 7)


def test_four_gpus_stay_on_one_socket_when_they_can() -> None:
    links = dgx_like()
    free = [0, 1, 3, 4, 5, 6, 7]
    chosen = best_linked(free, 4, links)
    assert chosen == (4, 5, 6, 7)  # socket 1, whole; socket 0 has only three free
    assert set_cost(links, chosen)[0] == SOCKET


def test_without_links_the_preference_order_stands() -> None:
    assert best_linked([3, 1, 2, 0], 2, {}) == (3, 1)
    assert best_linked([3, 1, 2, 0], 1, dgx_like()) == (3,)
    assert best_linked([3, 1], 3, {}) is None


def test_a_constraint_on_the_set_is_kept() -> None:
    links = dgx_like()

    def at_most_one_of_0_to_3(chosen: Sequence[int]) -> bool:
        return sum(1 for i in chosen if i < 4) <= 1

    assert best_linked([0, 1, 2, 4], 2, links, at_most_one_of_0_to_3) == (0, 4)
    assert best_linked([0, 1, 2], 2, links, at_most_one_of_0_to_3) is None


def test_many_candidates_search_greedily_but_still_find_the_nvlink_island() -> None:
    # 60 devices, only 40..43 NVLinked among themselves: C(60, 4) is far above the limit.
    links: dict[int, dict[int, int]] = {i: {} for i in range(60)}
    for a, b in itertools.combinations(range(40, 44), 2):
        links[a][b] = NVLINK
    assert best_linked(list(range(60)), 4, links) == (40, 41, 42, 43)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=28, max_size=28),
    st.sets(st.integers(0, 7), min_size=1, max_size=8),
    st.integers(1, 4),
)
def test_no_allowed_set_is_better_linked(tiers: list[int], free: set[int], k: int) -> None:
    """Against brute force: the chosen set is as well linked as any, and the first of
    those in preference order."""
    links: dict[int, dict[int, int]] = {i: {} for i in range(8)}
    for t, (a, b) in zip(tiers, itertools.combinations(range(8), 2), strict=True):
        links[a][b] = t
    order = sorted(free, reverse=True)  # some preference other than the index
    chosen = best_linked(order, k, links)
    combos = list(itertools.combinations(order, k))
    if not combos:
        assert chosen is None
        return
    best = min(combos, key=lambda c: set_cost(links, c))
    assert chosen == best


def test_allocator_gives_a_two_gpu_job_its_nvlink_pair() -> None:
    snap = machine(dgx_like())
    busy = [Holding(1, (1,), None), Holding(2, (5,), None)]
    # Free: 0, 2, 3, 4, 6, 7. Lowest indices would be 0 and 2 (PCIe across switches).
    assert allocate(snap, busy, Request(2, None)).gpus == (2, 3)
    assert allocate(snap, busy, Request(2, 20 * GIB)).gpus == (2, 3)
    # Four GPUs: 4, 6, 7 and one of socket 0 would cross sockets; 0, 2, 3 are one socket
    # but only three. Whatever is chosen, it is as well linked as possible.
    four = allocate(snap, busy, Request(4, None)).gpus
    assert len(four) == 4 and set_cost(dgx_like(), four)[0] == FAR


def test_shared_jobs_still_spread_among_equally_linked_sets() -> None:
    links = {0: {1: NVLINK}, 2: {3: NVLINK}}
    snap = [gpu(i, links.get(i)) for i in range(4)]
    held = [Holding(9, (0,), 10 * GIB), Holding(8, (1,), 10 * GIB)]
    # (2, 3) is as well linked as (0, 1) and has no jobs: spread takes it.
    assert allocate(snap, held, Request(2, 10 * GIB)).gpus == (2, 3)
    # Packing prefers the busy pair.
    assert allocate(snap, held, Request(2, 10 * GIB), pack=True).gpus == (0, 1)


def test_keep_free_still_holds_with_topology() -> None:
    links = {0: {1: NVLINK}, 2: {3: NVLINK}}
    snap = [gpu(i, links.get(i)) for i in range(4)]
    held = [Holding(9, (0,), 10 * GIB)]
    # keep_free 2: of the 3 idle GPUs only one may be taken, so the NVLink pair (0, 1)
    # (one busy, one idle) is the only set allowed.
    a = allocate(snap, held, Request(2, 10 * GIB), keep_free=2)
    assert a.gpus == (0, 1)
    assert not allocate(snap, held, Request(2, None), keep_free=2).ok
