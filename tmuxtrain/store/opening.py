"""Opening the database file: for writing, or for reading only when the state folder is
read-only (SQLite's `mode=ro`, and `immutable=1` where WAL's shared-memory file cannot be
made), and the refusal of a database that was emptied while its jobs' logs remain."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator

from tmuxtrain.store import faults, schema
from tmuxtrain.store.codec import iso, runtime_s


def writable(path: str) -> bool:
    """Whether this process may write the database at `path` (and the folder it is in,
    where SQLite keeps the -wal and -shm files)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK):
        return False
    return not os.path.exists(path) or os.access(path, os.W_OK)


def refuse_emptied(path: str) -> None:
    """A zero-byte database is a new one (created, then the process died before the first
    migration), unless jobs ran from this state folder: their logs are there. SQLite would
    open such a file as an empty queue and the history would silently be gone, so it is
    refused as damaged instead; moving it aside starts afresh on purpose."""
    try:
        if os.path.getsize(path) != 0:
            return
    except OSError:
        return
    logs = os.path.join(os.path.dirname(os.path.abspath(path)), "logs")
    try:
        had_jobs = any(os.scandir(logs))
    except OSError:
        had_jobs = False
    if had_jobs:
        raise faults.DatabaseCorrupt(
            f"the database {path} is empty (0 bytes) but jobs ran here (their logs are in"
            f" {logs}); nothing was written to it: {faults.recover_hint(path)}"
        )


def connect(path: str, read_only: bool, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection in autocommit mode (the store opens its transactions itself)."""
    if path == ":memory:":
        db = _sqlite(path, busy_timeout_s)
    elif not read_only:
        refuse_emptied(path)
        # Created 0600: the database holds job environments. Another process may make it
        # first (submitters starting at once): then it is that one's.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        db = _sqlite(path, busy_timeout_s)
    else:
        if not os.path.exists(path):
            raise faults.ReadOnly(
                f"there is no database at {path} and the state folder is read-only: run a"
                " command with write access first"
            )
        refuse_emptied(path)
        db = _read_only(path, busy_timeout_s)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    return db


def _sqlite(target: str, timeout: float, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
    )


def _read_only(path: str, timeout: float) -> sqlite3.Connection:
    """`mode=ro` reads a WAL database while its -shm file exists (a scheduler may be
    writing it); with no -shm and a folder it cannot be made in, `immutable=1` reads the
    file as it is (nobody can be writing it then)."""
    quoted = urllib.parse.quote(os.path.abspath(path))
    db = _sqlite(f"file:{quoted}?mode=ro", timeout, uri=True)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
    return _sqlite(f"file:{quoted}?immutable=1", timeout, uri=True)


FULL_CHECK_BYTES = 16 * 2**20  # a larger database gets its jobs table checked per command


class Database:
    """One SQLite connection with its transactions: opened as `connect` says, checked
    (`PRAGMA quick_check`) before its first write, its failures classified as
    `faults.StorageError`s. The store's queries live in its subclass, `jobs.Store`."""

    def __init__(
        self,
        path: str,
        *,
        read_only: bool | None = None,
        busy_timeout_s: float = 30.0,
        full_check: bool = False,
    ) -> None:
        """Open (or create) the database at `path`. `read_only` (default: when the state
        folder or the file is not writable) opens it for reading only, so `ls` and `show`
        work on a read-only folder. Raises a `faults.StorageError` for a damaged, foreign,
        too new or (read-only) too old database; nothing is written to any of them."""
        self.path = path
        self._joining: list[int] = []  # made pending in the open transaction
        self._checked = path == ":memory:"  # quick_check done before the first write
        self.full_check = full_check
        self.read_only = (
            read_only if read_only is not None else path != ":memory:" and not writable(path)
        )
        self._why_read_only: faults.StorageError | None = None
        try:
            self._open(path, busy_timeout_s)
        except faults.DiskFull as e:
            if self.read_only:
                raise
            # A full disk cannot hold WAL's shared-memory file: read what is there, and
            # say why when a write is asked for.
            self.read_only, self._why_read_only = True, e
            self._open(path, busy_timeout_s)

    def _open(self, path: str, busy_timeout_s: float) -> None:
        try:
            self.db = connect(path, self.read_only, busy_timeout_s)
        except sqlite3.Error as e:
            raise faults.classify(e, path) or e from None
        self.db.create_function("iso", 1, iso, deterministic=True)
        self.db.create_function("runtime_s", 3, runtime_s, deterministic=True)
        try:
            schema.version_of(self.db, path)  # a foreign or newer file: before any write
            if path != ":memory:" and not self.read_only:
                self._wal()
            if not self.read_only:
                self.db.execute("PRAGMA synchronous = NORMAL")
            schema.migrate(self.db, time.time(), path, self.read_only, self.check)
        except sqlite3.Error as e:
            self.db.close()
            raise faults.classify(e, path) or e from None
        except faults.StorageError:
            self.db.close()
            raise

    def check(self) -> None:
        """Refuse a damaged database before this connection first writes to it, once per
        process. The whole file up to FULL_CHECK_BYTES (60 ms for 10,000 jobs with 200,000
        metric points); above it only the jobs table, which every write touches, so a
        command's cost does not grow with the metric history (1.5 s for 130 MB whole).
        The scheduler (`full=True` at its start) and `doctor` check everything."""
        if self._checked:
            return
        whole = self.full_check or self._size() <= FULL_CHECK_BYTES
        pragma = "PRAGMA quick_check(3)" if whole else "PRAGMA quick_check('jobs')"
        try:
            rows = [r[0] for r in self.db.execute(pragma)][:3]
        except sqlite3.Error as e:
            raise faults.classify(e, self.path) or e from None
        if rows != ["ok"]:
            raise faults.DatabaseCorrupt(
                f"the database {self.path} is damaged ({'; '.join(rows)[:200]}); nothing was"
                " written to it: run `tmuxtrain doctor` for how to recover"
            )
        self._checked = True

    def _size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def _wal(self) -> None:
        # Switching to WAL needs a moment alone with the file; concurrent first opens retry.
        for _ in range(100):
            try:
                self.db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.05)
        self.db.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction that takes the write lock at once (no upgrade deadlocks).
        A failure of the database itself comes out as a `faults.StorageError`."""
        if self._why_read_only is not None:
            raise self._why_read_only
        if self.read_only:
            raise faults.ReadOnly(
                f"cannot write {self.path}: the state folder is read-only; read commands"
                " (ls, show, log, metrics, events, gpus) work, this one needs write access"
            )
        try:
            self.check()
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise faults.classify(e, self.path) or e from None
        try:
            yield self.db
        except BaseException as e:
            if self.db.in_transaction:  # SQLite may have rolled back already (disk full)
                self.db.execute("ROLLBACK")
            self._joining.clear()
            self._rolled_back()
            if isinstance(e, sqlite3.Error):
                raise faults.classify(e, self.path) or e from None
            raise
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as e:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self._joining.clear()
            self._rolled_back()
            raise faults.classify(e, self.path) or e from None
        if self._joining:
            joining, self._joining = self._joining, []
            self._committed(joining)

    def _rolled_back(self) -> None:
        """What a subclass caches from the rolled-back transaction is dropped here."""

    def _committed(self, joining: list[int]) -> None:
        """Jobs made pending by the committed transaction (`_joining`)."""
