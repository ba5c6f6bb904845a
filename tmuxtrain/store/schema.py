"""The database schema as named, numbered migrations, recorded in the database itself.

`PRAGMA user_version` holds how many migrations were applied and `PRAGMA application_id`
marks the file as tmuxtrain's, so a database from a newer tmuxtrain, or a SQLite file that
is not ours, is refused instead of being written to. Each migration runs in the same
transaction as its record: a crash mid-upgrade leaves the old schema whole.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from tmuxtrain.store.faults import (
    NotOurDatabase,
    ReadOnly,
    SchemaError,
    SchemaTooNew,
    SchemaTooOld,
)

APPLICATION_ID = 0x746D7478  # "tmtx"

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
    (
        # The boot a recorded pid belongs to: after a reboot it names another process.
        "0002_pid_boot",
        """
        ALTER TABLE jobs ADD COLUMN pid_boot TEXT;
        CREATE INDEX events_job ON events(job_id, id);
        CREATE INDEX jobs_windows ON jobs(finished_at, id) WHERE tmux_window IS NOT NULL;
        """,
    ),
    (
        # What the scheduler had to tell about a job besides its state: a pattern it
        # disabled, a log it could not write, a checkpoint scan it refused.
        "0003_notes",
        """
        ALTER TABLE jobs ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
        """,
    ),
    (
        # The log lines a failed attempt's reason came from (`show` prints them).
        "0004_attempt_detail",
        """
        ALTER TABLE attempts ADD COLUMN detail TEXT NOT NULL DEFAULT '[]';
        """,
    ),
    (
        # A runner with a queue of its own (Slurm) holds a pending job once submitted:
        # `queued` says so, `external_id` is its id there (`123`, `123_4` in an array).
        "0005_external_runners",
        """
        ALTER TABLE jobs ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN external_id TEXT;
        CREATE INDEX jobs_queued ON jobs(queued) WHERE queued = 1;
        """,
    ),
    (
        # A checkpoint file rewritten in place (Lightning's last.ckpt) is a new version to
        # evaluate, known by its size and mtime; `after: [train.evals]` waits for a job's
        # evaluations (`after_evals`), found by their parent.
        "0006_checkpoint_versions",
        """
        ALTER TABLE checkpoints RENAME TO checkpoints_0005;
        CREATE TABLE checkpoints (
            job_id INTEGER NOT NULL,
            path TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            size INTEGER,
            mtime REAL,
            seen_at REAL NOT NULL,
            eval_job_id INTEGER,
            PRIMARY KEY (job_id, path, version)
        );
        INSERT INTO checkpoints (job_id, path, seen_at, eval_job_id)
            SELECT job_id, path, seen_at, eval_job_id FROM checkpoints_0005;
        DROP TABLE checkpoints_0005;
        ALTER TABLE jobs ADD COLUMN after_evals TEXT NOT NULL DEFAULT '[]';
        CREATE INDEX jobs_parent ON jobs(parent_id) WHERE parent_id IS NOT NULL;
        """,
    ),
    (
        # A retry after CUDA out of memory asks for more than the job declared
        # (`vram_source` 'raised', `vram_request_mib` NULL: whole GPUs); the measured peak
        # of the latest attempt; and how many attempts preemption stopped (no retry used).
        "0007_oom_retry_preemption",
        """
        ALTER TABLE jobs ADD COLUMN vram_source TEXT NOT NULL DEFAULT 'declared';
        ALTER TABLE jobs ADD COLUMN vram_request_mib INTEGER;
        ALTER TABLE jobs ADD COLUMN vram_peak_mib INTEGER;
        ALTER TABLE jobs ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        # Fair-share by recent usage: the GPU-equivalents an attempt holds (a shared job
        # counts its part of the GPU's memory), and per attempt what it asked and its peak.
        "0008_usage",
        """
        ALTER TABLE jobs ADD COLUMN gpu_share REAL;
        ALTER TABLE attempts ADD COLUMN vram_mib INTEGER;
        ALTER TABLE attempts ADD COLUMN gpu_share REAL;
        ALTER TABLE attempts ADD COLUMN peak_mib INTEGER;
        CREATE INDEX attempts_finished ON attempts(finished_at);
        """,
    ),
    (
        # Learned VRAM: sweeps looked up by their key in the spec (the columns for what a
        # job asks and its peak came with 0007).
        "0009_learned_vram",
        """
        CREATE INDEX jobs_sweep ON jobs(json_extract(spec, '$.sweep'), state);
        """,
    ),
]
VERSION = len(MIGRATIONS)
__all__ = ["MIGRATIONS", "VERSION", "SchemaError", "migrate", "version_of"]


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def version_of(db: sqlite3.Connection, path: str = "the database") -> int:
    """How many migrations this database has; a SchemaError when it is not ours or too new."""
    app = int(db.execute("PRAGMA application_id").fetchone()[0])
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = _tables(db)
    if app not in (0, APPLICATION_ID) or (app == 0 and tables and "migrations" not in tables):
        raise NotOurDatabase(
            f"{path} is not a tmuxtrain database (another program's SQLite file); nothing"
            " was written to it: point TMUXTRAIN_HOME at another folder, or move it aside"
        )
    if app == 0 and "migrations" in tables:  # before numbering: count the recorded names
        names = {r[0] for r in db.execute("SELECT name FROM migrations")}
        known = [n for n, _ in MIGRATIONS]
        if names - set(known):
            raise SchemaTooNew(
                f"{path} was made by a newer tmuxtrain (migrations {sorted(names - set(known))}"
                " unknown here); nothing was written to it: upgrade tmuxtrain"
            )
        version = len(names)
    if version > VERSION:
        raise SchemaTooNew(
            f"{path} was made by a newer tmuxtrain (schema {version}, this one knows"
            f" {VERSION}); nothing was written to it: upgrade tmuxtrain"
        )
    return version


def migrate(
    db: sqlite3.Connection,
    now: float,
    path: str = "the database",
    read_only: bool = False,
    before_write: Callable[[], None] = lambda: None,
) -> None:
    """Apply the missing migrations, each with its record, in one write transaction.
    Nothing is written (nor the write lock taken) when the schema is current; a read-only
    database with an older schema is a SchemaTooOld. `before_write` (the store's integrity
    check) runs before the upgrade writes anything."""
    version = version_of(db, path)
    if version == VERSION:
        return
    if read_only:
        if version == 0 and not _tables(db):
            raise ReadOnly(
                f"{path} holds no queue yet and the state folder is read-only: run a command"
                " with write access first"
            )
        raise SchemaTooOld(
            f"{path} has schema {version} and this tmuxtrain needs {VERSION}, but the state"
            " folder is read-only: run any command once with write access to upgrade it"
        )
    if _tables(db):
        before_write()
    db.execute("BEGIN IMMEDIATE")
    try:
        version = version_of(db, path)  # another process may have upgraded it meanwhile
        if version < VERSION:
            db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)"
            )
            for name, sql in MIGRATIONS[version:]:
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR IGNORE INTO migrations VALUES (?, ?)", (name, now))
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {VERSION}")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
