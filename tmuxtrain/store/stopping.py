"""Stopping a running attempt for the scheduler's own reasons (preemption), conditional
on the attempt, so a stop can never reach the next attempt or revive an ended one."""

from __future__ import annotations

from tmuxtrain.core.model import Job
from tmuxtrain.store.history import add_event
from tmuxtrain.store.jobs import Store


def request_stop(store: Store, job: Job, reason: str, now: float, kind: str) -> bool:
    """Ask the scheduler to stop `job`'s running attempt (Ctrl-C, then SIGTERM and SIGKILL
    after the grace) for `reason`, with the event `kind`; False when that attempt no longer
    runs or is being stopped already (cancel, timeout)."""
    with store.tx() as db:
        cur = db.execute(
            "UPDATE jobs SET cancel_requested_at = ?, cancel_reason = ? WHERE id = ?"
            " AND attempt = ? AND state = 'running' AND cancel_requested_at IS NULL",
            (now, reason, job.id, job.attempt),
        )
        if cur.rowcount == 1:
            add_event(db, now, job.id, kind, {"reason": reason, "attempt": job.attempt})
    return cur.rowcount == 1
