"""The VRAM learner: measures running jobs' peak GPU memory, and gives waiting jobs of a
sweep the size its succeeded jobs were measured at (core.learn), so they share GPUs.

A peak is the job's memory on one of its GPUs as the probe credited it to the job's
process tree (NVML per-process memory; on simulated GPUs, the `processes` listed for its
pids), never what it merely holds by declaration.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tmuxtrain.core.learn import learnable, learned_asks, sweep_of
from tmuxtrain.core.model import Config, GpuInfo, Job
from tmuxtrain.core.units import format_mib
from tmuxtrain.store import Store
from tmuxtrain.store.learning import record_peaks, set_learned, sweep_peaks

log = logging.getLogger("tmuxtrain.daemon")


class VramLearner:
    """`observe` each probe, `learn` before each decision."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config

    def observe(self, running: Sequence[Job], gpus: Sequence[GpuInfo]) -> None:
        """Record the running jobs' peaks that grew (per GPU, the most on any of its GPUs)."""
        grown: dict[int, tuple[int, int]] = {}
        for job in running:
            seen = [
                g.job_used_mib[job.id]
                for g in gpus
                if g.index in job.gpus and job.id in g.job_used_mib and job.id not in g.unmeasured
            ]
            if seen and max(seen) > (job.vram_peak_mib or 0):
                grown[job.id] = (job.attempt, max(seen))
        record_peaks(self.store, grown)

    def learn(self, pending: list[Job], gpus: Sequence[GpuInfo], now: float) -> list[Job]:
        """`pending` with the learned asks that changed written (and read back)."""
        todo = [j for j in pending if j.vram_source == "learned" or learnable(j)]
        sizes = [g.memory_total_mib for g in gpus if g.memory_total_mib is not None]
        if not todo or not sizes:
            return pending
        peaks = sweep_peaks(self.store, {sweep_of(j) for j in todo if j.spec.sweep is not None})
        asks = learned_asks(todo, peaks, max(sizes) - self.config.headroom_mib)
        if not asks:
            return pending
        from_peak = {
            j.id: peaks[key]
            for j in todo
            if asks.get(j.id) is not None and (key := sweep_of(j)) in peaks
        }
        changed = set_learned(self.store, asks, from_peak, now)
        if changed:
            sizes_set = sorted({asks[i] or 0 for i in changed})
            shown = ", ".join(format_mib(a) if a else "exclusive" for a in sizes_set)
            log.info("learned VRAM for %d job(s): %s", len(changed), shown)
            return self.store.pending()
        return pending
