"""Removing finished jobs with everything stored about them: their attempts, events,
metric history and checkpoint records, and environments no job uses any more.

One write transaction: a job is removed only if it is still finished when the transaction
takes the write lock (a `retry` a moment earlier keeps it), and never while a job that
waits (pending, held, or running with a retry ahead of it) depends on it, since a
dependency that is gone reads as cancelled and would cancel that job. Ids are never reused:
`jobs.id` is AUTOINCREMENT, so SQLite never hands out an id it gave before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tmuxtrain.core.model import FINISHED, JobState
from tmuxtrain.store.jobs import Store

_IDS = "(SELECT value FROM json_each(?))"


@dataclass(frozen=True)
class RemovedJob:
    """What is left to tidy outside the database once a job's rows are gone."""

    id: int
    attempt: int
    log_path: str
    tmux_window: str | None


@dataclass
class Cleaned:
    removed: list[RemovedJob] = field(default_factory=list)
    kept: dict[int, list[int]] = field(default_factory=dict)  # job -> the jobs waiting on it
    not_finished: dict[int, str] = field(default_factory=dict)  # job -> its state
    gone: list[int] = field(default_factory=list)  # ids given that were removed before


def clean(
    store: Store,
    ids: Sequence[int] | None = None,
    states: Iterable[JobState] = FINISHED,
    finished_before: float | None = None,
) -> Cleaned:
    """Remove finished jobs: these `ids` (all when None) in these finished `states`,
    finished before `finished_before` when given. Ids given that are not finished are
    reported in `not_finished` and left, ids that were removed before in `gone`."""
    wanted = [s.value for s in states if s in FINISHED]
    out = Cleaned()
    with store.tx() as db:
        sql = "SELECT id, state, attempt, log_path, tmux_window FROM jobs"
        where, args = [], list[object]()
        if ids is not None:
            where.append(f"id IN {_IDS}")
            args.append(json.dumps(list(ids)))
        if finished_before is not None:
            where.append("(finished_at IS NULL OR finished_at < ?)")
            args.append(finished_before)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = db.execute(sql + " ORDER BY id", args).fetchall()
        if ids is not None:
            found = {r[0] for r in rows}
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
            top = int(last[0]) if last else 0
            out.gone = [i for i in ids if i not in found and 0 < i <= top]
        waiting: dict[int, list[int]] = {}
        for job_id, dep in db.execute(
            "SELECT j.id, d.value FROM jobs j, json_each(j.after_ids) d"
            " WHERE j.state IN ('pending', 'running') ORDER BY j.id"
        ):
            waiting.setdefault(int(dep), []).append(int(job_id))
        chosen = []
        for job_id, state, attempt, log_path, window in rows:
            if state not in wanted:
                if ids is not None and JobState(state) not in FINISHED:
                    out.not_finished[job_id] = state
                continue
            if job_id in waiting:
                out.kept[job_id] = waiting[job_id]
                continue
            chosen.append(RemovedJob(job_id, attempt, log_path, window))
        if chosen:
            arg = (json.dumps([j.id for j in chosen]),)
            for table in ("metrics", "events", "attempts", "checkpoints"):
                db.execute(f"DELETE FROM {table} WHERE job_id IN {_IDS}", arg)
            db.execute(
                f"UPDATE checkpoints SET eval_job_id = NULL WHERE eval_job_id IN {_IDS}", arg
            )
            db.execute(f"DELETE FROM jobs WHERE id IN {_IDS}", arg)
            db.execute(
                "DELETE FROM envs WHERE hash NOT IN"
                " (SELECT env_hash FROM jobs WHERE env_hash IS NOT NULL)"
            )
            # What the scheduler wrote for a job just after it was removed (the last
            # output of a job that had just ended reaches its metrics up to ~2 s later).
            for table in ("metrics", "events"):
                db.execute(
                    f"DELETE FROM {table} WHERE job_id IN (SELECT DISTINCT job_id FROM {table}"
                    " WHERE job_id IS NOT NULL AND job_id NOT IN (SELECT id FROM jobs))"
                )
        out.removed = chosen
    return out
