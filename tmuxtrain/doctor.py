"""`tmuxtrain doctor`: what state this installation is in, and how to recover from what is
wrong. It only reads: the database is opened read-only and checked whole
(`PRAGMA integrity_check`), so a damaged one is looked at, never written.

Each check is a line: the state folder, the database (integrity, schema version, jobs),
tmux, the GPU probe, the scheduler. The exit status is the database's own (4-10, as every
command reports it) when the database fails, else 1 when another check fails, else 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from tmuxtrain.settings import Settings


@dataclass(frozen=True)
class Check:
    """One thing looked at: whether it is fine, what was found, what to do about it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    exit_code: int = 0  # the storage exit status of a failing database check


def run_checks(settings: Settings) -> list[Check]:
    return [
        _home(settings),
        database(settings),
        _tmux(settings),
        _gpus(settings),
        _scheduler(settings),
    ]


def exit_status(checks: list[Check]) -> int:
    for c in checks:
        if not c.ok and c.exit_code:
            return c.exit_code
    return 0 if all(c.ok for c in checks) else 1


def _home(s: Settings) -> Check:
    if not os.path.isdir(s.home):
        return Check("state folder", True, f"{s.home} does not exist yet (the first add makes it)")
    st = os.stat(s.home)
    if st.st_uid != os.getuid():
        return Check(
            "state folder",
            False,
            f"{s.home} belongs to uid {st.st_uid}",
            "use a folder of your own",
        )
    if not os.access(s.home, os.W_OK):
        return Check(
            "state folder",
            True,
            f"{s.home} is read-only: ls, show, log, metrics, events and gpus work, nothing else",
        )
    return Check("state folder", True, f"{s.home} (mode {st.st_mode & 0o777:o})")


def database(s: Settings) -> Check:
    """The database read-only: opens, is ours, its schema, integrity_check, its jobs."""
    import sqlite3

    from tmuxtrain.store import faults
    from tmuxtrain.store.opening import connect
    from tmuxtrain.store.schema import VERSION, version_of

    path = s.db_path
    if not os.path.exists(path):
        return Check("database", True, f"{path} does not exist yet (the first add makes it)")
    try:
        db = connect(path, True, 5.0)
        try:
            version = version_of(db, path)
            problems = [r[0] for r in db.execute("PRAGMA integrity_check(20)")]
            if problems != ["ok"]:
                raise faults.DatabaseCorrupt(
                    f"{path} is damaged: {'; '.join(problems)[:300]}"
                ) from None
            jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0] if version else 0
        finally:
            db.close()
    except (sqlite3.Error, faults.StorageError) as e:
        fault = faults.classify(e, path)
        if fault is None:
            raise
        return Check("database", False, str(fault), _fix(fault, path), fault.exit_code)
    size = os.path.getsize(path)
    detail = f"{path}: integrity ok, schema {version} of {VERSION}, {jobs} jobs, {size} bytes"
    if version < VERSION:
        detail += " (the next command that can write upgrades it)"
    return Check("database", True, detail)


def _fix(fault: Exception, path: str) -> str:
    from tmuxtrain.store import faults

    if isinstance(fault, faults.DatabaseCorrupt):
        return faults.recover_hint(path)
    if isinstance(fault, faults.NotOurDatabase):
        return "point TMUXTRAIN_HOME at another folder, or move the file aside"
    if isinstance(fault, faults.SchemaTooNew):
        return "upgrade tmuxtrain (pip install -U tmuxtrain)"
    if isinstance(fault, faults.SchemaTooOld):
        return "run any tmuxtrain command once with write access to the state folder"
    if isinstance(fault, faults.DatabaseLocked):
        return "another process holds a long write; try again, or see `tmuxtrain status`"
    if isinstance(fault, faults.DiskFull):
        return "free space on the disk of the state folder (df -h), check dmesg for disk errors"
    return "give this user write access to the state folder"


def _tmux(s: Settings) -> Check:
    exe = shutil.which("tmux")
    if exe is None:
        return Check("tmux", False, "tmux is not installed", "install tmux (apt install tmux)")
    version = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout.strip()
    argv = [exe] + (["-L", s.socket] if s.socket else [])
    alive = subprocess.run([*argv, "has-session", "-t", s.session], capture_output=True)
    where = f"session {s.session}" + (f" on socket {s.socket}" if s.socket else "")
    state = "runs" if alive.returncode == 0 else "is not running (the scheduler starts it)"
    return Check("tmux", True, f"{version}; {where} {state}")


def _gpus(s: Settings) -> Check:
    from tmuxtrain.daemonctl import gpu_source_for
    from tmuxtrain.gpus import open_probe

    try:
        probe = open_probe(gpu_source_for(s), base_dir=os.getcwd())
        try:
            gpus = probe.probe()
        finally:
            probe.close()
    except Exception as e:  # any failure of the probe is what this check reports
        return Check("gpus", False, f"the GPU probe failed: {e}", "see TMUXTRAIN_GPUS")
    names = ", ".join(sorted({g.name for g in gpus})) or "none"
    return Check("gpus", True, f"{probe.kind}: {len(gpus)} GPUs ({names}); {probe.note}".strip())


def _scheduler(s: Settings) -> Check:
    from tmuxtrain.daemonctl import scheduler_pid

    pid = scheduler_pid(s.lock_path)
    if pid is None:
        return Check("scheduler", True, "not running (tmuxtrain up, or the next add, starts it)")
    return Check("scheduler", True, f"running (pid {pid}); its log: {s.scheduler_log}")
