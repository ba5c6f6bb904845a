"""SQLite storage: jobs, attempts, events, metrics. The only module that speaks SQL.

WAL mode so readers (ls, the dashboard) never block the scheduler; a busy timeout and
short `BEGIN IMMEDIATE` transactions so concurrent submitters queue instead of failing;
state changes are conditional updates (`WHERE state IN ...`) so a race can never revive a
cancelled job or run one twice. Migrations are named and recorded in the database.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tmuxtrain.core.errors import NotFound
from tmuxtrain.core.model import FINISHED, Job, JobSpec, JobState, can_move

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE envs (hash TEXT PRIMARY KEY, data TEXT NOT NULL);
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            spec TEXT NOT NULL,
            env_hash TEXT REFERENCES envs(hash),
            after_ids TEXT NOT NULL DEFAULT '[]',
            priority INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0,
            attempt INTEGER NOT NULL DEFAULT 1,
            gpus TEXT NOT NULL DEFAULT '[]',
            exit_code INTEGER,
            reason TEXT NOT NULL DEFAULT '',
            log_path TEXT NOT NULL DEFAULT '',
            tmux_window TEXT,
            tmux_pane TEXT,
            pid INTEGER,
            pid_start REAL,
            master_port INTEGER,
            submitted_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            not_before REAL,
            parent_id INTEGER,
            cancel_requested_at REAL,
            cancel_reason TEXT NOT NULL DEFAULT '',
            metrics TEXT NOT NULL DEFAULT '{}',
            log_offset INTEGER NOT NULL DEFAULT 0,
            has_checkpoints INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX jobs_checkpoints ON jobs(has_checkpoints) WHERE has_checkpoints = 1;
        CREATE INDEX jobs_state ON jobs(state);
        CREATE INDEX jobs_name ON jobs(name);
        CREATE TABLE attempts (
            job_id INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            started_at REAL,
            finished_at REAL,
            exit_code INTEGER,
            gpus TEXT NOT NULL DEFAULT '[]',
            tmux_window TEXT,
            reason TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (job_id, attempt)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            t REAL NOT NULL,
            job_id INTEGER,
            kind TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE metrics (
            job_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            t REAL NOT NULL,
            step REAL,
            value REAL NOT NULL
        );
        CREATE INDEX metrics_job ON metrics(job_id, name, t);
        CREATE TABLE checkpoints (
            job_id INTEGER NOT NULL,
            path TEXT NOT NULL,
            seen_at REAL NOT NULL,
            eval_job_id INTEGER,
            PRIMARY KEY (job_id, path)
        );
        """,
    ),
]

JOB_COLUMNS = (
    "id, name, state, spec, after_ids, held, attempt, gpus, exit_code, reason, log_path, "
    "tmux_window, tmux_pane, pid, pid_start, master_port, submitted_at, started_at, "
    "finished_at, not_before, parent_id, cancel_requested_at, cancel_reason, metrics"
)
# Columns a caller may set through update()/transition(); everything else is derived.
WRITABLE = frozenset(
    [
        "held",
        "attempt",
        "gpus",
        "exit_code",
        "reason",
        "log_path",
        "tmux_window",
        "tmux_pane",
        "pid",
        "pid_start",
        "master_port",
        "started_at",
        "finished_at",
        "not_before",
        "cancel_requested_at",
        "cancel_reason",
        "metrics",
        "log_offset",
        "priority",
    ]
)


_STATES = {s.value: s for s in JobState}

# The contract's job JSON (`api.job_json`, key for key), built by SQLite: listing 10,000
# jobs this way takes ~80 ms against ~290 ms for decoding every spec in Python, most of
# `ls --json`. tests/test_store.py pins it to `job_json` for jobs in every state.
_JOB_JSON = """json_object(
    'id', id, 'name', name, 'state', state,
    'command', json_extract(spec, '$.command'), 'cwd', json_extract(spec, '$.cwd'),
    'env', json(coalesce(json_extract(spec, '$.env'), '{}')),
    'gpus_requested', coalesce(json_extract(spec, '$.gpus'), 1),
    'vram_mib', json_extract(spec, '$.vram_mib'), 'gpus', json(gpus),
    'priority', coalesce(json_extract(spec, '$.priority'), 0),
    'project', coalesce(nullif(json_extract(spec, '$.project'), ''), 'default'),
    'after', json(after_ids), 'held', json(iif(held, 'true', 'false')), 'attempt', attempt,
    'max_retries', coalesce(json_extract(spec, '$.retries'), 0), 'exit_code', exit_code,
    'log_path', log_path, 'tmux_window', tmux_window, 'tmux_pane', tmux_pane,
    'submitted_at', iso(submitted_at), 'started_at', iso(started_at),
    'finished_at', iso(finished_at), 'runtime_s', runtime_s(started_at, finished_at, ?),
    'timeout_s', json_extract(spec, '$.timeout_s'), 'parent_id', parent_id,
    'metrics', json(metrics), 'reason', reason)"""


def iso(t: float | None) -> str | None:
    """ISO 8601 local time with its offset, to the second (`2026-11-29T21:25:50+01:00`)."""
    return None if t is None else _iso_second(int(t))


@functools.lru_cache(maxsize=4096)
def _iso_second(t: int) -> str:
    # time.localtime is several times cheaper than datetime's time-zone lookup, and a queue
    # of 10,000 jobs has 30,000 timestamps to format.
    lt = time.localtime(t)
    off = lt.tm_gmtoff or 0
    sign = "+" if off >= 0 else "-"
    hh, mm = divmod(abs(off) // 60, 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f"{sign}{hh:02d}:{mm:02d}"


def runtime_s(started: float | None, finished: float | None, now: float) -> float | None:
    """Seconds a job has run (until `now` while it runs), to the millisecond."""
    if started is None:
        return None
    return round((finished if finished is not None else now) - started, 3)


def _ints(text: str) -> tuple[int, ...]:
    return () if text == "[]" else tuple(json.loads(text))  # most jobs: no GPUs, no deps


def _row_to_job(row: Sequence[Any], spec_cache: dict[str, JobSpec] | None = None) -> Job:
    spec_text = row[3]
    spec = spec_cache.get(spec_text) if spec_cache is not None else None
    if spec is None:
        spec = JobSpec.from_dict(json.loads(spec_text))
        if spec_cache is not None:
            spec_cache[spec_text] = spec
    return Job(
        id=row[0],
        spec=spec,
        state=_STATES[row[2]],
        after_ids=_ints(row[4]),
        held=bool(row[5]),
        attempt=row[6],
        gpus=_ints(row[7]),
        exit_code=row[8],
        reason=row[9],
        log_path=row[10],
        tmux_window=row[11],
        tmux_pane=row[12],
        pid=row[13],
        pid_start=row[14],
        master_port=row[15],
        submitted_at=row[16],
        started_at=row[17],
        finished_at=row[18],
        not_before=row[19],
        parent_id=row[20],
        cancel_requested_at=row[21],
        cancel_reason=row[22],
        metrics={} if row[23] == "{}" else json.loads(row[23]),
    )


def _encode(field: str, value: Any) -> Any:
    if field in ("gpus", "after_ids"):
        return json.dumps(list(value))
    if field == "metrics":
        return json.dumps(value, separators=(",", ":"))
    if field == "held":
        return int(bool(value))
    return value


class Store:
    """A narrow interface over one SQLite file (or `:memory:`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        # Decoded specs by their JSON text: the scheduler re-reads the same queue every
        # decision, and decoding is most of the cost of reading a job.
        self._specs: dict[str, JobSpec] = {}
        if path != ":memory:":
            fresh = not os.path.exists(path)
            if fresh:  # created 0600: the database holds job environments
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.create_function("iso", 1, iso, deterministic=True)
        self.db.create_function("runtime_s", 3, runtime_s, deterministic=True)
        if path != ":memory:":
            self._wal()
        self.db.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    def _wal(self) -> None:
        # Switching to WAL needs a moment alone with the file; concurrent first opens retry.
        for _ in range(100):
            try:
                self.db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                import time

                time.sleep(0.05)
        self.db.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction that takes the write lock at once (no upgrade deadlocks)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        with self.tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)"
            )
            done = {r[0] for r in db.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name not in done:
                    for statement in sql.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute("INSERT INTO migrations VALUES (?, strftime('%s','now'))", (name,))

    # ---- jobs -------------------------------------------------------------------------

    def add_jobs(
        self,
        items: Sequence[tuple[JobSpec, tuple[int, ...], dict[str, str] | None]],
        now: float,
        logs_dir: str,
        parent_id: int | None = None,
    ) -> list[int]:
        """Insert jobs (spec, dependency ids, environment) in one transaction; returns ids.

        A negative dependency -k names the k-th job of this same batch, whose id is not
        known before the insert.
        """
        with self.tx() as db:
            return self._insert(db, items, now, logs_dir, parent_id)

    def _insert(
        self,
        db: sqlite3.Connection,
        items: Sequence[tuple[JobSpec, tuple[int, ...], dict[str, str] | None]],
        now: float,
        logs_dir: str,
        parent_id: int | None,
    ) -> list[int]:
        ids: list[int] = []
        hashes: dict[int, str] = {}
        for spec, after, env in items:
            env_hash = None
            if env is not None:
                env_hash = hashes.get(id(env))
                if env_hash is None:
                    data = json.dumps(env, sort_keys=True)
                    env_hash = hashlib.sha256(data.encode()).hexdigest()
                    db.execute("INSERT OR IGNORE INTO envs VALUES (?, ?)", (env_hash, data))
                    hashes[id(env)] = env_hash
            deps = [ids[-d - 1] if d < 0 else d for d in after]
            cur = db.execute(
                "INSERT INTO jobs (name, state, spec, env_hash, after_ids, priority, submitted_at,"
                " parent_id, has_checkpoints) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.name,
                    json.dumps(spec.to_dict(), separators=(",", ":")),
                    env_hash,
                    json.dumps(deps),
                    spec.priority,
                    now,
                    parent_id,
                    int(spec.checkpoints is not None),
                ),
            )
            job_id = int(cur.lastrowid or 0)
            db.execute(
                "UPDATE jobs SET log_path = ? WHERE id = ?",
                (os.path.join(logs_dir, f"{job_id}.log"), job_id),
            )
            self._event(db, now, job_id, "submitted", {"name": spec.name})
            ids.append(job_id)
        return ids

    # ---- checkpoints ------------------------------------------------------------------

    def checkpoint_paths(self, job_id: int) -> set[str]:
        rows = self.db.execute("SELECT path FROM checkpoints WHERE job_id = ?", (job_id,))
        return {r[0] for r in rows}

    def add_checkpoint_eval(
        self,
        job_id: int,
        path: str,
        spec: JobSpec,
        env: dict[str, str] | None,
        now: float,
        logs_dir: str,
    ) -> int | None:
        """Record a checkpoint and queue its evaluation job, once: None if already known."""
        with self.tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO checkpoints (job_id, path, seen_at) VALUES (?, ?, ?)",
                (job_id, path, now),
            )
            if cur.rowcount != 1:
                return None
            [eval_id] = self._insert(db, [(spec, (), env)], now, logs_dir, job_id)
            db.execute(
                "UPDATE checkpoints SET eval_job_id = ? WHERE job_id = ? AND path = ?",
                (eval_id, job_id, path),
            )
            self._event(db, now, job_id, "checkpoint", {"path": path, "eval_job_id": eval_id})
            return eval_id

    def checkpoints(self, job_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT c.path, c.seen_at, c.eval_job_id, j.state, j.metrics FROM checkpoints c "
            "LEFT JOIN jobs j ON j.id = c.eval_job_id WHERE c.job_id = ? "
            "ORDER BY c.seen_at, c.path",
            (job_id,),
        )
        return [
            {
                "path": p,
                "seen_at": t,
                "eval_job_id": e,
                "eval_state": st,
                "metrics": json.loads(m) if m else {},
            }
            for p, t, e, st, m in rows
        ]

    def set_spec(self, job_id: int, spec: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE jobs SET spec = ?, priority = ? WHERE id = ?",
                (json.dumps(spec, separators=(",", ":")), spec.get("priority", 0), job_id),
            )

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
        return _row_to_job(row)

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
            where.append(f"id IN ({','.join('?' * len(id_list))})")
            args += id_list
        if where:
            sql += " WHERE " + " AND ".join(where)
        if len(self._specs) > 50_000:  # bounded: a long-lived scheduler sees many specs
            self._specs.clear()
        return [_row_to_job(r, self._specs) for r in self.db.execute(sql + " ORDER BY id", args)]

    def jobs_json(self, states: Iterable[JobState] | None, now: float) -> str:
        """The contract's JSON array of jobs (`ls --json`) in id order, as text."""
        sql, args = f"SELECT {_JOB_JSON} FROM jobs", list[object]([now])
        if states is not None:
            st = [s.value for s in states]
            sql += f" WHERE state IN ({','.join('?' * len(st))})"
            args += st
        return "[" + ",".join(r[0] for r in self.db.execute(sql + " ORDER BY id", args)) + "]"

    def ids_named(self, name: str) -> list[int]:
        return [
            r[0] for r in self.db.execute("SELECT id FROM jobs WHERE name = ? ORDER BY id", (name,))
        ]

    def resolve(self, ref: str | int) -> int:
        """An id, or a name that names exactly one job."""
        text = str(ref).strip()
        if text.isdigit():
            if self.db.execute("SELECT 1 FROM jobs WHERE id = ?", (int(text),)).fetchone():
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

    def transition(
        self,
        job_id: int,
        to: JobState,
        now: float,
        *,
        expect: Iterable[JobState],
        event: dict[str, Any] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job to `to` only if it is in one of `expect` (and the move is allowed).

        Returns False when another process got there first; the caller re-reads.
        """
        expect = [s for s in expect if can_move(s, to)]
        if not expect:
            return False
        with self.tx() as db:
            ok = self._transition(db, job_id, to, now, expect, fields)
            if ok:
                self._event(db, now, job_id, to.value, event or {})
            return ok

    def cancel_pending(self, job_id: int, reason: str, now: float) -> bool:
        """Drop a job that has not started (False if it started or ended meanwhile)."""
        return self.transition(
            job_id, JobState.CANCELLED, now, expect=[JobState.PENDING],
            event={"reason": reason}, reason=reason, finished_at=now,
        )  # fmt: skip

    def _transition(
        self,
        db: sqlite3.Connection,
        job_id: int,
        to: JobState,
        now: float,
        expect: Sequence[JobState],
        fields: dict[str, Any],
    ) -> bool:
        bad = set(fields) - WRITABLE
        if bad:
            raise ValueError(f"not writable: {bad}")
        sets = ["state = ?"] + [f"{k} = ?" for k in fields]
        args = [to.value] + [_encode(k, v) for k, v in fields.items()]
        marks = ",".join("?" * len(expect))
        cur = db.execute(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state IN ({marks})",
            [*args, job_id, *(s.value for s in expect)],
        )
        return cur.rowcount == 1

    def update(self, job_id: int, **fields: Any) -> None:
        if not fields:
            return
        bad = set(fields) - WRITABLE
        if bad:
            raise ValueError(f"not writable: {bad}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as db:
            db.execute(
                f"UPDATE jobs SET {sets} WHERE id = ?",
                [*(_encode(k, v) for k, v in fields.items()), job_id],
            )

    def cancel_requested(self, job_id: int) -> bool:
        row = self.db.execute(
            "SELECT cancel_requested_at IS NOT NULL FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return bool(row and row[0])

    def finished_windows(self) -> list[tuple[int, str]]:
        """(job id, window id) of finished jobs whose window is still open, oldest finish
        first: what trimming needs, without building whole jobs after every finish."""
        return list(
            self.db.execute(
                "SELECT id, tmux_window FROM jobs WHERE state IN (?, ?, ?)"
                " AND tmux_window IS NOT NULL ORDER BY finished_at, id",
                [s.value for s in FINISHED],
            )
        )

    def forget_windows(self, ids: Sequence[int]) -> None:
        """The windows of these jobs were closed."""
        with self.tx() as db:
            db.executemany(
                "UPDATE jobs SET tmux_window = NULL, tmux_pane = NULL WHERE id = ?",
                [(i,) for i in ids],
            )

    def set_reasons(self, reasons: dict[int, str]) -> None:
        """Store why pending jobs wait; only rows whose reason changed are written."""
        if not reasons:
            return
        with self.tx() as db:
            db.executemany(
                "UPDATE jobs SET reason = ? WHERE id = ? AND state = 'pending' AND reason != ?",
                [(r, i, r) for i, r in reasons.items()],
            )

    def record_attempt(
        self, job: Job, finished_at: float | None, exit_code: int | None, reason: str
    ) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.attempt,
                    job.started_at,
                    finished_at,
                    exit_code,
                    json.dumps(list(job.gpus)),
                    job.tmux_window,
                    reason,
                ),
            )

    def attempts(self, job_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT attempt, started_at, finished_at, exit_code, gpus, tmux_window, reason "
            "FROM attempts WHERE job_id = ? ORDER BY attempt",
            (job_id,),
        )
        keys = (
            "attempt",
            "started_at",
            "finished_at",
            "exit_code",
            "gpus",
            "tmux_window",
            "reason",
        )
        out = []
        for r in rows:
            d = dict(zip(keys, r, strict=True))
            d["gpus"] = json.loads(d["gpus"])
            out.append(d)
        return out

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in JobState}
        for state, n in self.db.execute("SELECT state, count(*) FROM jobs GROUP BY state"):
            counts[state] = n
        return counts

    def changes(self) -> int:
        """Rows this connection has written so far: with `data_version`, tells a cache of
        rows whether any write at all happened since it was filled."""
        return self.db.total_changes

    def data_version(self) -> int:
        """Changes when another connection commits: lets a loop skip work when nothing moved."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ---- events -----------------------------------------------------------------------

    @staticmethod
    def _event(
        db: sqlite3.Connection, now: float, job_id: int | None, kind: str, data: dict[str, Any]
    ) -> None:
        db.execute(
            "INSERT INTO events (t, job_id, kind, data) VALUES (?, ?, ?, ?)",
            (now, job_id, kind, json.dumps(data, separators=(",", ":"))),
        )

    def add_event(self, now: float, job_id: int | None, kind: str, data: dict[str, Any]) -> None:
        with self.tx() as db:
            self._event(db, now, job_id, kind, data)

    def events(self, after_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, t, job_id, kind, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [
            {"id": i, "t": t, "job_id": j, "kind": k, **json.loads(d)} for i, t, j, k, d in rows
        ]

    # ---- metrics ----------------------------------------------------------------------

    def add_metrics(
        self,
        job_id: int,
        samples: Sequence[tuple[str, float, float | None]],
        latest: dict[str, Any],
        now: float,
        log_offset: int,
    ) -> None:
        """Append metric samples (name, value, step), keep latest values and the log offset."""
        with self.tx() as db:
            db.executemany(
                "INSERT INTO metrics (job_id, name, t, step, value) VALUES (?, ?, ?, ?, ?)",
                [(job_id, n, now, s, v) for n, v, s in samples],
            )
            db.execute(
                "UPDATE jobs SET metrics = ?, log_offset = ? WHERE id = ?",
                (json.dumps(latest, separators=(",", ":")), log_offset, job_id),
            )
            if samples:
                self._event(db, now, job_id, "metric", {"metrics": latest})

    def log_offset(self, job_id: int) -> int:
        row = self.db.execute("SELECT log_offset FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return int(row[0]) if row else 0

    def metric_history(self, job_id: int) -> dict[str, list[list[float | None]]]:
        out: dict[str, list[list[float | None]]] = {}
        rows = self.db.execute(
            "SELECT name, t, step, value FROM metrics WHERE job_id = ? ORDER BY name, t, rowid",
            (job_id,),
        )
        for name, t, step, value in rows:
            out.setdefault(name, []).append([t, step, value])
        return out
