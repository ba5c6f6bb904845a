"""GPU snapshot + what running jobs hold + a request -> GPU indices, or why not.

Free memory on a GPU is counted conservatively, because a job allocates its memory some
seconds after it starts and NVML cannot see that yet:

    external  = used (NVML) - what NVML attributes to tmuxtrain jobs   (other users, Xorg...)
    committed = sum over tmuxtrain jobs of max(declared vram, observed use)
    free      = total - external - committed - headroom

A GPU whose total or used memory is unknown is never free. A job that declares no `vram`
wants its GPUs exclusively: no other tmuxtrain job on them and at most `headroom` used by
anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tmuxtrain.core.model import Allocation, GpuInfo, Holding, Request
from tmuxtrain.core.topology import best_linked
from tmuxtrain.core.units import format_mib


@dataclass(frozen=True)
class GpuLoad:
    """One GPU as the allocator sees it after counting every holding."""

    index: int
    jobs: int
    exclusive: bool  # held whole by one job
    free_mib: int | None  # None: unknown, so not free
    external_mib: int | None
    total_mib: int | None
    others: tuple[tuple[int, str, int], ...] = ()  # (pid, user, MiB) outside tmuxtrain
    links: tuple[tuple[int, int], ...] = ()  # (peer index, topology tier), see core.topology


def gpu_loads(
    gpus: Sequence[GpuInfo], holdings: Sequence[Holding], headroom_mib: int
) -> list[GpuLoad]:
    """Per-GPU load; shared by the allocator and by `tmuxtrain gpus`."""
    on: dict[int, list[Holding]] = {g.index: [] for g in gpus}
    for h in holdings:
        for i in h.gpus:
            if i in on:
                on[i].append(h)
    loads = []
    for g in gpus:
        held = on[g.index]
        observed = sum(g.job_used_mib.get(h.job_id, 0) for h in held)
        committed = sum(
            max(h.vram_mib, g.job_used_mib.get(h.job_id, 0)) for h in held if h.vram_mib is not None
        )
        exclusive = any(h.vram_mib is None for h in held)
        if g.memory_total_mib is None or g.memory_used_mib is None:
            external = free = None
        else:
            external = max(0, g.memory_used_mib - observed)
            free = g.memory_total_mib - external - committed - headroom_mib
        loads.append(
            GpuLoad(
                g.index,
                len(held),
                exclusive,
                free,
                external,
                g.memory_total_mib,
                g.others,
                g.links,
            )
        )
    return loads


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def allocate(
    gpus: Sequence[GpuInfo],
    holdings: Sequence[Holding],
    request: Request,
    *,
    headroom_mib: int = 1024,
    max_jobs_per_gpu: int = 4,
    loads: Sequence[GpuLoad] | None = None,
    exclude: frozenset[int] = frozenset(),
    pack: bool = False,
    keep_free: int = 0,
    reserved_for: str = "the job at the head of the queue",
) -> Allocation:
    """Pick `request.gpus` distinct GPUs that can take the request, never over-committing one.

    A multi-GPU request gets the best-linked set of the GPUs that can take it (NVLink,
    then one PCIe switch, then one CPU socket: core.topology), and among equally linked
    sets the preferred one. Exclusive requests prefer the lowest free indices. Shared
    requests spread by default: the GPUs with the fewest jobs, then the most free memory,
    since jobs on one GPU share its compute. With `pack`, GPUs that already run jobs come
    first, then the least free memory that still fits (best fit), which keeps whole GPUs
    free. `loads` may be passed in when
    the caller already computed them; GPUs in `exclude` (reserved for `reserved_for`) are
    not offered. `keep_free` whole GPUs stay without tmuxtrain jobs. The reason, when the
    request cannot be placed, says what it waits for, naming memory that processes outside
    tmuxtrain hold where that is what stands in the way.
    """
    if request.gpus == 0:
        return Allocation(())
    if loads is None:
        loads = gpu_loads(gpus, holdings, headroom_mib)
    idle = sum(x.jobs == 0 for x in loads)
    budget = (idle - keep_free, keep_free > 0 and idle - keep_free < request.gpus <= idle)
    if exclude:
        free = [x for x in loads if x.index not in exclude]
        alloc = _place(request, free, headroom_mib, max_jobs_per_gpu, pack, budget)
        if alloc.ok:
            return alloc
        plain = _place(request, loads, headroom_mib, max_jobs_per_gpu, pack, budget)
        if plain.ok:  # it would fit, but only on GPUs the head of the queue waits for
            held = ",".join(map(str, sorted(exclude)))
            return Allocation((), f"GPU {held} reserved for {reserved_for}")
        return plain
    return _place(request, loads, headroom_mib, max_jobs_per_gpu, pack, budget)


def _place(
    request: Request,
    loads: Sequence[GpuLoad],
    headroom_mib: int,
    max_jobs_per_gpu: int,
    pack: bool,
    budget: tuple[int, bool],
) -> Allocation:
    """`allocate` over these loads; at most `budget[0]` GPUs without a tmuxtrain job may be
    taken (keep_free), and `budget[1]` says keep_free is what stands in the way."""
    idle_budget, held_by_keep_free = budget
    if request.gpus > len(loads):
        have = "no GPUs" if not loads else f"{_plural(len(loads), 'GPU')}"
        why = f"needs {_plural(request.gpus, 'GPU')}, this machine has {have}"
        return Allocation((), why, never=True)
    kept = "; keep_free keeps the other whole GPUs for others" if held_by_keep_free else ""
    if request.vram_mib is None:
        fit = [
            x.index
            for x in loads
            if x.jobs == 0 and x.external_mib is not None and x.external_mib <= headroom_mib
        ]
        if len(fit) >= request.gpus and idle_budget >= request.gpus:
            chosen = best_linked(sorted(fit), request.gpus, _links(loads))
            assert chosen is not None  # enough fit, and no constraint among them
            return Allocation(tuple(sorted(chosen)))
        why = f"waiting for {_plural(request.gpus, 'free GPU')}"
        return Allocation((), why + (kept or _others(loads, headroom_mib)))
    need = request.vram_mib
    biggest = max((x.total_mib or 0) - headroom_mib for x in loads)
    if need > biggest:
        return Allocation(
            (),
            f"needs {format_mib(need)} per GPU, the largest GPU has {format_mib(max(biggest, 0))}"
            " after headroom",
            never=True,
        )
    fit_loads = [
        x
        for x in loads
        if not x.exclusive
        and x.jobs < max_jobs_per_gpu
        and x.free_mib is not None
        and x.free_mib >= need
    ]
    if pack:
        fit_loads.sort(key=lambda x: (x.jobs == 0, x.free_mib, x.index))
    else:
        fit_loads.sort(key=lambda x: (x.jobs, -(x.free_mib or 0), x.index))
    idle = {x.index for x in fit_loads if x.jobs == 0}

    def within_budget(chosen: Sequence[int]) -> bool:  # keep_free: so many idle GPUs at most
        return sum(1 for i in chosen if i in idle) <= idle_budget

    best = best_linked([x.index for x in fit_loads], request.gpus, _links(loads), within_budget)
    if best is None:
        why = f"waiting for {_plural(request.gpus, 'GPU')} with {format_mib(need)} free"
        return Allocation((), why + (kept or _others(loads, headroom_mib)))
    return Allocation(tuple(sorted(best)))


def _links(loads: Sequence[GpuLoad]) -> dict[int, dict[int, int]]:
    """gpu index -> {peer: topology tier}, for the GPUs whose links are known."""
    return {x.index: dict(x.links) for x in loads if x.links}


def _others(loads: Sequence[GpuLoad], headroom_mib: int) -> str:
    """': GPU 3 has 20 GiB used by other processes (pid 4711, alice)' for the GPU where
    processes outside tmuxtrain hold the most, when they hold more than the headroom."""
    held = [x for x in loads if (x.external_mib or 0) > headroom_mib]
    if not held:
        return ""
    x = max(held, key=lambda x: x.external_mib or 0)
    who = ", ".join(f"pid {pid}, {user}" if user else f"pid {pid}" for pid, user, _ in x.others[:3])
    more = "..." if len(x.others) > 3 else ""
    return f": GPU {x.index} has {format_mib(x.external_mib or 0)} used by other processes" + (
        f" ({who}{more})" if who else ""
    )


def reserve(loads: Sequence[GpuLoad], request: Request, headroom_mib: int) -> frozenset[int]:
    """The GPUs a job that cannot start now is first in line for (for backfill: later jobs
    must not take them, or the head would wait for those too): the first of `candidates`."""
    return frozenset(candidates(loads, request, headroom_mib)[: request.gpus])


def candidates(loads: Sequence[GpuLoad], request: Request, headroom_mib: int) -> list[int]:
    """The GPUs a job that cannot start now could be given, best first: for exclusive
    requests those with the fewest jobs, for shared ones those with the most free memory;
    none for a request that can never fit."""
    if request.gpus == 0 or request.gpus > len(loads):
        return []
    if request.vram_mib is not None:
        need = request.vram_mib
        able = [x for x in loads if (x.total_mib or 0) - headroom_mib >= need]
        ranked = sorted(able, key=lambda x: (x.free_mib is None, -(x.free_mib or 0), x.index))
    else:
        ranked = sorted(loads, key=lambda x: (x.external_mib is None, x.jobs, x.index))
    if len(ranked) < request.gpus:
        return []
    return [x.index for x in ranked]


def cuda_visible_devices(gpus: Sequence[GpuInfo], indices: Iterable[int]) -> str:
    """The CUDA_VISIBLE_DEVICES value for the GPUs with these `index`es.

    Plain GPUs by index (NVML's numbering, which CUDA follows under
    `CUDA_DEVICE_ORDER=PCI_BUS_ID`); MIG devices by their `MIG-...` uuid, the only way CUDA
    names them. Note that a CUDA process sees at most one MIG device. Empty `indices` gives
    "", which hides every GPU (a CPU-only job). Raises ValueError for an unknown index.
    """
    by_index = {g.index: g for g in gpus}
    parts = []
    for i in indices:
        gpu = by_index.get(i)
        if gpu is None:
            raise ValueError(f"no GPU with index {i} (have {sorted(by_index)})")
        parts.append(gpu.uuid if gpu.uuid.startswith("MIG-") else str(gpu.index))
    return ",".join(parts)


def usable(
    infos: Sequence[GpuInfo], allowed: Iterable[int] | None, visible: str | None
) -> list[GpuInfo]:
    """The GPUs tmuxtrain may use: those the config's `gpus:` lists (all when None), and of
    those only the ones `CUDA_VISIBLE_DEVICES` names when the scheduler was started with it
    (indices, or `GPU-...`/`MIG-...` uuids; "" names none). Indices stay NVML's."""
    keep = {g.index for g in infos} if allowed is None else set(allowed)
    if visible is not None:
        names = {v.strip() for v in visible.split(",") if v.strip()}
        keep &= {g.index for g in infos if str(g.index) in names or g.uuid in names}
    return [g for g in infos if g.index in keep]
