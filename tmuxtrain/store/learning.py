"""Learned VRAM in the store: jobs' measured peaks, sweeps' largest peaks, learned asks.

The peak of an attempt only grows, and only while that attempt is the job's (the claim
of a new attempt clears it); an ask is only changed while the job waits, and never one
that was raised after an out-of-memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from tmuxtrain.core.learn import SweepKey
from tmuxtrain.store.history import add_event
from tmuxtrain.store.jobs import Store


def record_peaks(store: Store, peaks: Mapping[int, tuple[int, int]]) -> None:
    """Raise running jobs' measured peaks: job id -> (attempt, MiB per GPU)."""
    if not peaks:
        return
    with store.tx() as db:
        db.executemany(
            "UPDATE jobs SET vram_peak_mib = ? WHERE id = ? AND attempt = ?"
            " AND state = 'running' AND (vram_peak_mib IS NULL OR vram_peak_mib < ?)",
            [(mib, job_id, attempt, mib) for job_id, (attempt, mib) in peaks.items()],
        )


def sweep_peaks(store: Store, keys: Iterable[SweepKey]) -> dict[SweepKey, int]:
    """The largest measured peak of each sweep's succeeded jobs (of that GPU count)."""
    sweeps = sorted({s for s, _ in keys})
    if not sweeps:
        return {}
    rows = store.db.execute(
        "SELECT json_extract(spec, '$.sweep'), coalesce(json_extract(spec, '$.gpus'), 1),"
        " max(vram_peak_mib) FROM jobs"
        " WHERE json_extract(spec, '$.sweep') IN (SELECT value FROM json_each(?))"
        " AND state = 'succeeded' AND vram_peak_mib IS NOT NULL GROUP BY 1, 2",
        (json.dumps(sweeps),),
    )
    return {(str(s), int(g)): int(peak) for s, g, peak in rows}


def set_learned(
    store: Store, asks: Mapping[int, int | None], peaks: Mapping[int, int], now: float
) -> list[int]:
    """Set waiting jobs' learned asks (None: back to their declaration), each with a
    `learned` event naming the sweep's peak it came from; the ids changed."""
    changed = []
    with store.tx() as db:
        for job_id, ask in asks.items():
            cur = db.execute(
                "UPDATE jobs SET vram_ask_mib = ?, vram_source = ? WHERE id = ?"
                " AND state = 'pending' AND queued = 0 AND vram_source IN ('declared', 'learned')",
                (ask, "declared" if ask is None else "learned", job_id),
            )
            if cur.rowcount == 1:
                changed.append(job_id)
                add_event(
                    db, now, job_id, "learned", {"vram_mib": ask, "peak_mib": peaks.get(job_id)}
                )
    store.refresh_pending(changed)
    return changed
