"""A queue user's day, through the real CLI, tmux and scheduler (simulated GPUs): a bad
config queues nothing, requests that can never run are refused, limits and GPU subsets
hold, and every reason says in words why a job waits or failed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Env, wait_until
from tests.test_scheduler import add, job, states, wait_state


def config(tt: Env, text: str) -> None:
    path = Path(tt.settings.config_path or "")
    path.write_text("retry_backoff: 0.2s\ncancel_grace: 2s\nheadroom: 0\n" + text)


def test_a_bad_config_queues_nothing(tt: Env) -> None:
    config(tt, "polcy: fifo\n")
    proc = tt.cli("add", "--gpus", "0", "--", "true")
    assert proc.returncode == 2
    assert "config.yaml:4: polcy: unknown key 'polcy' (did you mean 'policy'?)" in proc.stderr
    assert tt.cli("ls", "--json", check=True).stdout.strip() == "[]"


def test_requests_that_can_never_run_are_refused_unless_forced(tt: Env) -> None:
    tt.write("big.yaml", "name: big\ncommand: 'true'\ngpus: 9\n")
    proc = tt.cli("add", "big.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "tmuxtrain add: big.yaml:1: gpus: 9 requested, tmuxtrain may use 2 GPUs here"
        " (add --force to queue it anyway)"
    )
    proc = tt.cli("add", "--vram", "100GiB", "--", "true")
    assert proc.returncode == 2 and "vram: 100 GiB per GPU, the largest GPU here has" in proc.stderr
    proc = tt.cli("add", "--gpus", "0", "--cwd", str(tt.root / "nowhere"), "--", "true")
    assert proc.returncode == 2 and f"cwd: no such folder {tt.root}/nowhere" in proc.stderr
    assert tt.cli("ls", "--json", check=True).stdout.strip() == "[]"
    [a] = add(tt, "--force", "--no-start", "big.yaml")
    assert job(tt, a)["gpus_requested"] == 9


def test_a_unit_less_vram_is_refused_with_its_likely_meaning(tt: Env) -> None:
    proc = tt.cli("add", "--vram", "10", "--", "true")
    assert proc.returncode == 2 and "did you mean 10GiB?" in proc.stderr


def test_cpu_jobs_are_limited_and_say_by_what(tt: Env) -> None:
    config(tt, "max_cpu_jobs: 1\n")
    release = tt.root / "go"
    cmd = f"until [ -e {release} ]; do sleep 0.05; done"
    ids = [i for _ in range(2) for i in add(tt, "--gpus", "0", "--no-start", "--", cmd)]
    tt.client().up()
    wait_state(tt, ids[0], "running")
    reason = wait_until(lambda: job(tt, ids[1])["reason"], what="a reason")
    assert reason == "held back by max_cpu_jobs (1 CPU-only jobs running)"
    release.touch()
    assert tt.client().wait(ids, timeout=30)


def test_only_the_configured_gpus_are_used_and_keep_free_leaves_one(tt: Env) -> None:
    tt.set("TMUXTRAIN_GPUS", "fake:4x24GiB")
    config(tt, "gpus: [1, 2, 3]\nkeep_free: 1\n")
    release = tt.root / "go"
    cmd = f"until [ -e {release} ]; do sleep 0.05; done"
    ids = [i for _ in range(3) for i in add(tt, "--gpus", "1", "--no-start", "--", cmd)]
    tt.client().up()
    wait_until(lambda: list(states(tt).values()).count("running") == 2, what="2 running")
    running = [i for i in ids if job(tt, i)["state"] == "running"]
    assert sorted(job(tt, i)["gpus"][0] for i in running) == [1, 2]  # not 0; 3 kept free
    waiting = next(i for i in ids if i not in running)
    assert "keep_free" in wait_until(lambda: job(tt, waiting)["reason"], what="a reason")
    gpus = json.loads(tt.cli("gpus", "--json", check=True).stdout)
    assert [g["usable"] for g in gpus] == [False, True, True, True]
    release.touch()
    assert tt.client().wait(ids, timeout=30)


def test_a_scheduler_started_with_cuda_visible_devices_uses_only_those(tt: Env) -> None:
    tt.set("TMUXTRAIN_GPUS", "fake:3x24GiB")
    tt.set("CUDA_VISIBLE_DEVICES", "2")
    [a] = add(tt, "--gpus", "1", "--", "true")
    assert wait_state(tt, a, "succeeded")["gpus"] == [2]
    proc = tt.cli("add", "--gpus", "2", "--", "true")
    assert proc.returncode == 2 and "gpus: 2 requested, tmuxtrain may use 1 GPU here" in proc.stderr


def test_a_reason_names_the_memory_other_processes_hold(tt: Env) -> None:
    gpus = tt.write(
        "gpus.yaml", "- {name: A, memory: 24GiB, processes: [{pid: 4711, memory: 20GiB}]}\n"
    )
    tt.set("TMUXTRAIN_GPUS", f"fake:{gpus}")
    [a] = add(tt, "--", "true")
    reason = wait_until(lambda: job(tt, a)["reason"], what="a reason")
    assert reason == "waiting for 1 free GPU: GPU 0 has 20 GiB used by other processes (pid 4711)"
    gpus.write_text("- {name: A, memory: 24GiB}\n")  # the other user's process ends
    wait_state(tt, a, "succeeded")


def test_failed_jobs_say_why_in_words(tt: Env) -> None:
    script = tt.write("crash.py", "def main():\n    raise KeyError('hidden_size')\nmain()\n")
    [a] = add(tt, "--gpus", "0", "--", "pyhton train.py")
    [b] = add(tt, "--gpus", "0", "--", f"python3 {script}")
    missing = tt.root / "gone"
    missing.mkdir()
    [c] = add(tt, "--gpus", "0", "--cwd", str(missing), "--hold", "--", "true")
    missing.rmdir()  # after submission (which refuses a missing folder), before the start
    tt.client().hold([c], False)
    assert wait_state(tt, a, "failed")["reason"] == "command not found (exit code 127)"
    jb = wait_state(tt, b, "failed")
    assert jb["reason"] == "KeyError: 'hidden_size' (exit code 1)"
    shown = tt.client().show(b)
    assert "Traceback (most recent call last):" not in shown["attempts"][0]["detail"][-1]
    assert shown["attempts"][0]["detail"][-1] == "KeyError: 'hidden_size'"
    assert wait_state(tt, c, "failed")["reason"] == f"cannot cd to {missing} (exit code 126)"


def test_add_prints_what_it_queued_when_the_scheduler_cannot_start(tt: Env) -> None:
    tt.set("TMUXTRAIN_GPUS", "bogus")  # the scheduler refuses it at start
    proc = tt.cli("add", "--gpus", "0", "--", "true")
    assert proc.returncode == 3
    [queued] = [int(x) for x in proc.stdout.split()]
    assert "queued, but the scheduler did not start" in proc.stderr
    assert job(tt, queued)["state"] == "pending"


def test_held_jobs_from_a_flag_or_the_file(tt: Env) -> None:
    tt.write("held.yaml", "name: h\ncommand: 'true'\ngpus: 0\nhold: true\n")
    [a] = add(tt, "held.yaml")
    [b] = add(tt, "--hold", "--gpus", "0", "--", "true")
    for i in (a, b):
        j = job(tt, i)
        assert (j["state"], j["held"]) == ("pending", True)
    tt.cli("release", str(a), str(b), check=True)
    assert tt.client().wait([a, b], timeout=30)
    assert os.path.exists(job(tt, a)["log_path"])
