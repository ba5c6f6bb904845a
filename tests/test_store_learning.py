"""Learned VRAM in the store: peaks only grow and belong to the running attempt, asks
change only while a job waits and never once raised, an edit learns again, and the job
JSON built by SQLite says the same as the one built from Jobs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tmuxtrain.core.model import JobSpec, JobState
from tmuxtrain.store import Store, job_json
from tmuxtrain.store.editing import edit_pending
from tmuxtrain.store.learning import record_peaks, set_learned, sweep_peaks


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(str(tmp_path / "t.db"))
    yield s
    s.close()


def sweep_jobs(store: Store, n: int, sweep: str = "sw", gpus: int = 1) -> list[int]:
    spec = JobSpec(name="s", command="python t.py", cwd="/", gpus=gpus, sweep=sweep)
    return store.add_jobs([(spec, (), None)] * n, 100.0, "/logs")


def run(store: Store, job_id: int, to: JobState | None = None) -> None:
    store.transition(job_id, JobState.RUNNING, 101.0, expect=[JobState.PENDING], gpus=(0,))
    if to is not None:
        store.transition(job_id, to, 102.0, expect=[JobState.RUNNING], finished_at=102.0)


def test_a_peak_only_grows_and_only_for_the_running_attempt(store: Store) -> None:
    a, b = sweep_jobs(store, 2)
    run(store, a)
    record_peaks(store, {a: (1, 3000), b: (1, 9999)})  # b is not running: ignored
    record_peaks(store, {a: (1, 2000)})  # lower: kept at 3000
    record_peaks(store, {a: (2, 5000)})  # another attempt's: ignored
    assert (store.get(a).vram_peak_mib, store.get(b).vram_peak_mib) == (3000, None)
    record_peaks(store, {a: (1, 4000)})
    assert store.get(a).vram_peak_mib == 4000


def test_a_sweeps_peak_counts_only_its_succeeded_jobs_of_that_gpu_count(store: Store) -> None:
    a, b, c = sweep_jobs(store, 3)
    [d] = sweep_jobs(store, 1, gpus=2)
    [e] = sweep_jobs(store, 1, sweep="other")
    for job_id, peak, end in [
        (a, 3000, JobState.SUCCEEDED),
        (b, 9000, JobState.FAILED),
        (c, 5000, JobState.SUCCEEDED),
        (d, 7000, JobState.SUCCEEDED),
        (e, 1000, JobState.SUCCEEDED),
    ]:
        run(store, job_id)
        record_peaks(store, {job_id: (1, peak)})
        store.transition(job_id, end, 102.0, expect=[JobState.RUNNING], finished_at=102.0)
    assert sweep_peaks(store, [("sw", 1), ("sw", 2)]) == {("sw", 1): 5000, ("sw", 2): 7000}
    assert sweep_peaks(store, []) == {}


def test_asks_change_only_while_waiting_and_never_once_raised(store: Store) -> None:
    a, b, c = sweep_jobs(store, 3)
    run(store, b)
    store.db.execute(
        "UPDATE jobs SET vram_source = 'raised', vram_request_mib = 30000 WHERE id = ?", (c,)
    )
    store.db.commit()
    changed = set_learned(store, {a: 4608, b: 4608, c: 4608}, {a: 4096}, 200.0)
    assert changed == [a]
    got = {j.id: (j.vram_source, j.vram_mib) for j in store.jobs()}
    assert got == {a: ("learned", 4608), b: ("declared", None), c: ("raised", 30000)}
    assert store.pending()[0].vram_mib == 4608  # the scheduler's cache sees it
    [event] = store.history.events(job_id=a, kinds=["learned"])
    assert (event["vram_mib"], event["peak_mib"]) == (4608, 4096)
    assert set_learned(store, {a: None}, {}, 201.0) == [a]  # back to its declaration
    assert (store.get(a).vram_source, store.get(a).vram_mib) == ("declared", None)


def test_an_edit_forgets_a_learned_ask(store: Store) -> None:
    [a] = sweep_jobs(store, 1)
    set_learned(store, {a: 4608}, {}, 200.0)
    new = JobSpec(name="s", command="python t.py --more", cwd="/", sweep="sw")
    assert edit_pending(store, a, new, ((), ()), 201.0, {"command": "python t.py --more"})
    assert (store.get(a).vram_source, store.get(a).vram_request_mib) == ("declared", None)


def test_the_json_of_a_learned_job_is_the_same_from_sqlite_and_python(store: Store) -> None:
    a, b = sweep_jobs(store, 2)
    run(store, a)
    record_peaks(store, {a: (1, 4096)})
    set_learned(store, {b: 4608}, {b: 4096}, 200.0)
    listed = json.loads(store.jobs_json(None, 300.0))
    assert listed == [job_json(j, 300.0) for j in store.jobs()]
    assert [(x["vram_mib"], x["vram_declared_mib"], x["vram_source"], x["vram_peak_mib"])
            for x in listed] == [(None, None, "declared", 4096), (4608, None, "learned", None)]  # fmt: skip
