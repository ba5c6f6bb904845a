"""Checkpoints in the store: a checkpoint (a version of a path) recorded with its
evaluation job in one transaction, and the evaluations a job still has open."""

from __future__ import annotations

import json
from collections.abc import Collection

from tmuxtrain.core.model import JobSpec
from tmuxtrain.store.history import add_event
from tmuxtrain.store.inserting import insert_jobs
from tmuxtrain.store.jobs import Store


def add_checkpoint_eval(
    store: Store,
    job_id: int,
    path: str,
    version: int,
    fingerprint: tuple[int, float],
    spec: JobSpec,
    env: dict[str, str] | None,
    now: float,
    logs_dir: str,
) -> int | None:
    """Record a checkpoint (a version of a path, with its size and mtime) and queue its
    evaluation job, once: None if that version is already known."""
    with store.tx() as db:
        cur = db.execute(
            "INSERT OR IGNORE INTO checkpoints (job_id, path, version, size, mtime, seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, path, version, *fingerprint, now),
        )
        if cur.rowcount != 1:
            return None
        [eval_id] = insert_jobs(db, [(spec, (), env)], now, logs_dir, job_id)
        db.execute(
            "UPDATE checkpoints SET eval_job_id = ? WHERE job_id = ? AND path = ? AND version = ?",
            (eval_id, job_id, path, version),
        )
        data = {"path": path, "version": version, "eval_job_id": eval_id}
        add_event(db, now, job_id, "checkpoint", data)
    store.refresh_pending([eval_id])
    return eval_id


def open_evaluations(store: Store, ids: set[int], draining: Collection[int] = ()) -> dict[int, int]:
    """How many checkpoint evaluation jobs of each of these jobs are pending or running,
    or ended with their last output (the scores) still to be read (`draining`): what
    `after: [train.evals]` waits for."""
    if not ids:
        return {}
    rows = store.db.execute(
        "SELECT parent_id, count(*) FROM jobs WHERE parent_id IN"
        " (SELECT value FROM json_each(?)) AND (state IN ('pending', 'running')"
        " OR id IN (SELECT value FROM json_each(?))) GROUP BY parent_id",
        (json.dumps(sorted(ids)), json.dumps(sorted(draining))),
    )
    return {int(i): int(n) for i, n in rows}
