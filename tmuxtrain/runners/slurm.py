"""The same job files on a Slurm cluster: each job becomes an sbatch script, submitted in
dependency order so `after:` becomes `--dependency=afterok:SLURM_ID`.

`render` is pure; `submit` is the one place that runs `sbatch`. What has no Slurm meaning is
said in the script as a comment rather than dropped silently (`vram` sharing, priority).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.core.model import JobSpec
from tmuxtrain.core.units import format_mib


@dataclass(frozen=True)
class SlurmOptions:
    """The config's `slurm:` section plus command-line overrides."""

    partition: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = ()
    log_dir: str = "slurm-logs"

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **overrides: Any) -> SlurmOptions:
        extra = overrides.get("extra") or section.get("extra") or ()
        if isinstance(extra, str):
            extra = shlex.split(extra)

        def pick(key: str) -> str | None:
            value = overrides.get(key) or section.get(key)
            return None if value is None else str(value)

        return cls(
            partition=pick("partition"),
            account=pick("account"),
            extra=tuple(str(x) for x in extra),
            log_dir=pick("log_dir") or "slurm-logs",
        )


def slurm_time(seconds: float) -> str:
    """Slurm's D-HH:MM:SS, rounded up to the minute."""
    minutes = math.ceil(seconds / 60)
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:100] or "job"


def render(spec: JobSpec, opts: SlurmOptions) -> str:
    """One job as an sbatch script (the environment of `sbatch` is exported, as locally)."""
    q = shlex.quote
    lines = ["#!/bin/sh", f"# from {spec.source or 'tmuxtrain'}"]
    sb = [
        f"--job-name={safe_name(spec.name)}",
        f"--chdir={spec.cwd}",
        f"--output={os.path.join(opts.log_dir, '%x-%j.log')}",
        "--export=ALL" if spec.inherit_env else "--export=NONE",
    ]
    if spec.gpus:
        sb.append(f"--gres=gpu:{spec.gpus}")
    if spec.timeout_s:
        sb.append(f"--time={slurm_time(spec.timeout_s)}")
    if opts.partition:
        sb.append(f"--partition={opts.partition}")
    if opts.account:
        sb.append(f"--account={opts.account}")
    lines += [f"#SBATCH {s}" for s in (*sb, *opts.extra)]
    if spec.vram_mib is not None:
        lines.append(f"# vram: {format_mib(spec.vram_mib)} per GPU (Slurm gives whole GPUs)")
    if spec.priority:
        lines.append(f"# priority: {spec.priority} (ask your admins for QOS; not mapped)")
    lines += [f"export {k}={q(v)}" for k, v in sorted(spec.env.items())]
    lines.append("export TMUXTRAIN_JOB_NAME=" + q(spec.name))
    tries = spec.retries + 1
    if tries == 1:
        lines.append(f"exec /bin/sh -c {q(spec.command)}")
    else:  # retries inside the allocation: the job keeps its GPUs between attempts
        lines += [
            f"for attempt in $(seq 1 {tries}); do",
            '  export TMUXTRAIN_ATTEMPT="$attempt"',
            f"  /bin/sh -c {q(spec.command)} && exit 0",
            "done",
            "exit 1",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Plan:
    """Scripts to write and submit, in an order where dependencies come first."""

    scripts: list[tuple[JobSpec, str, str]] = field(default_factory=list)  # spec, path, text


def plan(specs: Sequence[JobSpec], opts: SlurmOptions, out_dir: str) -> Plan:
    names = {s.name for s in specs}
    for s in specs:
        for dep in s.after:
            if dep not in names:
                raise TmuxtrainError(
                    f"{s.source}: after: '{dep}' is not in these files (Slurm ids are only "
                    "known for jobs submitted together)"
                )
    ordered: list[JobSpec] = []
    placed: set[str] = set()
    pending = list(specs)
    while pending:
        ready = [s for s in pending if all(d in placed for d in s.after)]
        if not ready:
            raise TmuxtrainError(f"dependency cycle among: {', '.join(s.name for s in pending)}")
        for s in ready:
            ordered.append(s)
            placed.add(s.name)
        pending = [s for s in pending if s.name not in placed]
    out = Plan()
    for i, s in enumerate(ordered, 1):
        path = os.path.join(out_dir, f"{i:04d}-{safe_name(s.name)}.sbatch")
        out.scripts.append((s, path, render(s, opts)))
    return out


def write(p: Plan) -> None:
    for _, path, text in p.scripts:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o700)


def submit(p: Plan, sbatch: str = "sbatch") -> dict[str, str]:
    """Submit in order; returns job name -> Slurm job id."""
    ids: dict[str, str] = {}
    for spec, path, _ in p.scripts:
        argv = [sbatch, "--parsable"]
        deps = [ids[d] for d in spec.after]
        if deps:
            argv.append("--dependency=afterok:" + ":".join(deps))
        argv.append(path)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise TmuxtrainError(f"'{sbatch}' not found: is this a Slurm login node?") from None
        if proc.returncode != 0:
            raise TmuxtrainError(f"sbatch {path}: {proc.stderr.strip() or proc.returncode}")
        ids[spec.name] = proc.stdout.strip().split(";")[0]
    return ids
