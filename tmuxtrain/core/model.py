"""Plain data shared by every layer: job states, specs, jobs, GPUs, allocations.

Nothing here does I/O. Times are POSIX seconds (floats) handed in by the caller; memory is
in MiB (1 MiB = 2**20 bytes, the unit `nvidia-smi` prints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class JobState(str, Enum):
    """A job's lifecycle. A job waiting for a retry is PENDING with attempt > 1."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
PREEMPTED = "preempted"  # how a stop for preemption starts its cancel_reason (core.preempt)

# The only allowed moves; the store refuses anything else so a race cannot, say, revive a
# cancelled job. running -> pending is a retry; finished -> pending is `tmuxtrain retry`;
# pending -> pending or succeeded is the end of an attempt that ended while still queued in
# Slurm as far as tmuxtrain had seen (a short job between two looks).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset(
        {
            JobState.PENDING,
            JobState.RUNNING,
            JobState.SUCCEEDED,
            JobState.CANCELLED,
            JobState.FAILED,
        }
    ),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PENDING}
    ),
    JobState.SUCCEEDED: frozenset({JobState.PENDING}),
    JobState.FAILED: frozenset({JobState.PENDING}),
    JobState.CANCELLED: frozenset({JobState.PENDING}),
}


def can_move(old: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[old]


@dataclass(frozen=True)
class CheckpointSpec:
    """Evaluate every new file matching `watch` with `eval` (`{checkpoint}` filled in)."""

    watch: str
    eval: str
    gpus: int = 1
    vram_mib: int | None = None
    keep_best: str | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job as the user asked for it, validated. `source` is `file:line` for messages."""

    name: str
    command: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    inherit_env: bool = True
    gpus: int = 1
    vram_mib: int | None = None  # None: the GPUs exclusively
    priority: int = 0
    project: str = "default"
    after: tuple[str, ...] = ()
    retries: int = 0
    retry_on: tuple[str, ...] = ()
    timeout_s: float | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    checkpoints: CheckpointSpec | None = None
    hooks: dict[str, str] = field(default_factory=dict)
    source: str = ""
    hold: bool = False  # queued held: nothing starts it until released
    runner: str | None = None  # where it runs: "tmux", "slurm"; None: the config's runner
    preemptible: bool = False  # may be stopped for a higher-priority job, then rerun
    resume: str | None = None  # the command for a rerun after preemption
    vram_exclusive: bool = False  # `vram: exclusive`: whole GPUs, never a learned size
    sweep: str | None = None  # same job file and command shape: learned VRAM is shared

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "command": self.command,
            "cwd": self.cwd,
            "env": dict(self.env),
            "inherit_env": self.inherit_env,
            "gpus": self.gpus,
            "vram_mib": self.vram_mib,
            "priority": self.priority,
            "project": self.project,
            "after": list(self.after),
            "retries": self.retries,
            "retry_on": list(self.retry_on),
            "timeout_s": self.timeout_s,
            "metrics": dict(self.metrics),
            "checkpoints": None,
            "hooks": dict(self.hooks),
            "source": self.source,
            "hold": self.hold,
            "runner": self.runner,
            "preemptible": self.preemptible,
            "resume": self.resume,
            "vram_exclusive": self.vram_exclusive,
            "sweep": self.sweep,
        }
        if self.checkpoints is not None:
            c = self.checkpoints
            d["checkpoints"] = {
                "watch": c.watch,
                "eval": c.eval,
                "gpus": c.gpus,
                "vram_mib": c.vram_mib,
                "keep_best": c.keep_best,
            }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        """From `to_dict()`'s output (as stored); `d` is fresh from json.loads, so its
        containers are used as they are rather than copied."""
        ck = d.get("checkpoints")
        return cls(
            name=d["name"],
            command=d["command"],
            cwd=d["cwd"],
            env=d.get("env") or {},
            inherit_env=d.get("inherit_env", True),
            gpus=d.get("gpus", 1),
            vram_mib=d.get("vram_mib"),
            priority=d.get("priority", 0),
            project=d.get("project") or "default",
            after=tuple(d.get("after") or ()),
            retries=d.get("retries", 0),
            retry_on=tuple(d.get("retry_on") or ()),
            timeout_s=d.get("timeout_s"),
            metrics=d.get("metrics") or {},
            checkpoints=CheckpointSpec(**ck) if ck else None,
            hooks=d.get("hooks") or {},
            source=d.get("source", ""),
            hold=d.get("hold", False),
            runner=d.get("runner"),
            preemptible=d.get("preemptible", False),
            resume=d.get("resume"),
            vram_exclusive=d.get("vram_exclusive", False),
            sweep=d.get("sweep"),
        )


@dataclass(slots=True)
class Job:
    """A job as stored: its spec plus everything the scheduler learned about it."""

    id: int
    spec: JobSpec
    state: JobState = JobState.PENDING
    attempt: int = 1
    after_ids: tuple[int, ...] = ()
    after_evals: tuple[int, ...] = ()  # of `after_ids`: whose checkpoint evaluations too
    held: bool = False
    gpus: tuple[int, ...] = ()
    exit_code: int | None = None
    reason: str = ""
    log_path: str = ""
    tmux_window: str | None = None
    tmux_pane: str | None = None
    pid: int | None = None
    pid_start: float | None = None  # process start time, so a reused pid is never adopted
    master_port: int | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None  # retry backoff: do not start before this time
    parent_id: int | None = None  # the training job an evaluation job belongs to
    cancel_requested_at: float | None = None  # cancel or timeout in progress since then
    cancel_reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    pid_boot: str | None = None  # the boot `pid` was recorded in
    notes: tuple[str, ...] = ()  # what the scheduler had to tell (a disabled pattern ...)
    queued: bool = False  # pending, but handed to a runner with its own queue (Slurm)
    external_id: str | None = None  # its id in that runner (a Slurm job id)
    # What the current attempt asks for per GPU when not its declaration: "raised" after
    # CUDA ran out of memory (`vram_request_mib` None then means whole GPUs).
    vram_source: str = "declared"
    vram_request_mib: int | None = None
    vram_peak_mib: int | None = None  # the most GPU memory the latest attempt was seen using
    restarts: int = 0  # attempts stopped by preemption (they use up no retry)
    gpu_share: float | None = None  # GPU-equivalents its attempt holds (fair-share usage)

    # Shorthands the policy code reads a lot.
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def gpus_requested(self) -> int:
        return self.spec.gpus

    @property
    def vram_mib(self) -> int | None:
        """What the current attempt asks for per GPU (None: the GPUs exclusively)."""
        return self.spec.vram_mib if self.vram_source == "declared" else self.vram_request_mib


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as a probe saw it. None means unknown; the allocator treats unknown as not free.

    `memory_used_mib` is everything in use on the device (what `nvidia-smi` shows), including
    tmuxtrain's own jobs. `job_used_mib` is the part the probe could attribute to tmuxtrain jobs
    (by process id), keyed by job id.
    """

    index: int
    uuid: str
    name: str
    memory_total_mib: int | None
    memory_used_mib: int | None
    utilization_pct: int | None = None
    temperature_c: int | None = None
    simulated: bool = False
    # (pid, used MiB or None) of compute processes, where the driver tells; () when unknown.
    processes: tuple[tuple[int, int | None], ...] = ()
    job_used_mib: dict[int, int] = field(default_factory=dict)
    # Processes outside tmuxtrain holding memory here: (pid, user, MiB), as far as known.
    others: tuple[tuple[int, str, int], ...] = ()
    nvlink: tuple[int, ...] = ()  # GPUs this one is linked to by NVLink
    # How this GPU is linked to others: (peer index, tier of core.topology: 0 NVLink,
    # 1 one PCIe switch, 2 one CPU socket, 3 across sockets); () when not known.
    links: tuple[tuple[int, int], ...] = ()
    # Jobs whose `job_used_mib` here is what they hold by declaration, not a measurement
    # (simulated GPUs without a process of theirs listed): never taken as a measured peak.
    unmeasured: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Holding:
    """What a running job holds on the GPUs: `vram_mib` per GPU, or None for exclusive."""

    job_id: int
    gpus: tuple[int, ...]
    vram_mib: int | None


@dataclass(frozen=True)
class Request:
    """What a pending job needs: `gpus` distinct GPUs, each with `vram_mib` free (None: whole)."""

    gpus: int
    vram_mib: int | None


@dataclass(frozen=True)
class Allocation:
    """The allocator's answer: the GPU indices, or empty with the reason they could not be had."""

    gpus: tuple[int, ...] = ()
    reason: str = ""
    never: bool = False  # the request can never fit these GPUs, however many free up

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass(frozen=True)
class Config:
    """The scheduler's settings (config.yaml), already validated."""

    policy: str = "priority"  # fifo | priority | fair-share
    backfill: bool = True
    placement: str = "spread"  # shared jobs: spread over GPUs, or pack onto busy ones
    headroom_mib: int = 1024
    max_jobs_per_gpu: int = 4
    keep_finished_windows: int = 20
    shares: dict[str, float] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)
    runner: str = "tmux"
    retry_backoff_s: float = 5.0
    cancel_grace_s: float = 10.0
    notify: bool = False  # desktop notification (notify-send) when a job ends
    slurm: dict[str, Any] = field(default_factory=dict)
    max_running: int | None = None  # all jobs at once (None: no limit)
    max_cpu_jobs: int | None = None  # CPU-only jobs at once (the loader puts the core count)
    project_limits: dict[str, int] = field(default_factory=dict)  # jobs at once per project
    gpus: tuple[int, ...] | None = None  # only these GPUs (nvidia-smi indices); None: all
    keep_free: int = 0  # whole GPUs left without tmuxtrain jobs, for colleagues
    fair_share_half_life_s: float = 86400.0  # fair-share counts GPU-seconds, decaying
    preempt_after_s: float | None = None  # a higher-priority job waiting this long preempts
