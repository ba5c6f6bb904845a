"""Learned VRAM in the store: jobs' measured peaks, sweeps' largest peaks, learned asks.

The peak of an attempt only grows, and only while that attempt is the job's (the claim
of a new attempt clears it); an ask is only changed while the job waits, and never one
that was raised after an out-of-memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from tmuxtrain.core.learn import SweepKey
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
    `learned` event naming the sweep's peak it came from; the ids changed.

    A sweep of 10,000 jobs learns at once: a few statements for all of them, and the
    scheduler's queue cache changed in place rather than read again."""
    with store.tx() as db:
        ids = [
            int(r[0])
            for r in db.execute(
                "SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))"
                " AND state = 'pending' AND queued = 0"
                " AND vram_source IN ('declared', 'learned')",
                (json.dumps(list(asks)),),
            )
        ]
        db.executemany(
            "UPDATE jobs SET vram_request_mib = ?, vram_source = ? WHERE id = ?",
            [(asks[i], _source(asks[i]), i) for i in ids],
        )
        db.executemany(
            "INSERT INTO events (t, job_id, kind, data) VALUES (?, ?, 'learned', ?)",
            [(now, i, json.dumps({"vram_mib": asks[i], "peak_mib": peaks.get(i)})) for i in ids],
        )
    cached = store._pending  # the store's own package: its pending-queue cache
    for i in ids:
        job = cached.get(i) if cached is not None else None
        if job is not None:
            job.vram_request_mib, job.vram_source = asks[i], _source(asks[i])
    return ids


def _source(ask: int | None) -> str:
    return "declared" if ask is None else "learned"
