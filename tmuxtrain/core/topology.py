"""Which set of GPUs a multi-GPU job gets: the best-linked one.

How two GPUs are linked, best first (the tiers of `nvidia-smi topo -m`):

    NVLINK  0  an NVLink between them                                   (NV#)
    SWITCH  1  behind one PCIe switch, or on one board                  (PIX)
    SOCKET  2  one CPU socket: several switches, one host bridge or     (PXB, PHB, NODE)
               one NUMA node
    FAR     3  across CPU sockets, or not known                         (SYS)

A job whose GPUs talk over NVLink all-reduces its gradients several times faster than one
whose traffic crosses the CPU sockets, so among the GPUs that can take a request the set
whose worst link is best wins, then the one whose links add up to least; the allocator's
own preference (lowest index, fewest jobs...) breaks ties. Without any link known the
choice is exactly the preference order, as before topology was read.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

NVLINK, SWITCH, SOCKET, FAR = 0, 1, 2, 3
TIER_NAMES = {NVLINK: "NVLink", SWITCH: "PCIe switch", SOCKET: "CPU socket", FAR: "system"}

# Above this many candidate sets the search is greedy (from every seed GPU) instead of
# exhaustive: C(8, 4) is 70, but 56 MIG devices taken 4 at a time would be 367,290.
EXHAUSTIVE_LIMIT = 2000

Links = Mapping[int, Mapping[int, int]]  # gpu index -> {peer index: tier}


def tier(links: Links, a: int, b: int) -> int:
    """How `a` and `b` are linked; either side may tell (a link goes both ways), the better
    answer wins, and FAR when neither knows."""
    return min(links.get(a, {}).get(b, FAR), links.get(b, {}).get(a, FAR))


def set_cost(links: Links, gpus: Sequence[int]) -> tuple[int, int]:
    """(worst link, sum of links) over every pair of `gpus`: lower is better linked."""
    tiers = [tier(links, a, b) for a, b in itertools.combinations(gpus, 2)]
    return (max(tiers, default=NVLINK), sum(tiers))


def best_linked(
    candidates: Sequence[int],
    k: int,
    links: Links,
    allowed: Callable[[Sequence[int]], bool] | None = None,
) -> tuple[int, ...] | None:
    """The `k` of `candidates` (given in the caller's order of preference) that are best
    linked (`set_cost`), earlier-preferred first among equals; None when no `k` of them
    pass `allowed` (a predicate on a partial set, which may only get stricter as the set
    grows, e.g. "at most 2 idle GPUs"). Returned in preference order.
    """
    if k <= 0:
        return ()
    ok = allowed or (lambda chosen: True)
    known = links and any(links.get(c) for c in candidates)
    if k == 1 or not known:
        return _in_order(candidates, k, ok)
    if math.comb(len(candidates), k) <= EXHAUSTIVE_LIMIT:
        best: tuple[int, ...] | None = None
        best_cost: tuple[int, int] | None = None
        # combinations() yields sets in preference order, so the first of a cost wins.
        for combo in itertools.combinations(candidates, k):
            cost = set_cost(links, combo)
            if (best_cost is None or cost < best_cost) and ok(combo):
                best, best_cost = combo, cost
        return best
    return _greedy(candidates, k, links, ok)


def _in_order(
    candidates: Sequence[int], k: int, ok: Callable[[Sequence[int]], bool]
) -> tuple[int, ...] | None:
    chosen: list[int] = []
    for c in candidates:
        if len(chosen) == k:
            break
        if ok([*chosen, c]):
            chosen.append(c)
    return tuple(chosen) if len(chosen) == k else None


def _greedy(
    candidates: Sequence[int], k: int, links: Links, ok: Callable[[Sequence[int]], bool]
) -> tuple[int, ...] | None:
    """From each seed, add the candidate whose worst and total link to the set so far are
    best; the best of those sets."""
    rank = {c: r for r, c in enumerate(candidates)}
    best: tuple[int, ...] | None = None
    best_cost: tuple[int, int] | None = None
    for seed in candidates:
        chosen = [seed]
        if not ok(chosen):
            continue
        while len(chosen) < k:
            options = [
                (max(ts), sum(ts), rank[c], c)
                for c in candidates
                if c not in chosen
                for ts in ([tier(links, c, d) for d in chosen],)
                if ok([*chosen, c])
            ]
            if not options:
                break
            chosen.append(min(options)[3])
        if len(chosen) == k:
            combo = tuple(sorted(chosen, key=rank.__getitem__))
            cost = set_cost(links, combo)
            if best_cost is None or cost < best_cost:
                best, best_cost = combo, cost
    return best
