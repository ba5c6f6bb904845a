"""The store contract, run on `:memory:` and on a file; then what only a file can show
(permissions, reopening, concurrent submitters)."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tmuxtrain.api import Client
from tmuxtrain.core.errors import NotFound
from tmuxtrain.core.model import TRANSITIONS, JobSpec, JobState
from tmuxtrain.settings import Settings
from tmuxtrain.store import MIGRATIONS, Store
from tmuxtrain.store.schema import APPLICATION_ID

NOW = 1_700_000_000.0
LOGS = "/state/logs"


def spec(name: str = "job", **kw: Any) -> JobSpec:
    return JobSpec(name=name, command=f"echo {name}", cwd="/work", **kw)


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store(":memory:" if request.param == "memory" else str(tmp_path / "tmuxtrain.db"))
    try:
        yield s
    finally:
        s.close()


def add(store: Store, *names: str, after: tuple[int, ...] = ()) -> list[int]:
    return store.add_jobs([(spec(n), after, None) for n in names], NOW, LOGS)


# ---- adding and reading --------------------------------------------------------------------


def test_add_and_get(store: Store) -> None:
    s = spec("train", gpus=2, vram_mib=4096, priority=3, project="p", after=("base",))
    [i] = store.add_jobs([(s, (), {"A": "1"})], NOW, LOGS)
    job = store.get(i)
    assert job.id == i
    assert job.spec == s
    assert job.state is JobState.PENDING
    assert job.attempt == 1
    assert job.gpus == ()
    assert job.held is False
    assert job.submitted_at == NOW
    assert job.log_path == os.path.join(LOGS, f"{i}.log")
    assert job.after_ids == ()
    assert job.metrics == {}
    assert job.parent_id is None


def test_batch_dependencies_resolve_to_new_ids(store: Store) -> None:
    [old] = add(store, "old")
    ids = store.add_jobs(
        [
            (spec("a"), (old,), None),
            (spec("b"), (-1,), None),
            (spec("c"), (-1, -2, old), None),
        ],
        NOW,
        LOGS,
        parent_id=old,
    )
    a, b, c = ids
    assert old < a < b < c
    assert store.get(a).after_ids == (old,)
    assert store.get(b).after_ids == (a,)
    assert store.get(c).after_ids == (a, b, old)
    assert all(store.get(i).parent_id == old for i in ids)


def test_submitted_events(store: Store) -> None:
    ids = add(store, "a", "b")
    events = store.history.events()
    assert [(e["job_id"], e["kind"], e["name"]) for e in events] == [
        (ids[0], "submitted", "a"),
        (ids[1], "submitted", "b"),
    ]


def test_env_is_deduplicated(store: Store) -> None:
    env = {"PATH": "/bin", "HOME": "/home/u"}
    same = dict(env)
    other = {"PATH": "/usr/bin"}
    ids = store.add_jobs(
        [(spec("a"), (), env), (spec("b"), (), env), (spec("c"), (), same), (spec("d"), (), other)],
        NOW,
        LOGS,
    )
    ids += store.add_jobs([(spec("e"), (), dict(env)), (spec("f"), (), None)], NOW, LOGS)
    assert [store.env_of(i) for i in ids] == [env, env, env, other, env, None]
    assert store.db.execute("SELECT count(*) FROM envs").fetchone()[0] == 2


def test_get_unknown(store: Store) -> None:
    with pytest.raises(NotFound, match="no job 42"):
        store.get(42)


def test_jobs_filters(store: Store) -> None:
    a, b, c, d = add(store, "a", "b", "c", "d")
    assert store.transition(b, JobState.RUNNING, NOW, expect=[JobState.PENDING])
    assert store.transition(c, JobState.CANCELLED, NOW, expect=[JobState.PENDING])
    assert [j.id for j in store.jobs()] == [a, b, c, d]
    assert [j.id for j in store.jobs([JobState.PENDING])] == [a, d]
    assert [j.id for j in store.jobs([JobState.RUNNING, JobState.CANCELLED])] == [b, c]
    assert [j.id for j in store.jobs(ids=[d, a])] == [a, d]
    assert [j.id for j in store.jobs([JobState.PENDING], ids=[a, b])] == [a]
    assert store.jobs(ids=[]) == []
    assert store.jobs([]) == []
    assert store.jobs(ids=[999]) == []


def test_resolve(store: Store) -> None:
    a, b, c = add(store, "dup", "solo", "dup")
    assert store.resolve(b) == b
    assert store.resolve(str(b)) == b
    assert store.resolve(f" {b} ") == b
    assert store.resolve("solo") == b
    with pytest.raises(NotFound) as info:
        store.resolve("dup")
    assert str(info.value) == f"'dup' names 2 jobs ({a}, {c}): use an id"
    with pytest.raises(NotFound, match="no job named 'nope'"):
        store.resolve("nope")
    with pytest.raises(NotFound, match="no job 999"):
        store.resolve(999)
    assert store.ids_named("dup") == [a, c]


# ---- state changes -------------------------------------------------------------------------


def test_transition_only_from_expected_state(store: Store) -> None:
    [i] = add(store, "a")
    ok = store.transition(
        i,
        JobState.RUNNING,
        NOW + 1,
        expect=[JobState.PENDING],
        event={"gpus": [0, 1]},
        gpus=(0, 1),
        started_at=NOW + 1,
        tmux_window="@3",
    )
    assert ok
    job = store.get(i)
    assert (job.state, job.gpus, job.started_at, job.tmux_window) == (
        JobState.RUNNING,
        (0, 1),
        NOW + 1,
        "@3",
    )
    last = store.history.events()[-1]
    assert (last["job_id"], last["kind"], last["gpus"], last["t"]) == (
        i,
        "started",
        [0, 1],
        NOW + 1,
    )
    # A second scheduler racing from the old state loses, and changes nothing.
    n_events = len(store.history.events())
    assert not store.transition(i, JobState.RUNNING, NOW + 2, expect=[JobState.PENDING], pid=5)
    assert store.get(i).pid is None
    assert len(store.history.events()) == n_events


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (old, new)
        for old in JobState
        for new in JobState
        if new not in TRANSITIONS[old] and old is not new
    ],
)
def test_transition_not_in_table_is_refused(store: Store, old: JobState, new: JobState) -> None:
    [i] = add(store, "a")
    path = {
        JobState.PENDING: [],
        JobState.RUNNING: [JobState.RUNNING],
        JobState.SUCCEEDED: [JobState.RUNNING, JobState.SUCCEEDED],
        JobState.FAILED: [JobState.FAILED],
        JobState.CANCELLED: [JobState.CANCELLED],
    }[old]
    prev = JobState.PENDING
    for step in path:
        assert store.transition(i, step, NOW, expect=[prev])
        prev = step
    assert store.get(i).state is old
    n_events = len(store.history.events())
    assert not store.transition(i, new, NOW, expect=[old])
    assert store.get(i).state is old
    assert len(store.history.events()) == n_events


def test_finished_can_be_retried_to_pending(store: Store) -> None:
    [i] = add(store, "a")
    assert store.transition(i, JobState.FAILED, NOW, expect=[JobState.PENDING], exit_code=1)
    assert store.transition(
        i, JobState.PENDING, NOW, expect=[JobState.FAILED], attempt=2, exit_code=None
    )
    job = store.get(i)
    assert (job.state, job.attempt, job.exit_code) == (JobState.PENDING, 2, None)


def test_transition_refuses_unknown_fields(store: Store) -> None:
    [i] = add(store, "a")
    with pytest.raises(ValueError, match="not writable"):
        store.transition(i, JobState.RUNNING, NOW, expect=[JobState.PENDING], name="evil")
    assert store.get(i).state is JobState.PENDING


@pytest.mark.parametrize("column", ["state", "name", "spec", "id", "env_hash", "after_ids", "x"])
def test_update_refuses_unknown_columns(store: Store, column: str) -> None:
    [i] = add(store, "a")
    with pytest.raises(ValueError, match="not writable"):
        store.update(i, **{column: "x"})
    assert store.get(i).name == "a"
    assert store.get(i).state is JobState.PENDING


def test_update_writes_and_encodes(store: Store) -> None:
    [i] = add(store, "a")
    store.update(
        i, held=True, gpus=[2, 3], reason="why", metrics={"loss": 0.5}, pid=42, not_before=NOW
    )
    job = store.get(i)
    assert job.held is True
    assert job.gpus == (2, 3)
    assert (job.reason, job.metrics, job.pid, job.not_before) == ("why", {"loss": 0.5}, 42, NOW)
    store.update(i, held=0)
    assert store.get(i).held is False


def test_set_spec(store: Store) -> None:
    [i] = add(store, "a")
    new = spec("a", priority=7)
    store.set_spec(i, new.to_dict())
    assert store.get(i).spec == new
    assert store.get(i).priority == 7


def test_set_reasons_only_touches_pending(store: Store) -> None:
    a, b = add(store, "a", "b")
    store.update(b, reason="old")
    assert store.transition(b, JobState.RUNNING, NOW, expect=[JobState.PENDING])
    store.set_reasons({a: "waiting for 1 free GPU", b: "should not stick", 999: "nobody"})
    assert store.get(a).reason == "waiting for 1 free GPU"
    assert store.get(b).reason == "old"
    store.set_reasons({})
    assert store.get(a).reason == "waiting for 1 free GPU"


def test_attempts(store: Store) -> None:
    [i] = add(store, "a")
    store.update(i, gpus=[1], started_at=NOW, tmux_window="@1")
    store.record_attempt(store.get(i), None, None, "")
    store.record_attempt(store.get(i), NOW + 10, 1, "exit code 1")  # replaces attempt 1
    store.update(i, attempt=2, gpus=[0, 2], started_at=NOW + 20, tmux_window="@2")
    store.record_attempt(store.get(i), NOW + 30, 0, "")
    assert store.history.attempts(i) == [
        {
            "attempt": 1,
            "started_at": NOW,
            "finished_at": NOW + 10,
            "exit_code": 1,
            "gpus": [1],
            "tmux_window": "@1",
            "reason": "exit code 1",
            "detail": [],
            "vram_mib": None,
            "peak_mib": None,
        },
        {
            "attempt": 2,
            "started_at": NOW + 20,
            "finished_at": NOW + 30,
            "exit_code": 0,
            "gpus": [0, 2],
            "tmux_window": "@2",
            "reason": "",
            "detail": [],
            "vram_mib": None,
            "peak_mib": None,
        },
    ]
    assert store.history.attempts(999) == []


def test_counts(store: Store) -> None:
    assert store.counts() == {s.value: 0 for s in JobState}
    a, b, _ = add(store, "a", "b", "c")
    store.transition(a, JobState.RUNNING, NOW, expect=[JobState.PENDING])
    store.transition(b, JobState.CANCELLED, NOW, expect=[JobState.PENDING])
    assert store.counts() == {
        "pending": 1,
        "running": 1,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 1,
    }


# ---- events and metrics --------------------------------------------------------------------


def test_events_ordered_and_resumable(store: Store) -> None:
    [i] = add(store, "a")
    store.add_event(NOW + 1, i, "note", {"n": 1})
    store.add_event(NOW + 2, None, "scheduler", {"n": 2})
    store.add_event(NOW + 0.5, i, "note", {"n": 3})  # ids order, not time
    events = store.history.events()
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e["kind"] for e in events] == ["submitted", "note", "scheduler", "note"]
    assert [e.get("n") for e in events] == [None, 1, 2, 3]
    assert events[2]["job_id"] is None
    assert events[1]["t"] == NOW + 1
    rest = store.history.events(after_id=events[1]["id"])
    assert [e["n"] for e in rest] == [2, 3]
    assert store.history.events(after_id=events[-1]["id"]) == []
    assert [e["id"] for e in store.history.events(limit=2)] == ids[:2]


def test_metrics_history_and_latest(store: Store) -> None:
    a, b = add(store, "a", "b")
    store.add_metrics(a, [("loss", 2.0, 1), ("lr", 0.1, 1)], {"loss": 2.0}, NOW, 100)
    store.add_metrics(a, [("loss", 1.5, 2)], {"loss": 1.5, "epoch": 1}, NOW + 1, 250)
    store.add_metrics(b, [("loss", 9.0, None)], {"loss": 9.0}, NOW, 10)
    assert store.history.metric_history(a) == {
        "loss": [[NOW, 1, 2.0], [NOW + 1, 2, 1.5]],
        "lr": [[NOW, 1, 0.1]],
    }
    assert store.history.metric_history(b) == {"loss": [[NOW, None, 9.0]]}
    assert store.history.metric_history(999) == {}
    assert store.get(a).metrics == {"loss": 1.5, "epoch": 1}
    assert store.history.log_offset(a) == 250
    assert store.history.log_offset(999) == 0
    metric_events = [e for e in store.history.events() if e["kind"] == "metric"]
    assert len(metric_events) == 3
    assert metric_events[1]["metrics"] == {"loss": 1.5, "epoch": 1}
    # No samples: the offset moves on, but no event and no history.
    store.add_metrics(a, [], {"loss": 1.5, "epoch": 1}, NOW + 2, 300)
    assert store.history.log_offset(a) == 300
    assert len([e for e in store.history.events() if e["kind"] == "metric"]) == 3


def test_migrations_recorded(store: Store) -> None:
    names = [r[0] for r in store.db.execute("SELECT name FROM migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]


# ---- only on a file ------------------------------------------------------------------------


def test_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "tmuxtrain.db"
    s = Store(str(path))
    add(s, "a")
    for p in tmp_path.iterdir():  # the db and its -wal/-shm companions
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()


def test_reopen_keeps_data_and_migrations_idempotent(tmp_path: Path) -> None:
    path = str(tmp_path / "tmuxtrain.db")
    s = Store(path)
    first = add(s, "a", "b")
    s.close()
    s = Store(path)
    assert [j.name for j in s.jobs()] == ["a", "b"]
    rows = s.db.execute("SELECT name FROM migrations").fetchall()
    assert rows == [(name,) for name, _ in MIGRATIONS]
    more = add(s, "c")
    assert more[0] > max(first)
    s.close()
    s = Store(path)
    assert s.db.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)
    s.close()


def test_checkpoints_recorded_before_versions_survive_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tmuxtrain.store import schema

    path = str(tmp_path / "tmuxtrain.db")
    with monkeypatch.context() as m:  # a database made before 0006_checkpoint_versions
        m.setattr(schema, "MIGRATIONS", MIGRATIONS[:5])
        m.setattr(schema, "VERSION", 5)
        s = Store(path)
        with s.tx() as db:  # the jobs' own rows of that schema do not matter here
            db.execute("INSERT INTO checkpoints VALUES (1, '/w/a.pt', 1.0, 2)")
        s.close()
    s = Store(path)
    [train, ev] = add(s, "train", "train-eval-a.pt")
    assert (train, ev) == (1, 2)
    assert s.history.checkpoint_versions(train) == {"/w/a.pt": (1, None)}
    [ck] = s.history.checkpoints(train)
    assert (ck["path"], ck["version"], ck["eval_job_id"]) == ("/w/a.pt", 1, ev)
    assert s.get(train).after_evals == ()
    s.close()


def test_ids_never_reused(tmp_path: Path) -> None:
    path = str(tmp_path / "tmuxtrain.db")
    s = Store(path)
    ids = add(s, "a", "b", "c")
    # There is no delete in the interface; even if a row vanished, its id stays used.
    with s.tx() as db:
        db.execute("DELETE FROM jobs WHERE id = ?", (ids[-1],))
    s.close()
    s = Store(path)
    [new] = add(s, "d")
    assert new > ids[-1]
    s.close()


def test_data_version_moves_when_another_connection_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "tmuxtrain.db")
    reader, writer = Store(path), Store(path)
    before = reader.data_version()
    assert reader.data_version() == before
    add(writer, "a")
    assert reader.data_version() != before
    assert [j.name for j in reader.jobs()] == ["a"]
    reader.close()
    writer.close()


def _settings(home: str) -> Settings:
    return Settings(home=home, config_path=None, socket=None, session="tmuxtrain", gpus="none")


def _submit_ten(home: str, barrier: Any, out: Any) -> None:
    client = Client(_settings(home))
    barrier.wait(timeout=60)
    ids = []
    for _ in range(10):
        ids.extend(client.add_command("true", start=False, gpus=0))
    client.close()
    out.put(ids)


def test_concurrent_submitters(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    methods = multiprocessing.get_all_start_methods()
    ctx: Any = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier = ctx.Barrier(8)
    out = ctx.Queue()
    procs = [ctx.Process(target=_submit_ten, args=(home, barrier, out)) for _ in range(8)]
    for p in procs:
        p.start()
    returned = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    all_ids = [i for ids in returned for i in ids]
    assert len(all_ids) == 80
    assert len(set(all_ids)) == 80
    s = Store(_settings(home).db_path)
    jobs = s.jobs()
    assert len(jobs) == 80
    assert sorted(j.id for j in jobs) == sorted(all_ids)
    assert all(j.state is JobState.PENDING and j.spec.command == "true" for j in jobs)
    assert len([e for e in s.history.events() if e["kind"] == "submitted"]) == 80
    s.close()


def test_dependency_on_a_later_job_of_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(
        "defaults: {gpus: 0}\n"
        "jobs:\n  - {name: evaluate, command: x, after: [train]}\n  - {name: train, command: y}\n"
    )
    client = Client(_settings(str(tmp_path / "home")))
    try:
        evaluate, train = client.add_files([str(path)], start=False)
        assert client.store.get(evaluate).after_ids == (train,)
    finally:
        client.close()


def test_jobs_json_equals_job_json_for_every_kind_of_job(tmp_path: Path) -> None:
    """`ls --json` is built by SQLite; `show --json` from Job objects: key for key the same,
    floats to the last digit, awkward text intact."""
    import json

    from tmuxtrain.core.model import CheckpointSpec
    from tmuxtrain.store import job_json

    s = Store(str(tmp_path / "t.db"))
    specs = [
        JobSpec(name="a", command="x", cwd="/w", env={"K": "v"}, vram_mib=2048, priority=3, retries=2, timeout_s=60.5),
        JobSpec(name="b \"q\" ü\n", command="echo '{}' \\ ✓", cwd="/w", gpus=0, project="p", after=("a",),
                checkpoints=CheckpointSpec(watch="*.pt", eval="e {checkpoint}")),
        JobSpec(name="c", command="z", cwd="/w", gpus=2, priority=-1, project=""),
        JobSpec(name="d", command="z", cwd="/w"),
    ]  # fmt: skip
    a, b, c, d = s.add_jobs(
        [
            (specs[0], (), None),
            (specs[1], (-1,), {"A": "1"}),
            (specs[2], (), None),
            (specs[3], (), None),
        ],
        100.0,
        "/logs",
    )
    s.transition(
        a,
        JobState.RUNNING,
        101.0,
        expect=[JobState.PENDING],
        gpus=(0, 3),
        started_at=101.123456,
        tmux_window="@3",
        tmux_pane="%3",
    )
    latest = {"loss": 0.1 + 0.2, "lr": 3e-7, "step": 12345678901.0, "eta_s": 1e300}
    s.add_metrics(a, [("loss", 0.5, 10.0)], latest, 102.0, 77)
    s.transition(
        c,
        JobState.CANCELLED,
        103.0,
        expect=[JobState.PENDING],
        reason="cancelled by user",
        finished_at=103.0,
    )
    s.transition(d, JobState.RUNNING, 104.0, expect=[JobState.PENDING], started_at=104.0)
    s.transition(
        d,
        JobState.FAILED,
        2.675,
        expect=[JobState.RUNNING],
        finished_at=2.675 + 104.0,
        exit_code=-9,
    )
    s.update(b, held=True)
    # Requests raised after CUDA ran out of memory: to a size, and to whole GPUs.
    s.update(a, vram_source="raised", vram_request_mib=3072, vram_peak_mib=2500, restarts=1)
    s.update(d, vram_source="raised", vram_request_mib=None)
    for now in (200.0, 101.1239, 1e9 + 0.0005):
        listed = json.loads(s.jobs_json(None, now))
        wanted = [job_json(job, now) for job in s.jobs()]
        assert listed == wanted
        assert [list(x) for x in listed] == [list(x) for x in wanted]  # key order too
    assert listed[0]["metrics"]["loss"] == 0.30000000000000004
    assert [(x["vram_mib"], x["vram_declared_mib"], x["vram_source"]) for x in listed] == [
        (3072, 2048, "raised"), (None, None, "declared"), (None, None, "declared"),
        (None, None, "raised"),
    ]  # fmt: skip
    assert (listed[0]["vram_peak_mib"], listed[0]["restarts"]) == (2500, 1)
    assert [x["id"] for x in json.loads(s.jobs_json([JobState.RUNNING], 0.0))] == [a]
    assert json.loads(s.jobs_json([JobState.SUCCEEDED], 0.0)) == []
    s.close()


def test_an_edit_with_a_new_vram_ends_a_request_raised_after_an_oom(store: Store) -> None:
    spec = JobSpec(name="a", command="x", cwd="/", vram_mib=4096)
    [a] = store.add_jobs([(spec, (), None)], 1.0, "/logs")
    store.update(a, vram_source="raised", vram_request_mib=6144)
    store.set_spec(a, {**spec.to_dict(), "priority": 3})  # vram unchanged: still raised
    j = store.get(a)
    assert (j.vram_mib, j.vram_source, j.spec.priority) == (6144, "raised", 3)
    store.set_spec(a, {**spec.to_dict(), "vram_mib": 8192})
    j = store.get(a)
    assert (j.vram_mib, j.vram_source) == (8192, "declared")


@pytest.mark.parametrize("applied", range(1, len(MIGRATIONS)))
def test_every_earlier_schema_upgrades(tmp_path: Path, applied: int) -> None:
    """A database left by any earlier tmuxtrain (the first `applied` migrations, as that
    version numbered them) opens, gains the rest in order, and keeps its jobs."""
    path = str(tmp_path / "tmuxtrain.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name, sql in MIGRATIONS[:applied]:
        db.executescript(sql)
        db.execute("INSERT INTO migrations VALUES (?, 0)", (name,))
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {applied}")
    db.execute(
        "INSERT INTO jobs (name, state, spec, submitted_at) VALUES ('old', 'pending', ?, 0)",
        (json.dumps(JobSpec(name="old", command="true", cwd="/").to_dict()),),
    )
    db.close()
    s = Store(path)
    rows = s.db.execute("SELECT name FROM migrations ORDER BY name").fetchall()
    assert rows == [(name,) for name, _ in MIGRATIONS]
    assert [j.name for j in s.jobs()] == ["old"]
    assert json.loads(s.jobs_json(None, 0.0))[0]["name"] == "old"
    assert add(s, "new")[0] > s.jobs()[0].id
    s.close()
