"""SQLite storage of jobs: the only place with SQL, with `history` and `schema` beside it.

WAL mode so readers (ls, the dashboard) never block the scheduler; a busy timeout and
short `BEGIN IMMEDIATE` transactions so concurrent submitters queue instead of failing;
state changes are conditional updates (`WHERE state IN ... AND attempt = ...`) so a race
can never revive a cancelled job, run one twice or end an attempt twice.

The pending queue is cached per connection (`pending`): re-read only when another
connection committed (`PRAGMA data_version`); this connection's own writes keep the cache
right themselves, so a scheduler with 10,000 queued jobs does not re-read them all for
every job that ends.
"""

from __future__ import annotations

import json
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from tmuxtrain.core.errors import NotFound, TmuxtrainError
from tmuxtrain.core.model import Job, JobSpec, JobState, can_move
from tmuxtrain.store import aside, history
from tmuxtrain.store.codec import (
    JOB_COLUMNS,
    JOB_JSON_SQL,
    SpecCache,
    check_writable,
    encode,
    iso,
    job_json,
    runtime_s,
)
from tmuxtrain.store.history import History, add_event, add_metrics, record_attempt
from tmuxtrain.store.inserting import insert_jobs
from tmuxtrain.store.opening import Database

_ID = operator.attrgetter("id")
_STATES = {s.value: s for s in JobState}
# What `transition` records as the event of a move, by the state moved to (hook names).
EVENT_KINDS = {JobState.RUNNING: "started", JobState.PENDING: "retrying"}
# An edit (`set_spec`) with a new `vram` ends a request raised after an OOM.
_SET_SPEC = (
    "UPDATE jobs SET spec = ?, priority = ?, vram_source = iif(json_extract(spec, '$.vram_mib')"
    " IS ?, vram_source, 'declared') WHERE id = ?"
)


class Store(Database):
    """A narrow interface over one SQLite file (or `:memory:`)."""

    def __init__(
        self,
        path: str,
        *,
        read_only: bool | None = None,
        busy_timeout_s: float = 30.0,
        full_check: bool = False,
    ) -> None:
        # Decoded specs by their JSON text: the scheduler re-reads the same queue every
        # decision, and decoding is most of the cost of reading a job.
        self._specs = SpecCache()
        self._pending: dict[int, Job] | None = None
        self._pending_version = -1
        self.unreadable: dict[int, str] = {}  # rows that could not be decoded: id -> why
        super().__init__(
            path, read_only=read_only, busy_timeout_s=busy_timeout_s, full_check=full_check
        )
        self.history = History(self.db)

    def _rolled_back(self) -> None:
        self._pending = None  # it may hold what was rolled back

    def _committed(self, joining: list[int]) -> None:
        self.refresh_pending(joining)

    # ---- adding -----------------------------------------------------------------------

    def add_jobs(
        self,
        items: Sequence[tuple[JobSpec, tuple[int, ...], dict[str, str] | None]],
        now: float,
        logs_dir: str,
        parent_id: int | None = None,
        evals: Sequence[tuple[int, ...]] | None = None,
    ) -> list[int]:
        """Insert jobs (spec, dependency ids, environment) in one transaction; returns ids.

        A negative dependency -k names the k-th job of this same batch, whose id is not
        known before the insert. `evals` (one tuple per item): the dependencies whose
        checkpoint evaluations the job waits for too.
        """
        with self.tx() as db:
            ids = insert_jobs(db, items, now, logs_dir, parent_id, evals)
        self.refresh_pending(ids)
        return ids

    # ---- reading ----------------------------------------------------------------------

    def env_of(self, job_id: int) -> dict[str, str] | None:
        row = self.db.execute(
            "SELECT envs.data FROM jobs JOIN envs ON envs.hash = jobs.env_hash WHERE jobs.id = ?",
            (job_id,),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def get(self, job_id: int) -> Job:
        row = self.db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id}")
        jobs = aside.decode([row], None, self.unreadable)
        if not jobs:
            raise TmuxtrainError(
                f"job {job_id}'s row cannot be read ({self.unreadable[job_id]}); the"
                " scheduler sets it aside as failed"
            )
        return jobs[0]

    def jobs(
        self,
        states: Iterable[JobState] | None = None,
        ids: Iterable[int] | None = None,
        *,
        with_checkpoints: bool = False,
        finished_after: float | None = None,
    ) -> list[Job]:
        """Jobs in id order, optionally only those states or ids, with a `checkpoints:`, or
        not finished before `finished_after`."""
        sql, args = f"SELECT {JOB_COLUMNS} FROM jobs", list[object]()
        where = []
        if with_checkpoints:
            where.append("has_checkpoints = 1")
        if finished_after is not None:
            where.append("(finished_at IS NULL OR finished_at >= ?)")
            args.append(finished_after)
        if states is not None:
            st = [s.value for s in states]
            where.append(f"state IN ({','.join('?' * len(st))})")
            args += st
        if ids is not None:
            id_list = list(ids)
            where.append("id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(id_list))
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.execute(sql + " ORDER BY id", args)
        return aside.decode(rows, self._specs, self.unreadable)

    def refresh_pending(self, ids: Sequence[int]) -> None:
        """Jobs this connection just changed are read back into the pending cache (or
        leave it), instead of making it read the whole queue again."""
        if self._pending is not None and ids:
            for job in self.jobs(ids=ids):
                if job.state is JobState.PENDING:
                    self._pending[job.id] = job
                else:
                    self._pending.pop(job.id, None)

    def states(self, ids: Iterable[int]) -> dict[int, tuple[JobState, str]]:
        """(state, name) of these jobs: what dependencies need, without whole jobs."""
        rows = self.db.execute(
            "SELECT id, state, name FROM jobs WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),),
        )
        return {i: (_STATES[st], name) for i, st, name in rows}

    def pending(self) -> list[Job]:
        """The pending jobs, from the cache unless another connection committed since."""
        version = self.data_version()
        if self._pending is None or version != self._pending_version:
            self._pending = {j.id: j for j in self.jobs([JobState.PENDING])}
            self._pending_version = version
            self._specs.fit(len(self._pending))
        return sorted(self._pending.values(), key=_ID)

    def jobs_json(self, states: Iterable[JobState] | None, now: float) -> str:
        """The contract's JSON array of jobs (`ls --json`) in id order, as text."""
        sql = f"SELECT {JOB_JSON_SQL} FROM jobs"
        args: dict[str, Any] = {"now": now}
        if states is not None:
            sql += " WHERE state IN (SELECT value FROM json_each(:states))"
            args["states"] = json.dumps([s.value for s in states])
        try:
            return "[" + ",".join(r[0] for r in self.db.execute(sql + " ORDER BY id", args)) + "]"
        except sqlite3.OperationalError as e:
            if "JSON" not in str(e):
                raise
        # A row with a value that is not JSON: the readable ones, the slow way.
        t = now
        return json.dumps([job_json(j, t) for j in self.jobs(states)])

    def ids_named(self, name: str) -> list[int]:
        return [
            r[0] for r in self.db.execute("SELECT id FROM jobs WHERE name = ? ORDER BY id", (name,))
        ]

    def resolve(self, ref: str | int) -> int:
        """An id, or a name that names exactly one job."""
        text = str(ref).strip()
        if text.isdigit():
            if (
                len(text) <= 18
                and self.db.execute("SELECT 1 FROM jobs WHERE id = ?", (int(text),)).fetchone()
            ):
                return int(text)
            raise NotFound(f"no job {text}")
        ids = self.ids_named(text)
        if not ids:
            raise NotFound(f"no job named '{text}'")
        if len(ids) > 1:
            raise NotFound(
                f"'{text}' names {len(ids)} jobs ({', '.join(map(str, ids))}): use an id"
            )
        return ids[0]

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in JobState}
        for state, n in self.db.execute("SELECT state, count(*) FROM jobs GROUP BY state"):
            counts[state] = n
        return counts

    def data_version(self) -> int:
        """Changes when another connection commits: lets a loop skip work when nothing moved."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ---- changing ---------------------------------------------------------------------

    def transition(
        self,
        job_id: int,
        to: JobState,
        now: float,
        *,
        expect: Iterable[JobState],
        at_attempt: int | None = None,
        kind: str | None = None,
        event: dict[str, Any] | None = None,
        where_queued: bool | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job to `to` only if it is in one of `expect` (and the move is allowed),
        and at attempt `at_attempt` when given; records the event `kind` (by default the
        hook name of the move). False when another process got there first."""
        with self.tx() as db:
            ok = self._transition(db, job_id, to, expect, at_attempt, fields, where_queued)
            if ok:
                add_event(db, now, job_id, kind or EVENT_KINDS.get(to, to.value), event or {})
        return ok

    def finish_attempt(
        self,
        job: Job,
        to: JobState,
        now: float,
        *,
        ended_at: float,
        event: dict[str, Any],
        detail: Sequence[str] = (),
        peak_mib: int | None = None,
        kind: str | None = None,
        **fields: Any,
    ) -> bool:
        """End `job`'s current attempt (running -> `to`, setting `fields`, `exit_code` and
        `reason` among them), with its attempt record (and its measured `peak_mib`) and its
        event (`kind`, by default the hook name of the move), in one transaction: an
        attempt ends exactly once, or not at all."""
        with self.tx() as db:
            ok = self._transition(db, job.id, to, [JobState.RUNNING], job.attempt, fields)
            if not ok and job.queued:  # it ended still queued in its runner (Slurm)
                ok = self._transition(
                    db, job.id, to, [JobState.PENDING], job.attempt, fields, where_queued=True
                )
            if ok:
                add_event(db, now, job.id, kind or EVENT_KINDS.get(to, to.value), event)
                code, reason = fields.get("exit_code"), fields.get("reason", "")
                peak = peak_mib if peak_mib is not None else job.vram_peak_mib
                record_attempt(db, job, ended_at, code, reason, detail, peak)
        return ok

    def _transition(
        self,
        db: sqlite3.Connection,
        job_id: int,
        to: JobState,
        expect: Iterable[JobState],
        attempt: int | None,
        fields: dict[str, Any],
        where_queued: bool | None = None,
    ) -> bool:
        states = [s.value for s in expect if can_move(s, to)]
        if not states:
            return False
        check_writable(fields)
        sets = ["state = ?"] + [f"{k} = ?" for k in fields]
        args = [to.value] + [encode(k, v) for k, v in fields.items()]
        where = f"id = ? AND state IN ({','.join('?' * len(states))})"
        args += [job_id, *states]
        if attempt is not None:
            where += " AND attempt = ?"
            args.append(attempt)
        if where_queued is not None:
            where += " AND queued = ?"
            args.append(int(where_queued))
        ok = db.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE {where}", args).rowcount == 1
        if ok and self._pending is not None:
            self._pending.pop(job_id, None)
            if to is JobState.PENDING:
                self._joining.append(job_id)  # read back once the transaction committed
        return ok

    def cancel_pending(self, job_id: int, reason: str, now: float) -> bool:
        """Drop a job that has not started (False if it started or ended meanwhile)."""
        with self.tx() as db:  # not one a runner holds queued: that one is cancelled there
            ok = self._transition(
                db, job_id, JobState.CANCELLED, [JobState.PENDING], None,
                {"reason": reason, "finished_at": now}, where_queued=False,
            )  # fmt: skip
            if ok:
                add_event(db, now, job_id, "cancelled", {"reason": reason})
        return ok

    def record_handle(self, job_id: int, attempt: int, fields: dict[str, Any]) -> bool:
        """Where a running attempt runs (window, pane, pid); False when that attempt is no
        longer the running one."""
        check_writable(fields)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as db:
            cur = db.execute(
                f"UPDATE jobs SET {sets} WHERE id = ? AND attempt = ?"
                " AND (state = 'running' OR (state = 'pending' AND queued = 1))",
                [*(encode(k, v) for k, v in fields.items()), job_id, attempt],
            )
        if cur.rowcount == 1 and self._pending is not None and job_id in self._pending:
            self.refresh_pending([job_id])
        return cur.rowcount == 1

    def update(self, job_id: int, **fields: Any) -> None:
        if not fields:
            return
        check_writable(fields)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as db:
            db.execute(
                f"UPDATE jobs SET {sets} WHERE id = ?",
                [*(encode(k, v) for k, v in fields.items()), job_id],
            )
        if self._pending is not None and job_id in self._pending:
            self.refresh_pending([job_id])

    def set_spec(self, job_id: int, spec: dict[str, Any]) -> None:
        text = json.dumps(spec, separators=(",", ":"))
        with self.tx() as db:
            db.execute(_SET_SPEC, (text, spec.get("priority", 0), spec.get("vram_mib"), job_id))
        self.refresh_pending([job_id])

    def set_reasons(self, reasons: dict[int, str]) -> None:
        """Store why pending jobs wait; only rows whose reason changed are written."""
        if not reasons:
            return
        with self.tx() as db:
            db.executemany(
                "UPDATE jobs SET reason = ? WHERE id = ? AND state = 'pending' AND reason != ?",
                [(r, i, r) for i, r in reasons.items()],
            )
        cached = self._pending or {}
        for i, r in reasons.items():
            if i in cached:
                cached[i].reason = r

    def add_event(self, now: float, job_id: int | None, kind: str, data: dict[str, Any]) -> None:
        with self.tx() as db:
            add_event(db, now, job_id, kind, data)

    def add_metrics(
        self,
        job_id: int,
        samples: Sequence[tuple[str, float, float | None]],
        latest: dict[str, Any],
        now: float,
        log_offset: int,
    ) -> None:
        """Append metric samples (name, value, step), keep latest values and the log offset
        (see `history.add_metrics`)."""
        with self.tx() as db:
            latest = add_metrics(db, job_id, samples, latest, now, log_offset)
        if self._pending is not None and job_id in self._pending:
            self._pending[job_id].metrics = latest

    def add_notes(self, job_id: int, notes: Sequence[str], now: float) -> None:
        """Add notes to a job (each once), with a `note` event for each new one."""
        with self.tx() as db:
            row = db.execute("SELECT notes FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            have = json.loads(row[0])
            new = [n for n in dict.fromkeys(notes) if n not in have]
            if new:
                db.execute(
                    "UPDATE jobs SET notes = ? WHERE id = ?", (json.dumps(have + new), job_id)
                )
                for n in new:
                    add_event(db, now, job_id, "note", {"note": n})

    def record_attempt(
        self, job: Job, finished_at: float | None, exit_code: int | None, reason: str
    ) -> None:
        with self.tx() as db:
            record_attempt(db, job, finished_at, exit_code, reason)


__all__ = ["Store", "history", "iso", "runtime_s"]
