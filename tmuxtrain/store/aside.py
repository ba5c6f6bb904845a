"""Rows that cannot be read (a spec that is not JSON, a state nobody knows) are set aside
instead of stopping every reader: `decode` skips them and remembers why, and the
scheduler's `set_aside` marks each one failed with that reason, keeps the text it could
not read in the job's `failed` event, and puts readable values in its place so that
`ls` and `show` can list it from then on. The rest of the queue runs meanwhile."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tmuxtrain.core.model import FINISHED, Job, JobSpec, JobState
from tmuxtrain.store.codec import SpecCache, row_to_job
from tmuxtrain.store.history import add_event

if TYPE_CHECKING:
    from tmuxtrain.store.jobs import Store

_FINISHED = {s.value for s in FINISHED}
# The JSON columns and what stands in for an unreadable value.
_JSON_COLUMNS = {"gpus": "[]", "after_ids": "[]", "metrics": "{}", "notes": "[]"}


def decode(
    rows: Iterable[Sequence[Any]], specs: SpecCache | None, unreadable: dict[int, str]
) -> list[Job]:
    """The rows as Jobs; one that cannot be decoded is left out and noted in `unreadable`."""
    out = []
    for row in rows:
        try:
            out.append(row_to_job(row, specs))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            unreadable[row[0]] = why(e)
    return out


def why(e: Exception) -> str:
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= 200 else text[:199] + "…"


def _json_ok(text: object) -> bool:
    try:
        json.loads(str(text))
    except ValueError:
        return False
    return True


def _set_aside(db: sqlite3.Connection, unreadable: dict[int, str], now: float) -> list[int]:
    """In the caller's transaction: each unreadable job that was waiting or running is
    failed with the reason; its row is made readable. Returns the ids changed."""
    done = []
    for job_id, problem in unreadable.items():
        row = db.execute(
            "SELECT name, state, spec, gpus, after_ids, metrics, notes FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            continue
        name, state, spec = row[0], row[1], row[2]
        sets: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        try:
            JobSpec.from_dict(json.loads(spec))
        except (ValueError, KeyError, TypeError, AttributeError):
            kept["spec"] = str(spec)[:4000]
            stand_in = JobSpec(name=str(name), command="", cwd="/")
            sets["spec"] = json.dumps(stand_in.to_dict())
        for column, value in zip(_JSON_COLUMNS, row[3:], strict=True):
            if not _json_ok(value):
                kept[column] = str(value)[:4000]
                sets[column] = _JSON_COLUMNS[column]
        reason = f"set aside: its row cannot be read ({problem})"
        if state not in _FINISHED:
            sets |= {"state": JobState.FAILED.value, "reason": reason, "finished_at": now}
        if not sets:
            continue
        assignments = ", ".join(f"{column} = ?" for column in sets)
        db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*sets.values(), job_id])
        add_event(db, now, job_id, "failed", {"reason": reason, "unreadable": kept})
        done.append(job_id)
    return done


def set_aside(store: Store, now: float) -> list[int]:
    """Fail the jobs whose rows `store` could not read (its `unreadable`); their ids."""
    if not store.unreadable:
        return []
    with store.tx() as db:
        done = _set_aside(db, store.unreadable, now)
    store.unreadable.clear()
    store.refresh_pending(done)
    return done
