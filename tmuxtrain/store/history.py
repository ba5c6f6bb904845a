"""What accumulates beside the jobs: events, the metric history, attempts and checkpoints.

Writes take the caller's open transaction (`db`), so a job's change and its event or its
attempt record commit together or not at all.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from tmuxtrain.core.model import Job
from tmuxtrain.store.codec import finite


def add_event(
    db: sqlite3.Connection, now: float, job_id: int | None, kind: str, data: dict[str, Any]
) -> None:
    db.execute(
        "INSERT INTO events (t, job_id, kind, data) VALUES (?, ?, ?, ?)",
        (now, job_id, kind, json.dumps(data, separators=(",", ":"))),
    )


def record_attempt(
    db: sqlite3.Connection,
    job: Job,
    finished_at: float | None,
    exit_code: int | None,
    reason: str,
    detail: Sequence[str] = (),
    peak_mib: int | None = None,
) -> None:
    """The record of `job`'s current attempt: what it asked (vram per GPU) and held
    (GPU-equivalents, for fair-share), and its peak GPU memory per GPU where measured."""
    db.execute(
        "INSERT OR REPLACE INTO attempts (job_id, attempt, started_at, finished_at, exit_code,"
        " gpus, tmux_window, reason, detail, vram_mib, gpu_share, peak_mib)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job.id,
            job.attempt,
            job.started_at,
            finished_at,
            exit_code,
            json.dumps(list(job.gpus)),
            job.tmux_window,
            reason,
            json.dumps(list(detail)),
            job.vram_mib,
            job.gpu_share,
            peak_mib,
        ),
    )


def add_metrics(
    db: sqlite3.Connection,
    job_id: int,
    samples: Sequence[tuple[str, float, float | None]],
    latest: dict[str, Any],
    now: float,
    log_offset: int,
) -> dict[str, Any]:
    """Append metric samples (name, value, step), keep latest values and the log offset; the
    latest values as stored. A NaN or infinite value stays in the latest values as text
    (see `codec.finite`) and is not a point of the history."""
    latest = {k: finite(v) for k, v in latest.items()}
    db.executemany(
        "INSERT INTO metrics (job_id, name, t, step, value) VALUES (?, ?, ?, ?, ?)",
        [(job_id, n, now, s, v) for n, v, s in samples if math.isfinite(v)],
    )
    db.execute(
        "UPDATE jobs SET metrics = ?, log_offset = ? WHERE id = ?",
        (json.dumps(latest, separators=(",", ":")), log_offset, job_id),
    )
    if samples:
        add_event(db, now, job_id, "metric", {"metrics": latest})
    return latest


class History:
    """Reads of the accumulating tables, over the store's connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def events(
        self,
        after_id: int = 0,
        limit: int = 1000,
        *,
        job_id: int | None = None,
        kinds: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Events after `after_id`, oldest first; only of one job, or of these kinds."""
        sql = "SELECT id, t, job_id, kind, data FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        if job_id is not None:
            sql += " AND job_id = ?"
            args.append(job_id)
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += list(kinds)
        rows = self.db.execute(sql + " ORDER BY id LIMIT ?", [*args, limit])
        return [
            {"id": i, "t": t, "job_id": j, "kind": k, **json.loads(d)} for i, t, j, k, d in rows
        ]

    def last_event_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def attempts(self, job_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT attempt, started_at, finished_at, exit_code, gpus, tmux_window, reason, "
            "detail, vram_mib, peak_mib FROM attempts WHERE job_id = ? ORDER BY attempt",
            (job_id,),
        )
        keys = ("attempt", "started_at", "finished_at", "exit_code", "gpus", "tmux_window")
        out = []
        for r in rows:
            d: dict[str, Any] = dict(
                zip((*keys, "reason", "detail", "vram_mib", "peak_mib"), r, strict=True)
            )
            d["gpus"] = json.loads(d["gpus"])
            d["detail"] = json.loads(d["detail"])
            out.append(d)
        return out

    def finished_usage(
        self, after_rowid: int, since: float
    ) -> list[tuple[int, str, float, float, float]]:
        """(row, project, started_at, finished_at, GPU-equivalents) of the attempt records
        after row `after_rowid` that finished at `since` or later: what fair-share counts
        (`core.fairshare`). Records from before GPU-equivalents were kept count their GPUs."""
        rows = self.db.execute(
            "SELECT a.rowid, coalesce(nullif(json_extract(j.spec, '$.project'), ''), 'default'),"
            " a.started_at, a.finished_at, coalesce(a.gpu_share, json_array_length(a.gpus))"
            " FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE a.rowid > ? AND a.finished_at >= ? AND a.started_at IS NOT NULL"
            " ORDER BY a.rowid",
            (after_rowid, since),
        )
        return [(r, p, s, f, float(g)) for r, p, s, f, g in rows]

    def last_attempt_row(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(rowid), 0) FROM attempts").fetchone()[0])

    def metric_history(self, job_id: int) -> dict[str, list[list[float | None]]]:
        out: dict[str, list[list[float | None]]] = {}
        rows = self.db.execute(
            "SELECT name, t, step, value FROM metrics WHERE job_id = ? ORDER BY name, t, rowid",
            (job_id,),
        )
        for name, t, step, value in rows:
            out.setdefault(name, []).append([t, step, value])
        return out

    def log_offset(self, job_id: int) -> int:
        row = self.db.execute("SELECT log_offset FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return int(row[0]) if row else 0

    def checkpoint_versions(self, job_id: int) -> dict[str, tuple[int, tuple[int, float] | None]]:
        """Each recorded checkpoint path of a job: its latest version and that version's
        (size, mtime), None where a database before versions did not record them."""
        rows = self.db.execute(
            "SELECT path, max(version), size, mtime FROM checkpoints WHERE job_id = ?"
            " GROUP BY path",
            (job_id,),
        )
        return {
            p: (int(v), None if size is None or mtime is None else (int(size), float(mtime)))
            for p, v, size, mtime in rows
        }

    def checkpoints(self, job_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT c.path, c.version, c.seen_at, c.eval_job_id, j.state, j.metrics"
            " FROM checkpoints c LEFT JOIN jobs j ON j.id = c.eval_job_id WHERE c.job_id = ?"
            " ORDER BY c.seen_at, c.path, c.version",
            (job_id,),
        )
        return [
            {
                "path": p,
                "version": v,
                "seen_at": t,
                "eval_job_id": e,
                "eval_state": st,
                "metrics": json.loads(m) if m else {},
            }
            for p, v, t, e, st, m in rows
        ]
