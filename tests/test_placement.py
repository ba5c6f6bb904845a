"""Topology-aware placement through the real CLI, tmux and scheduler, on simulated GPUs
whose file says how they are linked: a multi-GPU job gets the best-linked GPUs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Env, wait_until
from tests.test_scheduler import add, job, wait_state

TOPOLOGY = """\
- {name: A, memory: 24GiB, nvlink: [3]}
- {name: A, memory: 24GiB, pcie_switch: b}
- {name: A, memory: 24GiB}
- {name: A, memory: 24GiB}
- {name: A, memory: 24GiB, pcie_switch: b}
"""


def test_multi_gpu_jobs_get_the_best_linked_gpus(tt: Env) -> None:
    """Five GPUs: 0 and 3 NVLinked, 1 and 4 behind one PCIe switch, nothing known of 2.
    The first 2-GPU job gets 0 and 3, the next 1 and 4, not the lowest free indices; its
    CUDA_VISIBLE_DEVICES says so."""
    gpus = tt.write("gpus.yaml", TOPOLOGY)
    tt.set("TMUXTRAIN_GPUS", f"fake:{gpus}")
    go = tt.root / "go"
    cmd = f'echo "visible=$CUDA_VISIBLE_DEVICES"; until [ -e {go} ]; do sleep 0.05; done'
    first = add(tt, "--gpus", "2", "--no-start", "--", cmd)
    second = add(tt, "--gpus", "2", "--no-start", "--", cmd)
    tt.client().up()
    assert wait_state(tt, first[0], "running")["gpus"] == [0, 3]
    assert wait_state(tt, second[0], "running")["gpus"] == [1, 4]
    log = Path(job(tt, first[0])["log_path"])
    wait_until(lambda: "visible=0,3" in log.read_text(errors="replace"), what="its devices")
    go.touch()
    assert tt.client().wait([*first, *second], timeout=30)
