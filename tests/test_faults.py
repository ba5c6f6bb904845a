"""Real faults against real tmux: the scheduler killed at the worst moment, a job that
outlives its wrapper, a recorded pid that now names someone else's process, and the tmux
server dying. Each of these lost or broke a job before the scheduler was rebuilt around
its Runner protocol (issue 10)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from tests.conftest import Env, wait_until
from tests.test_scheduler import add, job, wait_state
from tmuxtrain.core.model import JobState
from tmuxtrain.procs import process_start
from tmuxtrain.store import Store


def kill9_scheduler(tt: Env) -> None:
    pid = tt.client().status()["scheduler"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not tt.client().scheduler_running(), what="the scheduler gone")


def alive(pid: int) -> bool:
    return process_start(pid) is not None


def test_a_job_claimed_but_with_no_window_recorded_is_adopted_not_lost(tt: Env) -> None:
    """kill -9 between claiming a job and recording its window: on restart the window is
    found by the job's run token and adopted; the job ends with its real exit code, and its
    GPU is not given to another job while it runs."""
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    marker = tt.root / "go"
    [a] = add(tt, "--", f"until [ -e {marker} ]; do sleep 0.05; done; exit 7")
    window = wait_state(tt, a, "running")["tmux_window"]
    kill9_scheduler(tt)
    store = Store(tt.settings.db_path)
    store.update(a, tmux_window=None, tmux_pane=None, pid=None, pid_start=None, pid_boot=None)
    store.close()
    [b] = add(tt, "--no-start", "--", "echo b")
    tt.cli("up", check=True)
    wait_until(lambda: job(tt, a)["tmux_window"] == window, what="job a adopted")
    time.sleep(0.5)  # ticks in which b would wrongly get a's GPU
    assert job(tt, b)["state"] == "pending"
    marker.touch()
    ja = wait_state(tt, a, "failed")
    assert (ja["exit_code"], ja["attempt"]) == (7, 1)
    assert wait_state(tt, b, "succeeded")["attempt"] == 1


def test_a_job_claimed_whose_window_was_never_made_runs_once_as_the_same_attempt(
    tt: Env,
) -> None:
    """kill -9 after the claim, before tmux made the window: the job never ran, so it is
    pending again with the same attempt, never 'lost'."""
    [a] = add(tt, "--no-start", "--gpus", "0", "--", "echo ran-once")
    store = Store(tt.settings.db_path)
    assert store.transition(
        a, JobState.RUNNING, time.time(), expect=[JobState.PENDING], started_at=time.time()
    )
    store.close()
    tt.cli("up", check=True)
    j = wait_state(tt, a, "succeeded")
    assert j["attempt"] == 1
    log = Path(j["log_path"])  # its pipe may write the last output after the end is recorded
    wait_until(lambda: log.exists() and "ran-once" in log.read_text(), what="the job's output")
    assert log.read_text().count("ran-once") == 1
    kinds = [e["kind"] for e in tt.client().events() if e["job_id"] == a]
    assert "requeued" in kinds and "failed" not in kinds


def test_what_a_killed_job_leaves_running_is_ended_before_its_gpu_is_given_away(
    tt: Env,
) -> None:
    """The wrapper is killed; the job's processes live on (one in a session of its own,
    ignoring SIGHUP and SIGTERM, as a `setsid nohup` worker would). They are ended (SIGTERM,
    then SIGKILL after half the grace period), and only then does the next job start on
    the GPU."""
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    pidfile = tt.root / "worker.pid"
    worker = f"setsid sh -c 'trap \"\" HUP TERM; echo $$ > {pidfile}; while :; do sleep 1; done' &"
    [a] = add(tt, "--", f"{worker} sleep 60")
    [b] = add(tt, "--", "echo b")
    wait_state(tt, a, "running")
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the worker")
    leftover = int(pidfile.read_text())
    store = Store(tt.settings.db_path)
    wrapper = store.get(a).pid
    store.close()
    assert wrapper is not None
    os.kill(wrapper, signal.SIGKILL)
    wait_until(lambda: "left running" in job(tt, a)["reason"], what="leftovers noted")
    assert job(tt, b)["state"] == "pending"  # a's GPU is still a's
    wait_state(tt, b, "running", "succeeded")
    assert not alive(leftover)  # gone before b started
    assert job(tt, a)["state"] == "failed"


def test_a_recorded_pid_that_names_another_process_is_never_signalled(tt: Env) -> None:
    """After a reboot (or a pid reused) the pid recorded for a job names another process:
    a cancel's SIGKILL must reach neither it nor the session it leads."""
    victim = subprocess.Popen(["sh", "-c", "sleep 120 & wait"], start_new_session=True)
    try:
        member = wait_until(
            lambda: [c.pid for c in psutil.Process(victim.pid).children()], what="the session"
        )[0]
        [a] = add(tt, "--gpus", "0", "--", "sleep 60")
        wait_state(tt, a, "running")
        kill9_scheduler(tt)
        store = Store(tt.settings.db_path)
        store.update(
            a,
            pid=victim.pid,
            pid_start=(process_start(victim.pid) or 0) - 1000.0,  # another process's start
            cancel_requested_at=time.time() - 60,  # the SIGKILL step is long due
            cancel_reason="cancelled by user",
        )
        store.close()
        tt.cli("up", check=True)
        wait_state(tt, a, "cancelled")
        time.sleep(0.5)
        assert victim.poll() is None and alive(member), "killed what was not the job's"
    finally:
        with contextlib.suppress(OSError):
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()


def test_the_scheduler_survives_its_tmux_server_dying(tt: Env) -> None:
    """tmux is killed: the scheduler lives on (it is not inside tmux), marks the running
    job lost within seconds and retries it (it has a retry left), and starts the pending
    job on a new server, neither failed for good."""
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    [a] = add(tt, "--retries", "1", "--", 'sleep "$((30 / TMUXTRAIN_ATTEMPT - 14))"')
    [b] = add(tt, "--", "echo b")
    wait_state(tt, a, "running")
    pid = tt.client().status()["scheduler"]["pid"]
    killed_at = time.monotonic()
    tt.tmux("kill-server")
    wait_until(lambda: job(tt, a)["attempt"] == 2, timeout=10, what="job a retried")
    assert time.monotonic() - killed_at < 5
    assert tt.client().status()["scheduler"]["pid"] == pid  # the same scheduler
    assert wait_state(tt, b, "succeeded")["attempt"] == 1
    assert wait_state(tt, a, "succeeded", timeout=40)["attempt"] == 2
