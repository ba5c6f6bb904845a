"""Several runners behind the one Runner protocol: each job goes to the runner its spec
names (`runner: slurm`), the others to the default one (tmux). The scheduler's parts keep
speaking one protocol; a runner nobody uses is never started (Slurm's clients are never
called on a workstation that sends nothing there)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tmuxtrain.core.model import Job
from tmuxtrain.runners.base import (
    Capabilities,
    Exit,
    Handle,
    Progress,
    Runner,
    Started,
    StartRequest,
    Step,
)


class MultiRunner:
    """Dispatches by `job.spec.runner`; `make(name)` builds a runner on first use."""

    kind = "multi"

    def __init__(self, default: Runner, make: Callable[[str], Runner]) -> None:
        self.default = default
        self.capabilities = default.capabilities
        self.runners: dict[str, Runner] = {default.kind: default}
        self._make = make
        self._callbacks: tuple[Callable[[], None], Callable[[], None]] | None = None

    def of(self, job: Job) -> Runner:
        """The runner `job` goes to."""
        name = job.spec.runner or self.default.kind
        runner = self.runners.get(name)
        if runner is None:
            runner = self.runners[name] = self._make(name)
            if self._callbacks is not None:
                runner.open(*self._callbacks)
        return runner

    def _grouped(self, jobs: Sequence[Job]) -> list[tuple[Runner, list[Job]]]:
        groups: dict[str, tuple[Runner, list[Job]]] = {}
        for job in jobs:
            runner = self.of(job)
            groups.setdefault(runner.kind, (runner, []))[1].append(job)
        return list(groups.values())

    def open(self, wake: Callable[[], None], answered: Callable[[], None]) -> None:
        self._callbacks = (wake, answered)
        for runner in self.runners.values():
            runner.open(wake, answered)

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()

    def prepare(self, dirty: bool) -> None:
        for runner in self.runners.values():
            runner.prepare(dirty)

    def finish_tick(self) -> None:
        for runner in self.runners.values():
            runner.finish_tick()

    def start(self, request: StartRequest) -> None:
        self.of(request.job).start(request)

    def started(self, wait: bool = False) -> list[Started]:
        return [s for runner in list(self.runners.values()) for s in runner.started(wait)]

    def in_flight(self) -> int:
        return sum(runner.in_flight() for runner in self.runners.values())

    def exits(self, running: Sequence[Job], now: float, *, full: bool, nudged: bool) -> list[Exit]:
        out = []
        for runner, jobs in self._grouped(running):
            out += runner.exits(jobs, now, full=full, nudged=nudged)
        if not running and full:  # the first look: the default runner reconnects, say
            out += self.default.exits([], now, full=full, nudged=nudged)
        return out

    def progress(self, queued: Sequence[Job], now: float) -> list[Progress]:
        return [p for runner, jobs in self._grouped(queued) for p in runner.progress(jobs, now)]

    def find(self, job: Job) -> Handle | Exit | None:
        return self.of(job).find(job)

    def signal(self, job: Job, step: Step) -> None:
        self.of(job).signal(job, step)

    def leftovers(self, job: Job, step: Step | None) -> int:
        return self.of(job).leftovers(job, step)

    def output_complete(self, job: Job) -> bool:
        return self.of(job).output_complete(job)

    def output_tail(self, job: Job) -> str:
        return self.of(job).output_tail(job)

    def forget(self, job: Job) -> None:
        self.of(job).forget(job)

    def close_windows(self, windows: Sequence[str]) -> None:
        self.default.close_windows(windows)  # only the default runner (tmux) has windows

    def next_event(self) -> float:
        return min(runner.next_event() for runner in self.runners.values())

    def capabilities_of(self, job: Job) -> Capabilities:
        return self.of(job).capabilities
