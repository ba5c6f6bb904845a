"""Learned VRAM through the real CLI, tmux and scheduler, on simulated GPUs whose file a
test job writes its own pid into (tests/fake_gpu_use.py), as NVML would list a real job's
CUDA context: the job's measured peak, and a sweep that shares GPUs once a sibling ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import Env, wait_until
from tests.test_scheduler import add, job, states, wait_state

USE = Path(__file__).with_name("fake_gpu_use.py")


def use(gpus: Path, size: str, until: Path | str) -> str:
    """A job command that holds `size` on its GPUs (as its pid, in the file) until `until`."""
    return f"{sys.executable} {USE} {gpus} {size} --until {until}"


def test_a_jobs_listed_process_is_its_memory(tt: Env) -> None:
    """A job declares 2 GiB but its process is listed with 6 GiB: the scheduler measures
    6 GiB (its peak in `show`, its memory in `gpus`), so a 20 GiB job does not fit beside
    it on 24 GiB until it ends and its entry is gone."""
    gpus = tt.write("gpus.yaml", "- {name: A, memory: 24GiB}\n")
    tt.set("TMUXTRAIN_GPUS", f"fake:{gpus}")
    go = tt.root / "go"
    [a] = add(tt, "--vram", "2GiB", "--", use(gpus, "6GiB", go))
    wait_until(lambda: job(tt, a)["vram_peak_mib"] == 6 * 1024, what="the peak measured")
    [g] = json.loads(tt.cli("gpus", "--json", check=True).stdout)
    assert (g["memory_used_mib"], g["jobs"]) == (6 * 1024, [a])
    [b] = add(tt, "--vram", "20GiB", "--", "true")
    reason = wait_until(lambda: job(tt, b)["reason"], what="a reason")
    assert reason == "waiting for 1 GPU with 20 GiB free"
    assert job(tt, b)["state"] == "pending"
    go.touch()
    wait_state(tt, b, "succeeded")
    assert job(tt, a)["state"] == "succeeded"
    assert job(tt, a)["vram_peak_mib"] == 6 * 1024  # kept after the end, for its sweep
    assert "pid" not in gpus.read_text()  # the job took its entry out


def sweep(tt: Env, extra: str = "") -> tuple[Path, list[int]]:
    """One 24 GiB GPU and a sweep of four jobs that each use 4 GiB until `go{i}` exists."""
    gpus = tt.write("gpus.yaml", "- {name: A, memory: 24GiB}\n")
    tt.set("TMUXTRAIN_GPUS", f"fake:{gpus}")
    command = use(gpus, "4GiB", f"{tt.root}/go{{i}}")
    tt.write(
        "sweep.yaml", f"name: s{{i}}\ncommand: '{command}'\nmatrix: {{i: [0, 1, 2, 3]}}\n{extra}"
    )
    return gpus, add(tt, "sweep.yaml")


def test_a_sweep_shares_the_gpu_once_a_sibling_was_measured(tt: Env) -> None:
    """No `vram`: the first job runs alone (exclusive); once it succeeded, measured at
    4 GiB, the other three ask for 4.5 GiB (learned) and run together on the one GPU."""
    _, ids = sweep(tt)
    first, rest = ids[0], ids[1:]
    wait_until(lambda: job(tt, first)["vram_peak_mib"] == 4096, what="the first job measured")
    assert [job(tt, i)["state"] for i in rest] == ["pending"] * 3
    assert job(tt, rest[0])["reason"] == "waiting for 1 free GPU"
    (tt.root / "go0").touch()
    wait_until(
        lambda: all(s == "running" for i, s in states(tt).items() if i in rest),
        what="the rest of the sweep running together",
    )
    j = job(tt, rest[0])
    assert (j["vram_mib"], j["vram_declared_mib"], j["vram_source"]) == (4608, None, "learned")
    assert j["gpus"] == [0]
    shown = tt.cli("show", str(rest[0]), check=True).stdout
    assert "4.5 GiB (learned)" in shown
    events = tt.cli("events", "--job", str(rest[0]), "--kind", "learned", check=True).stdout
    event = json.loads(events.splitlines()[0])
    assert (event["kind"], event["vram_mib"], event["peak_mib"]) == ("learned", 4608, 4096)
    for i in range(1, 4):
        (tt.root / f"go{i}").touch()
    assert tt.client().wait(ids, timeout=30)
    assert job(tt, first)["vram_source"] == "declared"  # it ran as declared: exclusive


def test_vram_exclusive_opts_out_of_learning(tt: Env) -> None:
    """The same sweep with `vram: exclusive`: after the first job was measured and
    succeeded, the others still run one at a time."""
    _, ids = sweep(tt, "vram: exclusive\n")
    wait_until(lambda: job(tt, ids[0])["vram_peak_mib"] == 4096, what="the first job measured")
    (tt.root / "go0").touch()
    wait_state(tt, ids[1], "running")
    j = job(tt, ids[2])
    assert (j["state"], j["vram_mib"], j["vram_source"]) == ("pending", None, "declared")
    assert j["reason"] == "waiting for 1 free GPU"
    for i in range(1, 4):
        (tt.root / f"go{i}").touch()
    assert tt.client().wait(ids, timeout=30)
