"""The Slurm path: job files -> sbatch scripts, submitted in dependency order. `sbatch`
itself is replaced by a small script on PATH (the cluster is the edge we cannot have)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import Env, wait_until
from tmuxtrain.core.model import JobSpec
from tmuxtrain.runners.slurm import SlurmOptions, render, slurm_time


def test_render_maps_the_job_file_to_sbatch() -> None:
    spec = JobSpec(
        name="resnet lr=3e-4", command="python train.py --lr 3e-4 'x y'", cwd="/data/w",
        env={"WANDB_MODE": "offline"}, gpus=2, vram_mib=20480, timeout_s=12 * 3600 + 1, priority=5,
    )  # fmt: skip
    text = render(spec, SlurmOptions(partition="gpu", account="lab", extra=("--qos=high",)))
    assert text.startswith("#!/bin/sh\n")
    for line in [
        "#SBATCH --job-name=resnet_lr_3e-4",
        "#SBATCH --chdir=/data/w",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --time=0-12:01:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --qos=high",
        "#SBATCH --export=ALL",
        "export WANDB_MODE=offline",
        "# vram: 20 GiB per GPU (Slurm gives whole GPUs)",
    ]:
        assert line in text.splitlines(), line
    # The command runs exactly as given, through sh -c.
    out = subprocess.run(
        ["sh", "-c", text.splitlines()[-1].replace("exec /bin/sh -c", "printf '%s' ")],
        capture_output=True,
        text=True,
    )
    assert out.stdout == "python train.py --lr 3e-4 'x y'"


def test_slurm_time_rounds_up_to_minutes() -> None:
    assert slurm_time(90) == "0-00:02:00"
    assert slurm_time(2 * 86400 + 3600) == "2-01:00:00"


def test_retries_run_inside_the_allocation(tmp_path: Path) -> None:
    spec = JobSpec(name="r", command="exit 1", cwd=str(tmp_path), retries=2, gpus=0)
    script = tmp_path / "r.sbatch"
    script.write_text(render(spec, SlurmOptions()))
    count = tmp_path / "n"
    spec2 = JobSpec(
        name="r",
        command=f"echo x >> {count}; [ $(wc -l < {count}) -ge 2 ]",
        cwd=str(tmp_path),
        retries=2,
        gpus=0,
    )
    script.write_text(render(spec2, SlurmOptions()))
    assert subprocess.run(["sh", str(script)], cwd=tmp_path).returncode == 0
    assert count.read_text().count("x") == 2


def test_sbatch_command_submits_in_dependency_order(tt: Env) -> None:
    bindir = tt.root / "bin"
    bindir.mkdir()
    record = tt.root / "calls"
    fake = bindir / "sbatch"
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {record}\nn=$(wc -l < {record})\necho "$((1000 + n));cluster"\n'
    )
    fake.chmod(0o755)
    tt.write(
        "chain.yaml",
        "jobs:\n  - {name: b, command: echo b, after: [a]}\n  - {name: a, command: echo a, gpus: 0}\n",
    )
    tt.set("PATH", f"{bindir}:{os.environ['PATH']}")
    out = tt.cli("sbatch", "chain.yaml", "--submit", "--partition", "p1", check=True).stdout
    assert out.split() == ["1001", "a", "1002", "b"]
    calls = record.read_text().splitlines()
    assert calls[0].startswith("--parsable ") and calls[0].endswith("0001-a.sbatch")
    assert "--dependency=afterok:1001" in calls[1] and calls[1].endswith("0002-b.sbatch")
    assert "#SBATCH --partition=p1" in (tt.root / "sbatch" / "0002-b.sbatch").read_text()


def test_sbatch_rejects_unknown_dependencies(tt: Env) -> None:
    tt.write("one.yaml", "name: x\ncommand: echo\nafter: [elsewhere]\n")
    proc = tt.cli("sbatch", "one.yaml")
    assert proc.returncode == 2 and "'elsewhere' is not in these files" in proc.stderr


def test_runner_slurm_in_the_config_queues_in_tmuxtrain_and_submits_to_slurm(tt: Env) -> None:
    """The job keeps its tmuxtrain id and shows in `ls`, with the Slurm id beside it (the
    real cluster's tests are in tests/slurm; here stand-ins record what was asked)."""
    bindir = tt.root / "bin"
    bindir.mkdir()
    for name, body in {
        "sbatch": f'echo "$@" >> {tt.root}/sbatch.args; echo "77;cluster"',
        "squeue": "echo '77|77|77|N/A|PENDING|Priority|N/A|N/A|0|x|'",
        "sacct": ":",
        "scancel": ":",
    }.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    (tt.root / "config.yaml").write_text("runner: slurm\nslurm: {partition: big}\n")
    tt.set("PATH", f"{bindir}:{os.environ['PATH']}")
    tt.write("one.yaml", "name: one\ncommand: python train.py\n")
    [a] = [int(x) for x in tt.cli("add", "one.yaml", check=True).stdout.split()]
    j = wait_until(lambda: (j := tt.client().show(a))["reason"] == "in Slurm: Priority" and j)
    assert (j["state"], j["runner"], j["external_id"]) == ("pending", "slurm", "77")
    args = (tt.root / "sbatch.args").read_text()
    assert "--partition=big" in args and f"--output={j['log_path']}" in args
