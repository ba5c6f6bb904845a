"""Inserting jobs: a batch in the caller's transaction, with its environments stored once
(by their hash) and dependencies on jobs of the same batch resolved to their new ids."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence

from tmuxtrain.core.model import JobSpec
from tmuxtrain.store.history import add_event


def insert_jobs(
    db: sqlite3.Connection,
    items: Sequence[tuple[JobSpec, tuple[int, ...], dict[str, str] | None]],
    now: float,
    logs_dir: str,
    parent_id: int | None,
    evals: Sequence[tuple[int, ...]] | None = None,
) -> list[int]:
    """Insert jobs (spec, dependency ids, environment); their ids. A negative dependency
    -k names the k-th job of this same batch, whose id is not known before the insert.
    `evals`, beside `items`: the dependencies whose checkpoint evaluations a job waits for
    too (`after: [train.evals]`)."""
    ids: list[int] = []
    hashes: dict[int, str] = {}
    for n, (spec, after, env) in enumerate(items):
        env_hash = None
        if env is not None:
            env_hash = hashes.get(id(env))
            if env_hash is None:
                data = json.dumps(env, sort_keys=True)
                env_hash = hashlib.sha256(data.encode()).hexdigest()
                db.execute("INSERT OR IGNORE INTO envs VALUES (?, ?)", (env_hash, data))
                hashes[id(env)] = env_hash
        deps = [ids[-d - 1] if d < 0 else d for d in after]
        of_evals = [ids[-d - 1] if d < 0 else d for d in (evals[n] if evals else ())]
        cur = db.execute(
            "INSERT INTO jobs (name, state, spec, env_hash, after_ids, after_evals, priority,"
            " submitted_at, parent_id, has_checkpoints, held)"
            " VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                spec.name,
                json.dumps(spec.to_dict(), separators=(",", ":")),
                env_hash,
                json.dumps(deps),
                json.dumps(of_evals),
                spec.priority,
                now,
                parent_id,
                int(spec.checkpoints is not None),
                int(spec.hold),
            ),
        )
        job_id = int(cur.lastrowid or 0)
        db.execute(
            "UPDATE jobs SET log_path = ?, reason = ? WHERE id = ?",
            (os.path.join(logs_dir, f"{job_id}.log"), "held" if spec.hold else "", job_id),
        )
        add_event(db, now, job_id, "submitted", {"name": spec.name})
        ids.append(job_id)
    return ids
