"""What can go wrong with the database, each as one line (what happened, what to do) with
its own exit status, and the one place where SQLite's and the OS's errors are classified.

    4 locked past the busy timeout     5 no space left, or a disk I/O error
    6 damaged (corrupt, truncated)     7 not a tmuxtrain database
    8 made by a newer tmuxtrain        9 an older schema that cannot be upgraded here
   10 a write refused: the state folder is read-only

A damaged or foreign database is never written: the store refuses it before its first
write (`Store.tx` runs `PRAGMA quick_check` once per connection), and the scheduler stops
on one rather than going on.
"""

from __future__ import annotations

import errno
import sqlite3

from tmuxtrain.core.errors import TmuxtrainError

# SQLite's primary result codes (the low byte of an extended one).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26


class StorageError(TmuxtrainError):
    """The database cannot be used as asked; subclasses say why, each with its exit status."""

    exit_code = 5


class DatabaseLocked(StorageError):
    exit_code = 4


class DiskFull(StorageError):
    exit_code = 5


class DatabaseCorrupt(StorageError):
    exit_code = 6


class SchemaError(StorageError):
    """The file is not a tmuxtrain database this version can use; the message says which."""

    exit_code = 7


class NotOurDatabase(SchemaError):
    exit_code = 7


class SchemaTooNew(SchemaError):
    exit_code = 8


class SchemaTooOld(SchemaError):
    exit_code = 9


class ReadOnly(StorageError):
    exit_code = 10


# Errors after which nothing may be written to the file again (the scheduler stops).
FATAL = (DatabaseCorrupt, SchemaError)


def recover_hint(path: str) -> str:
    """How to get a queue back from a damaged database, in words a shell user can follow."""
    return (
        f"move it aside (mv {path} {path}.broken, with its -wal and -shm files) and start a"
        f" fresh queue, or save what it holds first: sqlite3 {path}.broken .recover"
        f" | sqlite3 {path}"
    )


def classify(e: BaseException, path: str) -> StorageError | None:
    """The StorageError an exception from the store (or the OS under it) stands for, or
    None when it is not about storage."""
    if isinstance(e, StorageError):
        return e
    if isinstance(e, sqlite3.Error):
        code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
        text = str(e)
        if code in (_BUSY, _LOCKED) or "database is locked" in text:
            return DatabaseLocked(
                f"the database {path} stayed locked past the busy timeout (another tmuxtrain"
                " process holds a long write): run the command again in a moment"
            )
        if code == _FULL:
            return DiskFull(
                f"cannot write {path}: no space left on the device; nothing was changed:"
                " free some space and run the command again"
            )
        if code == _IOERR:
            return DiskFull(
                f"cannot write {path}: disk I/O error (the disk is full or failing); nothing"
                " was changed: free some space or check the disk, then `tmuxtrain doctor`"
            )
        if code in (_CORRUPT, _NOTADB):
            return DatabaseCorrupt(
                f"the database {path} is damaged ({text}); nothing was written to it: run"
                " `tmuxtrain doctor` for how to recover"
            )
        if code in (_READONLY, _CANTOPEN):
            return ReadOnly(
                f"cannot write {path}: the state folder is read-only ({text}); read commands"
                " (ls, show, log, metrics, events, gpus) work, this one needs write access"
            )
        return None
    if isinstance(e, OSError):
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            where = e.filename or path
            return DiskFull(
                f"cannot write {where}: no space left on the device: free some space and run"
                " the command again"
            )
        if e.errno == errno.EROFS:
            return ReadOnly(
                f"cannot write {e.filename or path}: read-only file system; read commands"
                " work, this one needs write access"
            )
    return None
