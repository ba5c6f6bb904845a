"""The scheduler on a real NVIDIA GPU, through NVML: opt-in with `pytest -m gpu`.

These need a GPU, NVML and PyTorch (to take GPU memory the way a training job does); CI has
none of them, so they only run where a GPU is lent. Everything else about the scheduler is
tested on simulated GPUs; what only a real GPU can show is here: that the memory NVML reports
(also of processes tmuxtrain did not start) keeps jobs off a full GPU, that a job's
`CUDA_VISIBLE_DEVICES` is the GPU it was given, and that a real CUDA out-of-memory error is
retried.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env, wait_until
from tmuxtrain.gpus.nvml import NvmlProbe

pytestmark = pytest.mark.gpu

# Takes N GiB on the GPU it sees, says what it sees, then waits for a file (at most 5 min).
HOLD = """\
import os, sys, time, torch
gib, ready, release = float(sys.argv[1]), sys.argv[2], sys.argv[3]
x = torch.empty(int(gib * 2**30), dtype=torch.uint8, device="cuda")
print("visible", os.environ.get("CUDA_VISIBLE_DEVICES"), "count", torch.cuda.device_count(),
      "pid", os.getpid(), flush=True)
print("loss 0.25", flush=True)
open(ready, "w").close()
deadline = time.monotonic() + 300
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.05)
"""

SLOW = 180  # a job's first CUDA call can take seconds


@pytest.fixture
def gpu_tt(tt: Env) -> Env:
    pytest.importorskip("torch")
    tt.set("TMUXTRAIN_GPUS", "nvml")
    tt.write("hold.py", HOLD)
    return tt


def add(tt: Env, *args: str) -> list[int]:
    out = tt.cli("add", *args, check=True).stdout
    return [int(x) for x in out.split()]


def job(tt: Env, job_id: int) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(tt.cli("show", str(job_id), "--json", check=True).stdout)
    return shown


def hold_command(tt: Env, gib: float, tag: str) -> str:
    return f"{sys.executable} {tt.root / 'hold.py'} {gib} {tt.root / tag}.ready {tt.root / tag}.release"


def test_a_job_gets_the_gpu_nvml_chose_and_its_memory_is_seen(gpu_tt: Env) -> None:
    tt = gpu_tt
    before = tt.client().gpus()[0]
    [a] = add(
        tt, "--gpus", "1", "--vram", "8GiB", "--name", "holder", "--", hold_command(tt, 4, "a")
    )
    wait_until((tt.root / "a.ready").exists, timeout=SLOW, what="the job to take 4 GiB")
    j = job(tt, a)
    assert j["state"] == "running" and len(j["gpus"]) == 1
    index = j["gpus"][0]
    log = Path(j["log_path"]).read_text()
    # CUDA sees exactly the GPU the allocator gave the job, numbered as NVML numbers it.
    assert f"visible {index} count 1" in log, log
    gpu = next(g for g in tt.client().gpus() if g["index"] == index)
    assert gpu["jobs"] == [a]
    assert gpu["memory_used_mib"] >= before["memory_used_mib"] + 4 * 1024
    wait_until(lambda: job(tt, a)["metrics"].get("loss") == 0.25, what="the job's loss")
    with NvmlProbe() as probe:
        processes = probe.probe()[index].processes
    # Where the driver lists processes (not in every container), the job's is among them.
    print("NVML processes on GPU", index, processes)
    if processes:
        pid = int(log.split(" pid ")[1].split()[0])
        assert pid in dict(processes)
    (tt.root / "a.release").touch()
    wait_until(lambda: job(tt, a)["state"] == "succeeded", timeout=SLOW, what="success")


def test_memory_taken_outside_tmuxtrain_keeps_a_job_off_the_gpu(gpu_tt: Env) -> None:
    tt = gpu_tt
    gpus = tt.client().gpus()
    assert len(gpus) >= 1
    # Fill every GPU but 10 GiB with a process tmuxtrain knows nothing about.
    hogs = []
    try:
        for g in gpus:
            free_gib = (g["memory_total_mib"] - g["memory_used_mib"]) / 1024
            env = {**tt.environ, "CUDA_VISIBLE_DEVICES": str(g["index"])}
            hogs.append(
                subprocess.Popen(
                    hold_command(tt, free_gib - 10, f"hog{g['index']}").split(), env=env
                )
            )
        for g in gpus:
            ready = tt.root / f"hog{g['index']}.ready"
            wait_until(ready.exists, timeout=SLOW, what="the outside process to fill the GPU")
        [a] = add(tt, "--gpus", "1", "--vram", "20GiB", "--", "echo ran")
        wait_until(
            lambda: job(tt, a)["reason"] == "waiting for 1 GPU with 20 GiB free",
            timeout=30,
            what="the job to wait for memory",
        )
        assert job(tt, a)["state"] == "pending"
        for g in gpus:
            (tt.root / f"hog{g['index']}.release").touch()
        wait_until(lambda: job(tt, a)["state"] == "succeeded", timeout=SLOW, what="the job")
    finally:
        for p in hogs:
            p.kill()
            p.wait()


def test_a_real_cuda_out_of_memory_error_is_retried(gpu_tt: Env) -> None:
    tt = gpu_tt
    # The first attempt asks for far more than any GPU has; the retry asks for 1 MiB.
    script = tt.write(
        "oom.py",
        "import os, torch\n"
        "n = 2**50 if os.environ['TMUXTRAIN_ATTEMPT'] == '1' else 2**20\n"
        "torch.empty(n, dtype=torch.uint8, device='cuda')\n"
        "print('loss 0.5')\n",
    )
    tt.write(
        "oom.yaml",
        f"command: {sys.executable} {script}\ngpus: 1\nvram: 1GiB\nretries: 1\n"
        "retry_on: ['CUDA out of memory']\n",
    )
    [a] = add(tt, "oom.yaml")
    j = wait_until(
        lambda: (j := job(tt, a))["state"] in ("succeeded", "failed") and j,
        timeout=SLOW,
        what="the job to end",
    )
    assert j["state"] == "succeeded", j
    assert [at["exit_code"] for at in j["attempts"]] == [1, 0]
    assert "CUDA out of memory" in Path(j["log_path"]).read_text()
