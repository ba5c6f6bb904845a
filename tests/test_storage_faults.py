"""Failing storage, through the real CLI and real SQLite files: every fault is one line on
stderr with its own exit status, a damaged database is never written, and schema upgrades
work from every earlier schema."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Env, stop_scheduler, wait_until
from tmuxtrain.core.model import JobSpec
from tmuxtrain.store import MIGRATIONS, Store, faults
from tmuxtrain.store.schema import APPLICATION_ID, VERSION


def queued(tt: Env, n: int = 2) -> list[int]:
    ids = []
    for i in range(n):
        proc = tt.cli("add", "--no-start", "--gpus", "0", "--name", f"j{i}", "--", "true")
        assert proc.returncode == 0, proc.stderr
        ids += [int(x) for x in proc.stdout.split()]
    return ids


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_line(proc: subprocess.CompletedProcess[str], status: int, words: str) -> None:
    """Exit `status`, one line on stderr that says `words`, no traceback."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert words in proc.stderr, proc.stderr


def checkpointed(tt: Env) -> str:
    """The database with its WAL folded in, so the file alone holds everything."""
    db = sqlite3.connect(tt.settings.db_path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return tt.settings.db_path


def test_a_corrupt_page_is_refused_before_any_write(tt: Env) -> None:
    queued(tt)
    path = checkpointed(tt)
    db = sqlite3.connect(path)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    [root] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'metrics'").fetchone()
    db.close()
    with open(path, "r+b") as f:  # a page `add` never touches: only a check finds it
        f.seek((root - 1) * page)
        f.write(b"\xa5" * page)
    before = digest(path)
    proc = tt.cli("add", "--no-start", "--gpus", "0", "--", "true")
    one_line(proc, 6, "is damaged")
    assert "tmuxtrain doctor" in proc.stderr
    assert digest(path) == before
    doctor = tt.cli("doctor")
    assert doctor.returncode == 6 and "sqlite3" in doctor.stdout and ".recover" in doctor.stdout


def smash_root_page(path: str, table: str) -> None:
    db = sqlite3.connect(path)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    [root] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    db.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xa5" * page)


def test_a_large_database_checks_the_jobs_table_per_command_and_everything_at_start(
    tt: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above FULL_CHECK_BYTES a command checks the jobs table only (its cost must not grow
    with the metric history); the scheduler, starting, checks the whole file."""
    from tmuxtrain.store import opening

    queued(tt)
    path = checkpointed(tt)
    smash_root_page(path, "metrics")
    monkeypatch.setattr(opening, "FULL_CHECK_BYTES", 0)  # every database is "large"
    spec = JobSpec(name="x", command="true", cwd="/")
    s = Store(path)
    s.add_jobs([(spec, (), None)], 1.0, "/logs")  # the damage is in metrics: not seen here
    s.close()
    with pytest.raises(faults.DatabaseCorrupt):
        Store(path, full_check=True).add_jobs([(spec, (), None)], 1.0, "/logs")
    smash_root_page(checkpointed(tt), "jobs")
    before = digest(path)
    with pytest.raises(faults.DatabaseCorrupt):
        Store(path).add_jobs([(spec, (), None)], 1.0, "/logs")
    assert digest(path) == before
    for leftover in (path, path + "-wal", path + "-shm"):  # nothing ran: no leftovers to read
        Path(leftover).unlink(missing_ok=True)


def test_a_truncated_database(tt: Env) -> None:
    queued(tt, 30)
    path = checkpointed(tt)
    size = os.path.getsize(path)
    os.truncate(path, size // 2)
    for cmd in (["ls"], ["add", "--no-start", "--gpus", "0", "--", "true"], ["status"]):
        one_line(tt.cli(*cmd), 6, "is damaged")
    assert os.path.getsize(path) == size // 2


def test_a_zero_byte_database_is_refused_when_jobs_ran_here(tt: Env) -> None:
    queued(tt)
    Path(tt.settings.logs_dir, "1.log").write_text("output\n")
    path = tt.settings.db_path
    for extra in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + extra)
    os.truncate(path, 0)
    one_line(tt.cli("ls"), 6, "is empty (0 bytes) but jobs ran here")
    one_line(tt.cli("add", "--no-start", "--gpus", "0", "--", "true"), 6, "mv ")
    assert os.path.getsize(path) == 0


def test_a_zero_byte_database_with_no_history_is_a_new_one(tt: Env) -> None:
    tt.settings.ensure_dirs()
    Path(tt.settings.db_path).touch(mode=0o600)  # created, then the process died
    assert queued(tt, 1) == [1]


def test_a_foreign_database_is_not_touched(tt: Env) -> None:
    tt.settings.ensure_dirs()
    db = sqlite3.connect(tt.settings.db_path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
    db.commit()
    db.close()
    before = digest(tt.settings.db_path)
    one_line(
        tt.cli("add", "--no-start", "--gpus", "0", "--", "true"), 7, "not a tmuxtrain database"
    )
    one_line(tt.cli("ls"), 7, "nothing was written to it")
    assert digest(tt.settings.db_path) == before


def test_text_where_the_database_should_be(tt: Env) -> None:
    tt.settings.ensure_dirs()
    Path(tt.settings.db_path).write_text("hello, not a database at all\n" * 100)
    one_line(tt.cli("ls"), 6, "is damaged")


def test_a_database_from_a_newer_tmuxtrain(tt: Env) -> None:
    queued(tt, 1)
    db = sqlite3.connect(checkpointed(tt))
    db.execute(f"PRAGMA user_version = {VERSION + 1}")
    db.commit()
    db.close()
    before = digest(tt.settings.db_path)
    one_line(tt.cli("ls"), 8, "made by a newer tmuxtrain")
    one_line(tt.cli("add", "--no-start", "--gpus", "0", "--", "true"), 8, "upgrade tmuxtrain")
    assert digest(tt.settings.db_path) == before


def test_a_database_locked_past_the_busy_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "tmuxtrain.db")
    Store(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = Store(path, busy_timeout_s=0.2)
        spec = JobSpec(name="a", command="true", cwd="/")
        with pytest.raises(faults.DatabaseLocked) as info:
            store.add_jobs([(spec, (), None)], 0.0, str(tmp_path))
        assert info.value.exit_code == 4 and "run the command again" in str(info.value)
        store.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextlib.contextmanager
def tiny_disk(where: Path, size: str = "2m", tt: Env | None = None) -> Iterator[Path]:
    """A tmpfs of `size` (root only: CI runs the suite as root). With `tt`, its scheduler
    is stopped before the tmpfs goes: once unmounted, its lock cannot be read, and a
    scheduler left running makes its tmux server again after the test killed it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    where.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        if tt is not None:
            stop_scheduler(tt.settings)
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def test_a_full_disk(tt: Env) -> None:
    with tiny_disk(tt.root / "disk", tt=tt) as disk:
        tt.set("TMUXTRAIN_HOME", str(disk / "home"))
        [a] = queued(tt, 1)
        fill(disk)
        proc = tt.cli("add", "--no-start", "--gpus", "0", "--", "true")
        one_line(proc, 5, "no space left" if "no space" in proc.stderr else "disk I/O error")
        assert [j["id"] for j in json.loads(tt.cli("ls", "--json", check=True).stdout)] == [a]
        os.unlink(disk / "filler")
        assert queued(tt, 1) == [a + 1]  # space again: it goes on


# ---- schema upgrades from every earlier schema ---------------------------------------------


def old_database(path: str, n: int, numbered: bool = True) -> None:
    """A database as a tmuxtrain with the first `n` migrations left it, with a job, its
    attempt, event, metric and checkpoint in it."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name, sql in MIGRATIONS[:n]:
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO migrations VALUES (?, 0)", (name,))
    if numbered:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {n}")
    spec = JobSpec(name="old", command="echo old", cwd="/work").to_dict()
    db.execute(
        "INSERT INTO jobs (name, state, spec, submitted_at, finished_at, exit_code, reason)"
        " VALUES ('old', 'failed', ?, 100, 160, 3, 'exit code 3')",
        (json.dumps(spec),),
    )
    db.execute(
        "INSERT INTO attempts (job_id, attempt, started_at, finished_at) VALUES (1,1,101,160)"
    )
    db.execute("INSERT INTO events (t, job_id, kind) VALUES (100, 1, 'submitted')")
    db.execute("INSERT INTO metrics VALUES (1, 'loss', 150, 10, 0.25)")
    db.execute("INSERT INTO checkpoints (job_id, path, seen_at) VALUES (1, '/ck/1.pt', 150)")
    db.close()


@pytest.mark.parametrize("n", range(1, VERSION))
@pytest.mark.parametrize("numbered", [True, False], ids=["numbered", "names-only"])
def test_upgrade_from_every_earlier_schema(tmp_path: Path, n: int, numbered: bool) -> None:
    path = str(tmp_path / "tmuxtrain.db")
    old_database(path, n, numbered)
    store = Store(path)
    [job] = store.jobs()
    assert (job.id, job.name, job.state.value, job.exit_code) == (1, "old", "failed", 3)
    assert (job.notes, job.queued, job.external_id, job.pid_boot) == ((), False, None, None)
    assert [a["finished_at"] for a in store.history.attempts(1)] == [160]
    assert [e["kind"] for e in store.history.events()] == ["submitted"]
    assert store.history.metric_history(1)["loss"][0][2] == 0.25
    spec = JobSpec(name="new", command="true", cwd="/")
    assert store.add_jobs([(spec, (1,), None)], 200.0, str(tmp_path)) == [2]
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == VERSION
    assert db.execute("SELECT count(*) FROM migrations").fetchone()[0] == VERSION
    db.close()


def test_an_old_schema_in_a_read_only_store_is_too_old(tmp_path: Path) -> None:
    path = str(tmp_path / "tmuxtrain.db")
    old_database(path, 1)
    with pytest.raises(faults.SchemaTooOld) as info:
        Store(path, read_only=True)
    assert info.value.exit_code == 9 and "with write access" in str(info.value)


# ---- a row that cannot be read ------------------------------------------------------------


def test_a_row_that_cannot_be_read_is_set_aside_and_the_queue_runs(tt: Env) -> None:
    a, b, c = queued(tt, 3)
    db = sqlite3.connect(tt.settings.db_path)
    # Valid JSON (the sweep index reads every spec written) that is no job's spec: as a
    # newer tmuxtrain's row, or one edited by hand, would be.
    db.execute("UPDATE jobs SET spec = '[\"j1\", 3]' WHERE id = ?", (b,))
    db.commit()
    db.close()
    listed = json.loads(tt.cli("ls", "--json", check=True).stdout)  # before the scheduler
    assert [j["id"] for j in listed] == [a, b, c]  # SQLite builds the JSON: what it can read
    one_line(tt.cli("show", str(b)), 2, "cannot be read")
    tt.cli("up", check=True)
    client = tt.client()
    assert client.wait([a, c], timeout=30)
    jb = wait_until(lambda: [j for j in client.list() if j["id"] == b and j["state"] == "failed"])
    assert jb[0]["reason"].startswith("set aside: its row cannot be read (")
    [event] = [e for e in client.events(job=b) if e["kind"] == "failed"]
    assert event["unreadable"]["spec"] == '["j1", 3]'
    assert tt.cli("show", str(b), check=True).returncode == 0


def test_the_scheduler_does_not_start_on_a_damaged_database(tt: Env) -> None:
    queued(tt)
    path = checkpointed(tt)
    with open(path, "r+b") as f:
        f.seek(2 * 4096)
        f.write(b"\x5a" * 4096)
    before = digest(path)
    one_line(tt.cli("up"), 6, "is damaged")
    assert not tt.client().scheduler_running()
    assert digest(path) == before
