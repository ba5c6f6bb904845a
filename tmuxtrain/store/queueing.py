"""Jobs a runner with a queue of its own holds (Slurm): pending in tmuxtrain, submitted
there. Each step is conditional on the attempt, so a crash between claiming a job and
recording its id there can never submit it twice unnoticed (the claim comes first)."""

from __future__ import annotations

from tmuxtrain.core.model import Job, JobState
from tmuxtrain.store.history import add_event
from tmuxtrain.store.jobs import Store


def claim_queued(store: Store, job: Job, reason: str) -> bool:
    """Mark a pending job as handed to its runner (before it is submitted there); False
    when it changed meanwhile (held, cancelled, started)."""
    with store.tx() as db:
        cur = db.execute(
            "UPDATE jobs SET queued = 1, external_id = NULL, reason = ? WHERE id = ?"
            " AND state = 'pending' AND queued = 0 AND held = 0 AND attempt = ?",
            (reason, job.id, job.attempt),
        )
    store.refresh_pending([job.id])
    return cur.rowcount == 1


def record_external(store: Store, job: Job, external_id: str, reason: str, now: float) -> bool:
    """The runner's id for a claimed job (a Slurm job id), with a `submitted` event."""
    with store.tx() as db:
        cur = db.execute(
            "UPDATE jobs SET external_id = ?, reason = ? WHERE id = ? AND queued = 1"
            " AND attempt = ? AND state IN ('pending', 'running')",
            (external_id, reason, job.id, job.attempt),
        )
        if cur.rowcount == 1:
            add_event(db, now, job.id, "queued", {"external_id": external_id})
    store.refresh_pending([job.id])
    return cur.rowcount == 1


def unqueue(store: Store, job: Job, reason: str, not_before: float | None) -> bool:
    """A claim whose submission failed before the runner took it: pending again, same
    attempt (it never ran)."""
    with store.tx() as db:
        cur = db.execute(
            "UPDATE jobs SET queued = 0, external_id = NULL, reason = ?, not_before = ?"
            " WHERE id = ? AND state = 'pending' AND queued = 1 AND attempt = ?",
            (reason, not_before, job.id, job.attempt),
        )
    store.refresh_pending([job.id])
    return cur.rowcount == 1


def fail_queued(store: Store, job: Job, reason: str, now: float) -> bool:
    """A submission the runner refused: the job failed (it never ran)."""
    return store.transition(
        job.id, JobState.FAILED, now, expect=[JobState.PENDING], at_attempt=job.attempt,
        event={"reason": reason}, where_queued=True, reason=reason, finished_at=now,
        queued=False,
    )  # fmt: skip


def start_queued(store: Store, job: Job, started_at: float, now: float) -> bool:
    """The runner started a queued job: it is running (`started`, with the start time the
    runner saw)."""
    return store.transition(
        job.id, JobState.RUNNING, now, expect=[JobState.PENDING], at_attempt=job.attempt,
        event={"name": job.name, "attempt": job.attempt, "external_id": job.external_id},
        where_queued=True, started_at=started_at, reason="",
    )  # fmt: skip


def requeued(store: Store, job: Job, reason: str, now: float) -> bool:
    """The runner put a running job back in its queue (Slurm's requeue after a
    preemption): pending again, same attempt, still queued there."""
    return store.transition(
        job.id, JobState.PENDING, now, expect=[JobState.RUNNING], at_attempt=job.attempt,
        kind="requeued", event={"reason": reason, "external_id": job.external_id},
        where_queued=True, reason=reason, started_at=None,
    )  # fmt: skip


def dependencies(store: Store, ids: set[int]) -> dict[int, tuple[JobState, str, str | None]]:
    """(state, name, id in its runner) of these jobs: what a queued job's dependencies need
    (a job already in Slurm is waited for there, with afterok)."""
    if not ids:
        return {}
    import json

    rows = store.db.execute(
        "SELECT id, state, name, CASE WHEN queued = 1 OR state = 'running' THEN external_id END"
        " FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(ids)),),
    )
    return {i: (JobState(st), name, ext) for i, st, name, ext in rows}
