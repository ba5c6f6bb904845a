"""The scheduler simulated: the real scheduler parts and a real SQLite store, driven in
process by a simulated clock, with an in-memory runner whose processes run, fail, outlive
their wrappers and lose their tmux server, and with the scheduler killed at the worst
moments. See tests/sim.py for what is checked after every tick."""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sim import Sim, random_jobs
from tmuxtrain.core.model import Config, JobSpec, JobState

POLICIES = ("fifo", "priority", "fair-share")


def fault(sim: Sim, rng: random.Random) -> str:
    """One thing going wrong now, as it would on a user's machine."""
    kind = rng.choice(
        ["crash", "before-window", "after-window", "answer-lost", "kill-server", "kill-wrapper",
         "cancel", "config"]
    )  # fmt: skip
    if kind == "crash":
        sim.crash()
    elif kind in ("before-window", "after-window", "answer-lost"):
        sim.runner.crash_next = kind
    elif kind == "kill-server":
        sim.runner.kill_server()
    elif kind == "kill-wrapper":
        live = sim.runner.alive()
        if live:
            sim.runner.kill_wrapper(rng.choice(live).job_id)
    elif kind == "cancel":
        store = sim.scheduler().store
        for job in store.jobs([JobState.PENDING, JobState.RUNNING])[:3]:
            if job.state is JobState.PENDING:
                store.cancel_pending(job.id, "cancelled by user", sim.clock.now)
            else:
                store.update(job.id, cancel_requested_at=sim.clock.now, cancel_reason="by user")
    else:  # the user edits the config and the scheduler restarts with it
        sim.crash()
        sim.config = replace(sim.config, policy=rng.choice(POLICIES), backfill=rng.random() < 0.7)
    return kind


def test_five_thousand_jobs_with_restarts_and_faults(tmp_path: Path) -> None:
    """5,000 jobs of every kind on 8 GPUs, submitted over time, with the scheduler killed
    and restarted, tmux killed, wrappers killed, cancels and config changes in between."""
    rng = random.Random(20261205)
    config = Config(retry_backoff_s=5.0, cancel_grace_s=10.0, headroom_mib=1024)
    sim = Sim(tmp_path, config=config, seed=1)
    faults: list[str] = []
    for batch in range(50):
        sim.add(random_jobs(rng, 100, batch * 100 + 1))
        for _ in range(3):
            sim.run(rng.choice([40.0, 80.0, 120.0]))
            faults.append(fault(sim, rng))
    sim.run_until_done()
    counts = sim.finish()
    assert counts["jobs"] == 5000
    assert counts["restarts"] >= 20
    # Every kind of fault happened, and the runs did what they say.
    assert set(faults) >= {"crash", "before-window", "after-window", "answer-lost",
                           "kill-server", "kill-wrapper", "cancel", "config"}  # fmt: skip
    assert counts["succeeded"] > 3500 and counts["failed"] > 200


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(5, 80),
    gpus=st.integers(1, 4),
    policy=st.sampled_from(POLICIES),
    backfill=st.booleans(),
    faults=st.lists(st.integers(0, 2**16), max_size=12),
)
def test_random_queues_and_faults_keep_every_promise(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    n: int,
    gpus: int,
    policy: str,
    backfill: bool,
    faults: list[int],
) -> None:
    config = Config(
        policy=policy, backfill=backfill, retry_backoff_s=2.0, cancel_grace_s=4.0,
        headroom_mib=0,
    )  # fmt: skip
    sim = Sim(tmp_path_factory.mktemp("sim"), gpus=gpus, gpu_mib=40 * 1024, config=config)
    rng = random.Random(seed)
    sim.add(random_jobs(rng, n, 1, max_gpus=gpus, max_vram_mib=40 * 1024))
    for f in faults:
        sim.run(f % 97)
        fault(sim, random.Random(f))
    sim.run_until_done()
    counts = sim.finish()
    assert counts["jobs"] == n


# ---- the crash holes, one by one ----------------------------------------------------------


def one_job(sim: Sim, command: str = "sim 30", **kw: object) -> int:
    spec = JobSpec(name="one", command=command, cwd="/", vram_mib=None, **kw)  # type: ignore[arg-type]
    [job_id] = sim.add([(spec, ())])
    return job_id


def test_a_crash_after_the_window_was_made_adopts_the_job(tmp_path: Path) -> None:
    """The scheduler dies between claiming a job and recording its window: on restart the
    job is found by its run token and adopted, ends with its real exit code, ran once, and
    nothing else gets its GPU meanwhile."""
    sim = Sim(tmp_path, gpus=1)
    a = one_job(sim, "sim 30 exit=0")
    b = one_job(sim, "sim 5")
    sim.runner.crash_next = "after-window"
    sim.run(10)
    assert sim.restarts == 1
    store = sim.scheduler().store
    ja = store.get(a)
    assert ja.state is JobState.RUNNING and ja.tmux_window is not None  # adopted
    assert store.get(b).state is JobState.PENDING  # the GPU stays a's
    sim.run_until_done()
    sim.finish()
    assert store.get(a).state is JobState.SUCCEEDED and store.get(a).attempt == 1
    assert [(j, att) for j, att, _ in sim.runner.launches] == [(a, 1), (b, 1)]


def test_a_crash_before_the_window_was_made_runs_the_job_later_as_the_same_attempt(
    tmp_path: Path,
) -> None:
    sim = Sim(tmp_path, gpus=1)
    a = one_job(sim)
    sim.runner.crash_next = "before-window"
    sim.run(3)
    store = sim.scheduler().store
    events = [e["kind"] for e in store.history.events() if e["job_id"] == a]
    assert "requeued" in events and "failed" not in events
    sim.run_until_done()
    sim.finish()
    j = store.get(a)
    assert (j.state, j.attempt) == (JobState.SUCCEEDED, 1)


def test_a_lost_start_answer_is_found_again(tmp_path: Path) -> None:
    sim = Sim(tmp_path, gpus=1)
    a = one_job(sim, "sim 20 exit=3")
    sim.runner.crash_next = "answer-lost"
    sim.run_until_done()
    sim.finish()
    j = sim.scheduler().store.get(a)
    assert (j.state, j.exit_code, j.attempt) == (JobState.FAILED, 3, 1)
    assert len(sim.runner.launches) == 1


def test_leftovers_keep_their_gpu_until_they_are_gone(tmp_path: Path) -> None:
    """A job whose wrapper is killed leaves a process that ignores SIGTERM: it is ended
    with SIGKILL after half the grace period, and only then does the next job get the GPU."""
    config = Config(cancel_grace_s=10.0, retry_backoff_s=0.0)
    sim = Sim(tmp_path, gpus=1, config=config)
    a = one_job(sim, "sim 100 leftover=60 ignore-term")
    b = one_job(sim, "sim 5")
    sim.run(2)
    killed_at = sim.clock.now
    assert sim.runner.kill_wrapper(a)
    sim.run(2)
    store = sim.scheduler().store
    assert store.get(a).state is JobState.RUNNING  # its leftovers still hold GPU 0
    assert "left running" in store.get(a).reason
    assert store.get(b).state is JobState.PENDING
    sim.run_until_done()
    sim.finish()
    start_b = next(t for j, _, t in sim.runner.launches if j == b)
    assert killed_at + 5.0 <= start_b < killed_at + 60  # after SIGKILL, long before 60 s
    assert store.get(a).state is JobState.FAILED


def test_tmux_dying_loses_running_jobs_retries_them_and_keeps_pending_ones(
    tmp_path: Path,
) -> None:
    sim = Sim(tmp_path, gpus=1, config=Config(retry_backoff_s=60.0))
    a = one_job(sim, "sim 50", retries=1)
    b = one_job(sim, "sim 50")
    sim.run(5)
    sim.runner.kill_server(down_for=20.0)  # and it takes a while to come back
    sim.run(3)
    store = sim.scheduler().store
    ja = store.get(a)
    assert (ja.state, ja.attempt) == (JobState.PENDING, 2)  # lost, so retried (after 60 s)
    jb = store.get(b)
    assert (jb.state, jb.attempt) == (JobState.PENDING, 1)  # could not start: waits
    assert "will try again" in jb.reason
    sim.run_until_done()
    sim.finish()
    assert store.get(a).state is JobState.SUCCEEDED
    assert store.get(b).state is JobState.SUCCEEDED and store.get(b).attempt == 1


def test_a_failed_tick_is_tried_again_a_second_later_and_a_gone_state_folder_stops_it(
    tmp_path: Path,
) -> None:
    """A tick that keeps failing (here: its database connection is gone) must not spin:
    four such ticks took a leaked scheduler to 27 % of a core. A scheduler whose state
    folder is gone (deleted, or its file system unmounted) stops instead of retrying."""
    from tmuxtrain.daemon.loop import FAILED_TICK_WAIT_S

    sim = Sim(tmp_path)
    s = sim.scheduler()
    s.store.db.close()  # every tick fails from now on
    start = sim.clock.now
    assert s.run(max_ticks=5) == "5 ticks"
    assert sim.clock.now - start >= 4 * FAILED_TICK_WAIT_S
    s.stopping = ""
    wait = sim.clock.wait

    def vanish(seconds: float, fds: Sequence[int]) -> list[int]:  # between two ticks
        shutil.rmtree(sim.settings.home, ignore_errors=True)
        return wait(seconds, fds)

    sim.clock.wait = vanish  # type: ignore[method-assign]
    assert s.run(max_ticks=50) == "the state folder is gone"
