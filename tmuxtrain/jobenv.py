"""The environment a job runs with: the submitter's (as `sbatch` exports it), overlaid by
the job's `env`, plus the variables tmuxtrain sets for every job."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from tmuxtrain.core.allocate import cuda_visible_devices
from tmuxtrain.core.model import GpuInfo, Job

# Set by the terminal the job ran from, wrong inside the job's own tmux pane.
NOT_INHERITED = ("TERM", "TMUX", "TMUX_PANE", "COLUMNS", "LINES", "TERMCAP", "WINDOWID")
MINIMAL_KEYS = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "SHELL")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def submit_environment(inherit: bool, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What `tmuxtrain add` records: the whole environment, or a minimal one."""
    env = dict(os.environ if environ is None else environ)
    if not inherit:
        out = {k: env[k] for k in MINIMAL_KEYS if k in env}
        out["PATH"] = DEFAULT_PATH
        return out
    for k in NOT_INHERITED:
        env.pop(k, None)
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def job_environment(
    job: Job,
    base: Mapping[str, str] | None,
    gpus: Sequence[int],
    infos: Sequence[GpuInfo],
    master_port: int,
    run_token: str,
) -> dict[str, str]:
    """The whole environment of one attempt. `TMUXTRAIN_RUN` marks every process of it, so
    what it leaves behind can be found (`tmuxtrain.procs.tagged`)."""
    env = dict(base) if base is not None else submit_environment(job.spec.inherit_env)
    env.update(job.spec.env)
    env.update(
        CUDA_VISIBLE_DEVICES=cuda_visible_devices(infos, gpus),
        CUDA_DEVICE_ORDER="PCI_BUS_ID",
        TMUXTRAIN_JOB_ID=str(job.id),
        TMUXTRAIN_JOB_NAME=job.name,
        TMUXTRAIN_ATTEMPT=str(job.attempt),
        TMUXTRAIN_GPUS=",".join(map(str, gpus)),
        MASTER_ADDR=env.get("MASTER_ADDR", "127.0.0.1"),
        MASTER_PORT=str(master_port),
        TMUXTRAIN_RUN=run_token,
    )
    return env


def remote_environment(job: Job, base: Mapping[str, str] | None, run_token: str) -> dict[str, str]:
    """The environment of an attempt that runs on a cluster: the submitter's overlaid by
    the job's `env`, and tmuxtrain's variables; GPUs, MASTER_ADDR and MASTER_PORT come from
    the cluster's allocation there (see runners/slurm_runner.py)."""
    env = dict(base) if base is not None else submit_environment(job.spec.inherit_env)
    env.update(job.spec.env)
    env.update(
        CUDA_DEVICE_ORDER="PCI_BUS_ID",
        TMUXTRAIN_JOB_ID=str(job.id),
        TMUXTRAIN_JOB_NAME=job.name,
        TMUXTRAIN_ATTEMPT=str(job.attempt),
        TMUXTRAIN_RUN=run_token,
    )
    return env
