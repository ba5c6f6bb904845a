"""Changing a job that waits, in place: holding it, releasing it, editing its spec.

Each change is one short write transaction that applies only while the job is still
pending (a job the scheduler claimed meanwhile is left alone and the caller is told), and
records its event (`held`, `released`, `edited`) in the same transaction. The job keeps its
id, so the jobs that run `after` it still find it.

The scheduler's pending-queue cache (`Store.pending`) sees these changes through
`PRAGMA data_version`, like any other process's commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tmuxtrain.core.errors import NotFound
from tmuxtrain.core.model import JobSpec
from tmuxtrain.store.history import add_event
from tmuxtrain.store.jobs import Store


def set_held(store: Store, job_id: int, held: bool, now: float) -> str:
    """Hold a pending job (nothing starts it) or release it. Returns `changed`,
    `unchanged` (it already was), or the job's state when it is not pending."""
    with store.tx() as db:
        row = db.execute("SELECT state, held, queued FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        state, was_held = str(row[0]), bool(row[1])
        if state != "pending" or row[2]:
            return state if state != "pending" else "queued"
        if was_held == held:
            return "unchanged"
        db.execute(
            "UPDATE jobs SET held = ?, reason = ? WHERE id = ? AND state = 'pending'"
            " AND queued = 0",
            (int(held), "held" if held else "", job_id),
        )
        add_event(db, now, job_id, "held" if held else "released", {})
    return "changed"


def edit_pending(
    store: Store,
    job_id: int,
    spec: JobSpec,
    deps: tuple[Sequence[int], Sequence[int]],
    now: float,
    changes: dict[str, Any],
) -> bool:
    """Replace a pending job's spec and dependencies (ids, and those whose checkpoint
    evaluations it waits for too), and record `changes` (the `edited` event's data);
    False when the job is no longer pending."""
    after_ids, after_evals = deps
    with store.tx() as db:
        cur = db.execute(
            "UPDATE jobs SET name = ?, spec = ?, priority = ?, after_ids = ?, after_evals = ?,"
            " has_checkpoints = ?,"
            # A learned ask is learned again for the new spec (the scheduler's next step).
            " vram_request_mib = iif(vram_source = 'learned', NULL, vram_request_mib),"
            " vram_source = iif(vram_source = 'learned', 'declared', vram_source)"
            " WHERE id = ? AND state = 'pending' AND queued = 0",
            (
                spec.name,
                json.dumps(spec.to_dict(), separators=(",", ":")),
                spec.priority,
                json.dumps(list(after_ids)),
                json.dumps(list(after_evals)),
                int(spec.checkpoints is not None),
                job_id,
            ),
        )
        if cur.rowcount != 1:
            return False
        add_event(db, now, job_id, "edited", {"changes": changes})
    return True


def dependencies(store: Store, ids: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """The dependency ids (`after`) of these jobs, by job id."""
    rows = store.db.execute(
        "SELECT id, after_ids FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(ids)),),
    )
    return {int(i): tuple(json.loads(a)) for i, a in rows}
