"""The one Runner protocol: what the scheduler needs from a place where jobs run.

A runner starts attempts, says which attempts ended and how, finds an attempt again after a
scheduler restart, signals and cleans up, and closes what is finished. The scheduler's
parts (`tmuxtrain.daemon`) speak only this protocol; `TmuxRunner` (tmux windows on this
machine), `FakeRunner` (in memory, for the simulation) and `SlurmRunner` implement it.

Every process of an attempt carries `TMUXTRAIN_RUN=<run_token>` in its environment, so the
attempt can be found by its token: its window, and what it left behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from tmuxtrain.core.model import Job


class Step(str, Enum):
    """Ways to stop an attempt, in the order a cancel escalates: Ctrl-C as typed, SIGTERM
    to its processes (its wrapper stays to record the status), SIGKILL to all of them."""

    INTERRUPT = "interrupt"
    TERM = "term"
    KILL = "kill"


@dataclass(frozen=True)
class Handle:
    """Where an attempt runs, as the store records it: a tmux window and pane and the
    wrapper's pid (with its start time and boot, see `tmuxtrain.procs.Pid`), or a cluster's
    job id in `window`."""

    window: str | None = None
    pane: str | None = None
    pid: int | None = None
    pid_start: float | None = None
    pid_boot: str | None = None
    external_id: str | None = None  # a queueing runner's id (a Slurm job id)

    def apply(self, job: Job) -> Job:
        """`job` as running here."""
        return dataclasses.replace(
            job, tmux_window=self.window, tmux_pane=self.pane, pid=self.pid,
            pid_start=self.pid_start, pid_boot=self.pid_boot,
            external_id=self.external_id or job.external_id,
        )  # fmt: skip

    def fields(self) -> dict[str, object]:
        """The job columns this handle fills."""
        out: dict[str, object] = {
            "tmux_window": self.window,
            "tmux_pane": self.pane,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "pid_boot": self.pid_boot,
        }
        if self.external_id is not None:
            out["external_id"] = self.external_id
        return out


@dataclass(frozen=True)
class StartRequest:
    """One attempt to start: the job as claimed, its GPUs and its whole environment."""

    job: Job
    gpus: tuple[int, ...]
    env: dict[str, str]
    after: tuple[str, ...] = ()  # a queueing runner's ids it must run after (afterok)


@dataclass(frozen=True)
class Started:
    """The answer to a start: a handle, or why not. `retryable`: the runner itself was not
    available (tmux was gone), so the job goes back to pending with the same attempt."""

    job_id: int
    attempt: int
    handle: Handle | None
    error: str = ""
    retryable: bool = False


@dataclass(frozen=True)
class Exit:
    """An attempt that ended. `clean`: its wrapper recorded the status; otherwise it was
    killed, its window closed or it was lost, and what it left behind must be ended before
    its GPUs are free. `handle`: learned with the exit, when the start's answer came with it.
    `ended_at`: when the wrapper saw the end (None: unknown, use now)."""

    job_id: int
    attempt: int
    exit_code: int | None
    note: str = ""
    clean: bool = True
    ended_at: float | None = None
    handle: Handle | None = None
    cancelled: bool = False  # the runner cancelled it (Slurm: scancel, a failed dependency)
    started_at: float | None = None  # when it started, if the runner knows (Slurm)


@dataclass(frozen=True)
class Capabilities:
    """What a runner can do. `places_gpus`: the scheduler picks the GPUs (a cluster picks
    its own); `windows`: attempts have windows to attach to and to keep for reading."""

    places_gpus: bool = True
    windows: bool = True
    queues: bool = False  # it has a queue of its own: a started job may wait there


@dataclass(frozen=True)
class Progress:
    """What a queueing runner says of a job it holds queued: it started (`started_at`), or
    why it still waits there (`reason`, e.g. Slurm's `Resources`)."""

    job_id: int
    attempt: int
    started_at: float | None = None
    reason: str = ""


def run_token(home: str, job_id: int, attempt: int) -> str:
    """The value of TMUXTRAIN_RUN for one attempt: unique per state folder, job and try."""
    digest = hashlib.sha256(home.encode()).hexdigest()[:8]
    return f"{digest}-{job_id}-{attempt}"


class Runner(Protocol):
    """What the scheduler needs from a backend. Called from the scheduler's thread only."""

    kind: str
    capabilities: Capabilities

    def open(self, wake: Callable[[], None], answered: Callable[[], None]) -> None:
        """Connect. `wake()` when an attempt may have ended, `answered()` when a start's
        answer came (both may be called from another thread)."""

    def close(self) -> None:
        """Disconnect; the attempts keep running."""

    def prepare(self, dirty: bool) -> None:
        """At the start of a tick: read what came in; `dirty`: a launch may follow."""

    def finish_tick(self) -> None:
        """At the end of a tick."""

    def start(self, request: StartRequest) -> None:
        """Send an attempt off; its answer comes from `started` (maybe in this call's tick)."""

    def started(self, wait: bool = False) -> list[Started]:
        """Answers to starts that have come, in the order sent (all of them with `wait`)."""

    def in_flight(self) -> int:
        """Starts sent whose answer has not been handed out yet."""

    def exits(self, running: Sequence[Job], now: float, *, full: bool, nudged: bool) -> list[Exit]:
        """Which of these running (or queued) attempts ended. `full`: look at everything
        (else only what the attempts recorded themselves); `nudged`: something woke the
        scheduler."""

    def progress(self, queued: Sequence[Job], now: float) -> list[Progress]:
        """For a queueing runner: which of these queued jobs started, and why the others
        wait ([] for a runner without a queue)."""

    def find(self, job: Job) -> Handle | Exit | None:
        """A claimed attempt with no handle recorded (the scheduler died in between): its
        handle when it runs, its exit when it ran and ended, None when it never started."""

    def signal(self, job: Job, step: Step) -> None:
        """Stop a running attempt: Ctrl-C, SIGTERM or SIGKILL (see `Step`)."""

    def leftovers(self, job: Job, step: Step | None) -> int:
        """Processes an ended attempt left behind, signalled with `step` when given; how
        many still live. Its GPUs stay taken until none do."""

    def output_complete(self, job: Job) -> bool:
        """Whether everything the ended attempt printed is in its log."""

    def output_tail(self, job: Job) -> str:
        """The attempt's last output (for `retry_on` and failure reasons)."""

    def forget(self, job: Job) -> None:
        """The attempt ended for good: drop what the runner kept for it."""

    def close_windows(self, windows: Sequence[str]) -> None:
        """Close finished attempts' windows (or what stands for them)."""

    def next_event(self) -> float:
        """When the runner knows something will happen without being told (inf: never)."""

    def capabilities_of(self, job: Job) -> Capabilities:
        """What the runner that runs `job` can do (several runners: see runners/multi.py)."""


class NoConnection:
    """The connection steps of the protocol for a runner that holds no connection between
    ticks (the Slurm runner calls its clients per request; the simulation's runner is in
    memory): nothing to open, prepare, finish or close."""

    def open(self, wake: Callable[[], None], answered: Callable[[], None]) -> None:
        pass

    def close(self) -> None:
        pass

    def prepare(self, dirty: bool) -> None:
        pass

    def finish_tick(self) -> None:
        pass
