"""tmuxtrain on a real Slurm (the private single-node cluster of tests/slurm_cluster.py):
jobs sent there keep their tmuxtrain ids and show in `ls`, `show`, `log`, `metrics` and
`wait` like local ones. Jobs wait for files the test writes, never for fixed sleeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Env, wait_until
from tests.slurm_cluster import SlurmCluster
from tests.test_scheduler import add, job, wait_state

pytestmark = pytest.mark.slurm


@pytest.fixture
def st(tt: Env, slurm_cluster: SlurmCluster) -> Iterator[Env]:
    """A tmuxtrain home whose config sends jobs to the cluster; whatever its jobs left in
    Slurm is cancelled after (the cluster serves the whole session)."""
    tt.set("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    tt.set("TMUXTRAIN_GPUS", "none")  # this machine's GPUs do not matter: Slurm has 4
    Path(tt.settings.config_path or "").write_text(
        "runner: slurm\nretry_backoff: 0.2s\ncancel_grace: 4s\n"
    )
    yield tt
    ids = [j["external_id"] for j in tt.client().list() if j["external_id"]]
    if ids:
        slurm_cluster.run("scancel", *ids, check=False)


def running(st: Env, job_id: int, timeout: float = 60) -> dict[str, Any]:
    """Wait until Slurm runs the job (it has no tmux window to wait for)."""
    found: dict[str, Any] = wait_until(
        lambda: (j := job(st, job_id))["state"] == "running" and j, timeout, what="running"
    )
    return found


def until_file(path: Path) -> str:
    return f'while [ ! -e "{path}" ]; do sleep 0.1; done'


def test_a_job_runs_on_slurm_with_its_id_log_metrics_and_exit_code(st: Env) -> None:
    [a] = add(st, "--gpus", "1", "--name", "fail3", "--",
              'echo "cvd=$CUDA_VISIBLE_DEVICES id=$TMUXTRAIN_JOB_ID"; echo loss=0.25; exit 3')  # fmt: skip
    j = wait_state(st, a, "failed", timeout=60)
    assert (j["exit_code"], j["runner"], j["reason"]) == (3, "slurm", "exit code 3")
    assert j["external_id"] and j["external_id"].isdigit()
    log = st.cli("log", str(a), check=True).stdout
    assert f"id={a}" in log and "cvd=" in log
    assert wait_until(lambda: job(st, a)["metrics"].get("loss")) == 0.25
    hist = json.loads(st.cli("metrics", str(a), "--json", check=True).stdout)
    assert hist["loss"][-1][2] == 0.25
    assert st.cli("wait", str(a)).returncode == 1


def test_gpu_jobs_get_disjoint_gpus(st: Env) -> None:
    go = st.root / "go"
    cmd = f'echo "gpus=$CUDA_VISIBLE_DEVICES"; {until_file(go)}'
    ids = [i for n in range(3) for i in add(st, "--gpus", "1", "--name", f"g{n}", "--", cmd)]
    for i in ids:
        running(st, i)

    def seen() -> list[str] | None:
        out = []
        for i in ids:
            path = Path(job(st, i)["log_path"])
            text = path.read_text() if path.exists() else ""
            found = [
                line.split("=", 1)[1] for line in text.splitlines() if line.startswith("gpus=")
            ]
            if not found:
                return None
            out.append(found[0])
        return out

    gpus = wait_until(seen, timeout=30, what="each job's GPU")
    assert len(set(gpus)) == 3 and all(g for g in gpus)
    go.touch()
    assert st.client().wait(ids, timeout=60)


def test_dependencies_wait_in_slurm_and_a_failure_cancels_the_rest(st: Env) -> None:
    go = st.root / "go"
    st.write(
        "chain.yaml",
        f"""
jobs:
  - {{name: first, gpus: 0, command: '{until_file(go)}; exit 1'}}
  - {{name: second, gpus: 0, command: 'echo never', after: [first]}}
""",
    )
    first, second = add(st, "chain.yaml")
    running(st, first)
    # The dependent is in Slurm's queue, held there by the dependency.
    reason = wait_until(lambda: "Dependency" in (r := job(st, second)["reason"]) and r)
    assert reason == "in Slurm: Dependency"
    go.touch()
    assert wait_state(st, first, "failed", timeout=60)["exit_code"] == 1
    s = wait_state(st, second, "cancelled", timeout=60)
    assert "dependency" in s["reason"]


def test_cancel_a_running_and_a_queued_job(st: Env) -> None:
    hold = "sleep 300"
    [big] = add(st, "--gpus", "4", "--name", "all-gpus", "--", hold)
    running(st, big)
    [waiting] = add(st, "--gpus", "1", "--name", "waits", "--", "echo no")
    wait_until(lambda: job(st, waiting)["reason"] == "in Slurm: Resources", timeout=30)
    st.cli("cancel", str(waiting), str(big), check=True)
    assert wait_state(st, waiting, "cancelled", timeout=60)["reason"] == "cancelled by user"
    assert wait_state(st, big, "cancelled", timeout=60)["reason"] == "cancelled by user"


def test_retries_are_tmuxtrains_each_with_its_own_exit_code(st: Env) -> None:
    [a] = add(
        st, "--gpus", "0", "--retries", "1", "--", 'exit "$((TMUXTRAIN_ATTEMPT == 1 ? 2 : 0))"'
    )
    j = wait_state(st, a, "succeeded", timeout=90)
    assert j["attempt"] == 2
    attempts = st.client().show(a)["attempts"]
    assert [(t["attempt"], t["exit_code"]) for t in attempts] == [(1, 2), (2, 0)]
    # `retry` queues a finished job again, as its next attempt, in Slurm too.
    st.cli("retry", str(a), check=True)
    assert wait_state(st, a, "succeeded", timeout=90)["attempt"] == 3


def test_a_matrix_is_one_array(st: Env) -> None:
    st.write(
        "sweep.yaml",
        """
name: sweep-{lr}
gpus: 0
command: echo "lr={lr} task=$SLURM_ARRAY_TASK_ID"
matrix: {lr: [0.1, 0.01, 0.001]}
""",
    )
    ids = add(st, "sweep.yaml")
    assert st.client().wait(ids, timeout=90)
    shown: list[dict[str, Any]] = [job(st, i) for i in ids]
    [array] = {j["external_id"].split("_")[0] for j in shown}  # one sbatch
    for i, j in zip(ids, shown, strict=True):
        assert j["external_id"] == f"{array}_{i}"  # the task index is the tmuxtrain id
        assert f"task={i}" in Path(j["log_path"]).read_text()
