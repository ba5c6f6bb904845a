"""End to end, OOM-aware retry and preemption: a real tmux server, the real scheduler
process and real job processes; only the GPUs are simulated (a fake GPU file the jobs
write their own pid into, as a CUDA context would show in NVML)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import FAST_CONFIG, Env, wait_until

GIB = 1024


def show(tt: Env, job_id: int) -> dict[str, Any]:
    return tt.client().show(job_id)


def add(tt: Env, path: Path) -> int:
    [job_id] = tt.cli("add", str(path), check=True).stdout.split()
    return int(job_id)


def wait_for(tt: Env, job_id: int, what: str, cond: Any, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        j = show(tt, job_id)
        return j if cond(j) else None

    found: dict[str, Any] = wait_until(check, timeout, what=f"job {job_id}: {what}")
    return found


OOM_JOB = """\
import os, pathlib, sys, time
gpus = pathlib.Path(sys.argv[1])
here = pathlib.Path(sys.argv[2])

def gpu_file(processes):
    tmp = gpus.with_suffix(".tmp")
    tmp.write_text("- {name: Fake GPU, memory: 24GiB, processes: [%s]}\\n" % processes)
    os.replace(tmp, gpus)

if os.environ["TMUXTRAIN_ATTEMPT"] == "1":
    gpu_file("{pid: %d, memory: 6GiB}" % os.getpid())  # its CUDA context, as NVML sees it
    while not (here / "go").exists():
        time.sleep(0.05)
    gpu_file("")  # the context goes with the process
    print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
    sys.exit(1)
print("attempt", os.environ["TMUXTRAIN_ATTEMPT"], "fits", flush=True)
"""


def test_a_retry_after_cuda_ran_out_of_memory_asks_for_more_and_says_so(tt: Env) -> None:
    """A job declares 4 GiB, is seen using 6 GiB and runs out of memory: its retry asks for
    9 GiB (1.5 x the peak), so it waits while another job holds 16 of the GPU's 24 GiB
    (4 GiB would have fit), says why, and runs once that job ends."""
    gpus = tt.write("gpus.yaml", "- {name: Fake GPU, memory: 24GiB}\n")
    tt.set("TMUXTRAIN_GPUS", f"fake:{gpus}")
    tt.write("oom.py", OOM_JOB)
    blocker = add(tt, tt.write("blocker.yaml", f"""
name: blocker
vram: 16GiB
command: while [ ! -e {tt.root}/release ]; do sleep 0.05; done
"""))  # fmt: skip
    wait_for(tt, blocker, "running", lambda j: j["state"] == "running")
    job = add(tt, tt.write("job.yaml", f"""
name: grows
vram: 4GiB
retries: 2
command: {sys.executable} oom.py {gpus} {tt.root}
"""))  # fmt: skip
    wait_for(tt, job, "its 6 GiB seen", lambda j: j["vram_peak_mib"] == 6 * GIB)
    (tt.root / "go").touch()
    j = wait_for(tt, job, "waiting for 9 GiB", lambda j: "waiting for" in j["reason"])
    assert (j["state"], j["attempt"]) == ("pending", 2)
    assert j["reason"] == (
        "waiting for 1 GPU with 9 GiB free; asks for 9 GiB per GPU after CUDA ran out of memory"
    )
    listed = json.loads(tt.cli("ls", "--json", check=True).stdout)
    [row] = [x for x in listed if x["id"] == job]
    assert (row["vram_mib"], row["vram_declared_mib"], row["vram_source"]) == (
        9 * GIB, 4 * GIB, "raised",
    )  # fmt: skip
    shown = tt.cli("show", str(job), check=True).stdout
    assert "9 GiB (raised after CUDA out of memory; declared 4 GiB, peak 6 GiB)" in shown
    [retrying] = [e for e in tt.client().events(job=job, kinds=["retrying"])]
    assert retrying["vram_mib"] == 9 * GIB
    assert retrying["reason"] == (
        "CUDA out of memory (exit code 1); retrying: asks for 9 GiB per GPU (had 4 GiB, peak 6 GiB)"
    )
    (tt.root / "release").touch()
    j = wait_for(tt, job, "succeeded", lambda j: j["state"] == "succeeded")
    assert (j["attempt"], j["vram_mib"], j["vram_source"]) == (2, 9 * GIB, "raised")
    assert "attempt 2 fits" in Path(j["log_path"]).read_text()
    assert j["attempts"][0]["reason"].startswith("CUDA out of memory")


TRAIN = """\
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
restarts = os.environ["TMUXTRAIN_RESTARTS"]
if "--resume" in sys.argv:
    print("resumed from", (here / "ckpt").read_text(), "restarts", restarts, flush=True)
    sys.exit(0)
print("training, restarts", restarts, flush=True)
try:
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:  # Ctrl-C: save a checkpoint, as a training loop would
    (here / "ckpt").write_text("step 42")
    print("checkpoint saved", flush=True)
    sys.exit(1)
"""


def test_a_waiting_urgent_job_preempts_only_the_job_that_opted_in_which_resumes(
    tt: Env,
) -> None:
    """On 2 GPUs, a preemptible and a plain low-priority job run; an urgent job waits past
    `preempt_after`: the preemptible one gets Ctrl-C, saves a checkpoint and goes back to
    pending without using a retry (it has none); the urgent job runs; then the stopped job
    runs its `resume` command with TMUXTRAIN_RESTARTS=1. The plain job is never touched."""
    config = FAST_CONFIG.replace("cancel_grace: 2s", "cancel_grace: 6s")
    (tt.root / "config.yaml").write_text(config + "preempt_after: 1s\n")
    tt.write("train.py", TRAIN)
    low = add(tt, tt.write("low.yaml", f"""
name: low
priority: -1
preemptible: true
command: {sys.executable} train.py {tt.root}
resume: {sys.executable} train.py {tt.root} --resume
"""))  # fmt: skip
    plain = add(tt, tt.write("plain.yaml", f"""
name: plain
priority: -1
command: while [ ! -e {tt.root}/release ]; do sleep 0.05; done
"""))  # fmt: skip
    for job_id in (low, plain):
        wait_for(tt, job_id, "running", lambda j: j["state"] == "running" and j["tmux_window"])
    wait_until(lambda: "training" in Path(show(tt, low)["log_path"]).read_text())
    urgent = add(tt, tt.write("urgent.yaml", """
name: urgent
priority: 5
command: echo urgent done
"""))  # fmt: skip
    u = wait_for(tt, urgent, "succeeded", lambda j: j["state"] == "succeeded")
    assert u["gpus"] == [show(tt, low)["attempts"][0]["gpus"][0]]  # it took low's GPU
    j = wait_for(tt, low, "resumed", lambda j: j["state"] == "succeeded")
    assert (j["attempt"], j["restarts"], j["max_retries"], j["preemptible"]) == (2, 1, 0, True)
    text = Path(j["log_path"]).read_text()
    assert "checkpoint saved" in text  # Ctrl-C came first, so it could save
    assert "resumed from step 42 restarts 1" in text
    shown = tt.cli("show", str(low), check=True).stdout.splitlines()
    assert [line.split() for line in shown if line.startswith("restarts")] == [["restarts", "1"]]
    kinds = [e["kind"] for e in tt.client().events(job=low)]
    assert kinds == ["submitted", "started", "preempting", "preempted", "started", "succeeded"]
    [stop] = [e for e in tt.client().events(job=low, kinds=["preempted"])]
    assert stop["reason"].startswith(f"preempted for job {urgent} (urgent), which waited ")
    # The job that did not opt in ran on, untouched.
    p = show(tt, plain)
    assert (p["state"], p["attempt"], p["restarts"]) == ("running", 1, 0)
    assert "preempting" not in [e["kind"] for e in tt.client().events(job=plain)]
    (tt.root / "release").touch()
    wait_for(tt, plain, "succeeded", lambda j: j["state"] == "succeeded")
    assert os.environ.get("TMUXTRAIN_RESTARTS") is None  # the test's own env is untouched


def test_a_cancel_during_a_preemption_cancels_the_job_for_good(tt: Env) -> None:
    """A preemptible job that ignores Ctrl-C and SIGTERM is being preempted when its user
    cancels it: it ends cancelled (SIGKILL after the grace), never back in the queue."""
    config = FAST_CONFIG.replace("cancel_grace: 2s", "cancel_grace: 6s")
    (tt.root / "config.yaml").write_text(config + "preempt_after: 1s\n")
    tt.set("TMUXTRAIN_GPUS", "fake:1x24GiB")
    low = add(tt, tt.write("low.yaml", """
name: low
priority: -1
preemptible: true
command: trap '' INT TERM; while true; do sleep 0.05; done
"""))  # fmt: skip
    wait_for(tt, low, "running", lambda j: j["state"] == "running" and j["tmux_window"])
    urgent = add(tt, tt.write("urgent.yaml", "name: urgent\npriority: 5\ncommand: 'true'\n"))
    wait_until(
        lambda: any(True for _ in tt.client().events(job=low, kinds=["preempting"])),
        what="the preemption to begin",
    )
    assert tt.cli("cancel", str(low), check=True).returncode == 0
    j = wait_for(tt, low, "cancelled", lambda j: j["state"] == "cancelled")
    assert (j["attempt"], j["restarts"], j["reason"]) == (1, 0, "cancelled by user")
    wait_for(tt, urgent, "succeeded", lambda j: j["state"] == "succeeded")
