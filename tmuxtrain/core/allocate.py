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
        loads.append(GpuLoad(g.index, len(held), exclusive, free, external, g.memory_total_mib))
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
) -> Allocation:
    """Pick `request.gpus` distinct GPUs that can take the request, never over-committing one.

    Exclusive requests take the lowest free indices. Shared requests spread by default: the
    GPUs with the fewest jobs, then the most free memory, since jobs on one GPU share its
    compute. With `pack`, GPUs that already run jobs come first, then the least free memory
    that still fits (best fit), which keeps whole GPUs free. `loads` may be passed in when
    the caller already computed them; GPUs in `exclude` (reserved for another job) are not
    offered.
    """
    if request.gpus == 0:
        return Allocation(())
    if loads is None:
        loads = gpu_loads(gpus, holdings, headroom_mib)
    if exclude:
        free = [x for x in loads if x.index not in exclude]
        alloc = allocate(gpus, holdings, request, headroom_mib=headroom_mib,
                         max_jobs_per_gpu=max_jobs_per_gpu, loads=free, pack=pack)  # fmt: skip
        if alloc.ok:
            return alloc
        plain = allocate(gpus, holdings, request, headroom_mib=headroom_mib,
                         max_jobs_per_gpu=max_jobs_per_gpu, loads=loads, pack=pack)  # fmt: skip
        if plain.ok:  # it would fit, but only on GPUs the head of the queue waits for
            held = ",".join(map(str, sorted(exclude)))
            return Allocation((), f"GPU {held} reserved for the job at the head of the queue")
        return plain
    if request.gpus > len(loads):
        have = "no GPUs" if not loads else f"{_plural(len(loads), 'GPU')}"
        why = f"needs {_plural(request.gpus, 'GPU')}, this machine has {have}"
        return Allocation((), why, never=True)
    if request.vram_mib is None:
        fit = [
            x.index
            for x in loads
            if x.jobs == 0 and x.external_mib is not None and x.external_mib <= headroom_mib
        ]
        if len(fit) >= request.gpus:
            return Allocation(tuple(sorted(fit)[: request.gpus]))
        return Allocation((), f"waiting for {_plural(request.gpus, 'free GPU')}")
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
    if len(fit_loads) < request.gpus:
        return Allocation(
            (), f"waiting for {_plural(request.gpus, 'GPU')} with {format_mib(need)} free"
        )
    if pack:
        fit_loads.sort(key=lambda x: (x.jobs == 0, x.free_mib, x.index))
    else:
        fit_loads.sort(key=lambda x: (x.jobs, -(x.free_mib or 0), x.index))
    return Allocation(tuple(sorted(x.index for x in fit_loads[: request.gpus])))


def reserve(loads: Sequence[GpuLoad], request: Request, headroom_mib: int) -> frozenset[int]:
    """The GPUs a job that cannot start now is first in line for (for backfill: later jobs
    must not take them, or the head would wait for those too). Exclusive requests reserve
    the GPUs with the fewest jobs, shared ones those with the most free memory; a request
    that can never fit reserves nothing."""
    if request.gpus == 0 or request.gpus > len(loads):
        return frozenset()
    if request.vram_mib is not None:
        need = request.vram_mib
        able = [x for x in loads if (x.total_mib or 0) - headroom_mib >= need]
        ranked = sorted(able, key=lambda x: (x.free_mib is None, -(x.free_mib or 0), x.index))
    else:
        ranked = sorted(loads, key=lambda x: (x.external_mib is None, x.jobs, x.index))
    if len(ranked) < request.gpus:
        return frozenset()
    return frozenset(x.index for x in ranked[: request.gpus])


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
