"""One GPU snapshot with each GPU's memory credited to the jobs that hold it.

Simulated GPUs are told what running jobs hold (declared vram, or the whole GPU for an
exclusive job); on NVML the per-process memory is matched to jobs' process trees (as
NVML's per-process memory counts a job's processes, `nvidia-smi --query-compute-apps`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import psutil

from tmuxtrain.core.model import GpuInfo, Job
from tmuxtrain.gpus import GpuProbe
from tmuxtrain.procs import Pid, tree


def probe_gpus(
    probe: GpuProbe, running: Sequence[Job], previous: Sequence[GpuInfo]
) -> list[GpuInfo]:
    """A snapshot from `probe` with the memory of `running` jobs credited to them, and the
    processes outside tmuxtrain named (pid, user, MiB); `previous` (the last snapshot) gives
    fake GPUs' sizes without a second read."""

    def owners() -> dict[int, int]:
        """pid -> job id, over the running jobs' process trees (their wrappers verified)."""
        out: dict[int, int] = {}
        for j in running:
            if j.pid:
                for pid in tree(Pid(j.pid, j.pid_start, j.pid_boot)):
                    out[pid] = j.id
        return out

    if probe.kind == "fake":
        totals = {g.index: g.memory_total_mib or 0 for g in previous}
        if not totals and any(j.vram_mib is None for j in running):
            totals = {g.index: g.memory_total_mib or 0 for g in probe.probe()}
        held: dict[int, dict[int, int]] = {}
        for j in running:
            for index in j.gpus:
                held.setdefault(index, {})[j.id] = (
                    j.vram_mib if j.vram_mib is not None else totals.get(index, 0)
                )
        return probe.probe(held, owners)
    snapshot = probe.probe()
    if not any(g.processes for g in snapshot):
        return snapshot
    owner = owners() if running else {}
    out = []
    for g in snapshot:
        used: dict[int, int] = {}
        others = []
        for pid, mib in g.processes:
            if pid in owner and mib is not None:
                used[owner[pid]] = used.get(owner[pid], 0) + mib
            elif pid not in owner:
                others.append((pid, _user(pid), mib or 0))
        out.append(dataclasses.replace(g, job_used_mib=used, others=tuple(others)))
    return out


def _user(pid: int) -> str:
    """The login name that owns `pid` ('' when it cannot be told)."""
    try:
        return str(psutil.Process(pid).username())
    except (psutil.Error, KeyError):
        return ""
