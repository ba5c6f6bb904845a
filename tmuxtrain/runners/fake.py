"""An in-memory runner with simulated processes on a simulated clock: what lets the real
scheduler parts be driven through thousands of jobs, restarts and faults in a test.

A job's command says how its simulated process behaves: `sim DURATION [exit=N]
[leftover=S] [ignore-term] [oom]` runs for DURATION seconds and exits N; with `leftover`,
a process of it outlives an unclean end by S seconds (as a `nohup`'d worker does);
`ignore-term` makes it ignore Ctrl-C and SIGTERM; `oom` puts "CUDA out of memory" in its
output; `needs=MiB` runs out of CUDA memory (exit 1, after a tenth of its time) when its
attempt asks for less than that per GPU (whole GPUs are always enough); `resume` is run
after a preemption where the job gives one. Anything else runs for 1 s and exits 0.

The runner keeps the ground truth the scheduler cannot see, for the simulation to check
against: every process that ever ran (`launches`) and what is alive now (`alive`).
Faults: `kill_server()` (tmux dies: wrappers die, leftovers live on), `kill_wrapper(id)`,
and `crash_next` (raise `SimCrash` at a point of the next start, as a `kill -9` of the
scheduler there would stop it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tmuxtrain.core.model import Job
from tmuxtrain.core.preempt import command_of
from tmuxtrain.runners.base import (
    Capabilities,
    Exit,
    Handle,
    NoConnection,
    Progress,
    Started,
    StartRequest,
    Step,
    run_token,
)

SIGNAL_CODES = {Step.INTERRUPT: 130, Step.TERM: 143, Step.KILL: 137}


class SimCrash(BaseException):
    """The scheduler 'dies' here: nothing after this point of the tick happens."""


@dataclass
class SimProcess:
    """One attempt's simulated processes: the wrapper (until `ends`, or until killed) and,
    after an unclean end, leftovers until `leftover_until`."""

    job_id: int
    attempt: int
    token: str
    gpus: tuple[int, ...]
    vram_mib: int | None
    started: float
    ends: float
    code: int
    window: str
    leftover_s: float = 0.0
    ignore_term: bool = False
    oom: bool = False
    killed_at: float | None = None  # the wrapper died then (unclean)
    killed_code: int | None = None
    leftover_until: float | None = None
    window_open: bool = True

    def wrapper_alive(self, now: float) -> bool:
        return self.killed_at is None and self.ends > now

    def alive(self, now: float) -> bool:
        """Any process of the attempt (wrapper, job or leftover) still runs."""
        if self.wrapper_alive(now):
            return True
        return self.leftover_until is not None and self.leftover_until > now


def parse_sim(command: str, vram_mib: int | None = None) -> tuple[float, int, float, bool, bool]:
    """`sim DURATION [exit=N] [leftover=S] [ignore-term] [oom] [needs=MiB]` -> its parts,
    for an attempt that asks for `vram_mib` per GPU (None: whole GPUs)."""
    words = command.split()
    duration, code, leftover = 1.0, 0, 0.0
    oom = "oom" in words
    if words[:1] == ["sim"] and len(words) > 1:
        duration = float(words[1])
    for w in words[2:]:
        key, _, value = w.partition("=")
        if key == "exit":
            code = int(value)
        elif key == "leftover":
            leftover = float(value)
        elif key == "needs" and vram_mib is not None and vram_mib < int(value):
            duration, code, oom = duration / 10, 1, True
    return duration, code, leftover, "ignore-term" in words, oom


class FakeRunner(NoConnection):
    """The Runner protocol over simulated processes; `clock()` gives simulated time."""

    kind = "fake"
    capabilities = Capabilities(places_gpus=True, windows=True)

    def __init__(self, clock: Callable[[], float], home: str = "/sim") -> None:
        self.clock = clock
        self.home = home
        self.procs: dict[str, SimProcess] = {}  # by run token
        self.live: dict[str, SimProcess] = {}  # those not known to be over (see `alive`)
        self.windows: dict[str, SimProcess] = {}
        self.launches: list[tuple[int, int, float]] = []  # (job, attempt, time) ever started
        self.answers: list[Started] = []
        self.crash_next: str | None = None  # "before-window" | "after-window" | "answer-lost"
        self._windows = itertools.count(1)
        self.down_until = -1.0

    # ---- faults -----------------------------------------------------------------------

    def kill_server(self, down_for: float = 0.0) -> None:
        """tmux dies: every wrapper dies with its window; leftovers live on. For `down_for`
        seconds no new one can start (starts fail as tmux's do when it is not running)."""
        now = self.clock()
        self.down_until = now + down_for
        for p in self.alive():
            p.window_open = False
            if p.wrapper_alive(now):
                self._kill(p, now, 129)

    def kill_wrapper(self, job_id: int) -> bool:
        now = self.clock()
        for p in self.alive():
            if p.job_id == job_id and p.wrapper_alive(now):
                self._kill(p, now, 137)
                return True
        return False

    def _kill(self, p: SimProcess, now: float, code: int) -> None:
        p.killed_at, p.killed_code = now, code
        if p.leftover_s:
            p.leftover_until = now + p.leftover_s

    def alive(self) -> list[SimProcess]:
        """The attempts with a live process now (wrapper, job or leftover)."""
        now = self.clock()
        for token in [t for t, p in self.live.items() if not p.alive(now)]:
            del self.live[token]
        return list(self.live.values())

    # ---- the protocol -----------------------------------------------------------------

    def start(self, request: StartRequest) -> None:
        job, now = request.job, self.clock()
        token = run_token(self.home, job.id, job.attempt)
        if self.crash_next == "before-window":
            self.crash_next = None
            raise SimCrash("before-window")
        if now < self.down_until:
            error = "no server running on /tmp/tmux-0/sim"
            self.answers.append(Started(job.id, job.attempt, None, error, retryable=True))
            return
        duration, code, leftover, ignore_term, oom = parse_sim(command_of(job), job.vram_mib)
        p = SimProcess(
            job.id, job.attempt, token, request.gpus, job.vram_mib, now, now + duration,
            code, f"@{next(self._windows)}", leftover, ignore_term, oom,
        )  # fmt: skip
        assert token not in self.procs, f"attempt {token} started twice"
        self.procs[token] = self.live[token] = self.windows[p.window] = p
        self.launches.append((job.id, job.attempt, now))
        if self.crash_next == "after-window":
            self.crash_next = None
            raise SimCrash("after-window")
        self.answers.append(Started(job.id, job.attempt, Handle(p.window, p.window, None)))

    def started(self, wait: bool = False) -> list[Started]:
        out, self.answers = self.answers, []
        if out and self.crash_next == "answer-lost":
            self.crash_next = None
            raise SimCrash("answer-lost")
        return out

    def in_flight(self) -> int:
        return len(self.answers)

    def _proc(self, job: Job) -> SimProcess | None:
        return self.procs.get(run_token(self.home, job.id, job.attempt))

    def _exit(self, p: SimProcess, now: float) -> Exit | None:
        if p.killed_at is not None:
            return Exit(p.job_id, p.attempt, p.killed_code, "killed", clean=False, ended_at=now)
        if p.ends <= now:
            return Exit(p.job_id, p.attempt, p.code, ended_at=p.ends)
        return None

    def exits(self, running: Sequence[Job], now: float, *, full: bool, nudged: bool) -> list[Exit]:
        out = []
        for job in running:
            p = self._proc(job)
            if p is not None and job.tmux_window is not None:
                e = self._exit(p, now)
                if e is not None:
                    out.append(e)
        return out

    def progress(self, queued: Sequence[Job], now: float) -> list[Progress]:
        return []  # no queue of its own: a started job runs at once

    def find(self, job: Job) -> Handle | Exit | None:
        p = self._proc(job)
        if p is None:
            return None
        now = self.clock()
        if p.window_open and p.killed_at is None:
            return Handle(p.window, p.window, None)
        return self._exit(p, now) or Exit(job.id, job.attempt, None, "lost", clean=False)

    def signal(self, job: Job, step: Step) -> None:
        p = self._proc(job)
        now = self.clock()
        if p is None or not p.wrapper_alive(now):
            return
        if step is Step.KILL or not p.ignore_term:
            p.ends, p.code = now, SIGNAL_CODES[step]

    def leftovers(self, job: Job, step: Step | None) -> int:
        p = self._proc(job)
        now = self.clock()
        if p is None or p.leftover_until is None or p.leftover_until <= now:
            return 0
        if step is Step.KILL or (step is Step.TERM and not p.ignore_term):
            p.leftover_until = now
            return 0
        return 1

    def output_complete(self, job: Job) -> bool:
        return True

    def output_tail(self, job: Job) -> str:
        p = self._proc(job)
        return "RuntimeError: CUDA out of memory" if p is not None and p.oom else ""

    def forget(self, job: Job) -> None:
        pass

    def close_windows(self, windows: Sequence[str]) -> None:
        now = self.clock()
        for window in windows:
            p = self.windows.get(window)
            if p is not None:
                p.window_open = False
                if p.wrapper_alive(now):  # closing a running job's window kills it
                    self._kill(p, now, 129)

    def next_event(self) -> float:
        now = self.clock()
        live = self.alive()
        times = [p.ends for p in live if p.wrapper_alive(now)]
        times += [p.leftover_until for p in live if p.leftover_until]
        return min((t for t in times if t > now), default=float("inf"))

    def capabilities_of(self, job: Job) -> Capabilities:
        return self.capabilities
