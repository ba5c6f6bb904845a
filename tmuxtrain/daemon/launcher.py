"""The launcher: starts what the queue policy decides.

Each job is claimed in the store first (pending -> running, conditional on its attempt),
so a crash can never start it twice, and only then handed to the runner. The answer (its
window) is recorded when it comes; a start that failed because the runner itself was gone
(tmux not running) puts the job back to pending with the same attempt, since it never ran.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence

from tmuxtrain.core import oom, preempt
from tmuxtrain.core.fairshare import gpu_share, totals_of
from tmuxtrain.core.model import Config, GpuInfo, Job, JobState
from tmuxtrain.core.reconcile import attempt_fields
from tmuxtrain.core.schedule import Decisions, decide, policy_order
from tmuxtrain.core.units import format_duration
from tmuxtrain.daemon.usage import UsageTracker
from tmuxtrain.jobenv import job_environment, remote_environment
from tmuxtrain.procs import free_port
from tmuxtrain.runners.base import Runner, Started, StartRequest, run_token
from tmuxtrain.settings import Settings
from tmuxtrain.store import Store
from tmuxtrain.store.queueing import (
    claim_queued,
    dependencies,
    fail_queued,
    record_external,
    unqueue,
)
from tmuxtrain.store.stopping import request_stop

log = logging.getLogger("tmuxtrain.daemon")
START_AGAIN_S = 2.0  # a start that failed because tmux was gone is tried again this much later


class Launcher:
    """Decides, claims and starts; records the starts' answers (`settle`)."""

    def __init__(self, store: Store, runner: Runner, config: Config, settings: Settings) -> None:
        self.store = store
        self.runner = runner
        self.config = config
        self.settings = settings
        self.claimed: dict[int, Job] = {}  # started, answer not recorded yet
        self.submitted: dict[int, Job] = {}  # handed to a queueing runner, id not recorded
        self.queue_moved = False  # a queueing runner took a job: decide again
        self.last: Decisions | None = None  # the latest decision (the simulation checks it)
        self.held_back = False  # a retry waits for its last attempt's output
        self.preempted = False  # a running job was asked to stop for preemption
        self.stopping_for: dict[int, int] = {}  # preempted job -> the job it stops for
        # What `after: [train.evals]` waits for: the checkpoint watcher knows.
        self.evaluations_open: (
            Callable[[Iterable[int], float, Collection[int]], dict[int, int]] | None
        ) = None
        self.waiting_on_evals = False  # a job waits for evaluations: decide again soon
        self.usage = UsageTracker(store, config.fair_share_half_life_s)
        self.yield_to: dict[int, int] = {}  # the same, kept until that job started

    def launch(
        self,
        pending: Sequence[Job],
        running: Sequence[Job],
        gpus: Sequence[GpuInfo],
        now: float,
        draining: Collection[int] = (),
    ) -> bool:
        """One decision over the queue, carried out; True when something was claimed. Jobs
        of a runner with a queue of its own (Slurm) are handed to it (`_submit`); the others
        are placed on this machine's GPUs by the queue policy."""
        places = self.runner.capabilities_of
        self.waiting_on_evals = False
        remote = [j for j in pending if not places(j).places_gpus and not j.queued]
        pending = [j for j in pending if places(j).places_gpus]
        running = [j for j in running if places(j).places_gpus]
        submitted = self._submit(remote, now, draining) if remote else False
        ids = {j.id for j in pending}
        # A job the reaper put back this tick (its start was never made) is pending now.
        running = [j for j in running if j.id not in ids]
        if self.yield_to:  # a preempted job starts only after the job it made room for
            waiting = {j.id for j in pending if not j.held}
            self.yield_to = {v: f for v, f in self.yield_to.items() if f in waiting}
            pending = [j for j in pending if j.id not in self.yield_to]
            ids = {j.id for j in pending}
        active = [*pending, *running]
        ids.update(j.id for j in running)
        deps = {d for j in pending for d in j.after_ids} - ids
        dep_states = self.store.states(deps) if deps else {}
        evals = self._evals_open(pending, now, draining)
        fair = self.config.policy == "fair-share"
        usage = self.usage.of(running, now) if fair else None
        decisions = decide(
            active, gpus, self.config, now, dep_states, evals_open=evals, usage=usage
        )
        self.last = decisions
        if decisions.reservation is not None and decisions.reserved_start is not None:
            head = decisions.reservation[0]
            when = expected_start(decisions.reserved_start, now)
            decisions.reasons[head] = f"{decisions.reasons[head]}; expected to start {when}"
        for job_id, why in decisions.cancels:
            if self.store.cancel_pending(job_id, why, now):
                log.info("job %s cancelled: %s", job_id, why)
        by_id = {j.id: j for j in pending}
        reasons = {i: r + oom.note(by_id[i]) for i, r in decisions.reasons.items()}
        self.preempted = False
        if self.config.preempt_after_s is not None and any(j.spec.preemptible for j in running):
            ready = [j for j in pending if not any(evals.get(d) for d in j.after_evals)]
            self._preempt(ready, running, gpus, decisions, dep_states, reasons, now)
        self.store.set_reasons({i: r for i, r in reasons.items() if by_id[i].reason != r})
        ports = {j.master_port for j in running if j.master_port}
        self.held_back = False
        claimed = self.preempted
        for launch in decisions.launches:
            job = by_id[launch.job_id]
            if job.id in draining:
                # A retry: closing the last attempt's window now would lose its last lines
                # (the error retry_on judged). Next tick, once they are in the log.
                self.held_back = True
                continue
            claimed |= self._start(job, launch.gpus, now, ports, gpus)
        return claimed or submitted

    def _preempt(
        self,
        pending: Sequence[Job],
        running: Sequence[Job],
        gpus: Sequence[GpuInfo],
        decisions: Decisions,
        dep_states: dict[int, tuple[JobState, str]],
        reasons: dict[int, str],
        now: float,
    ) -> None:
        """Stop the preemptible jobs `core.preempt` picks (the reaper sends Ctrl-C at its
        next step, SIGTERM after half the grace); the waiting job's reason says so while
        they stop."""
        order = policy_order(pending, running, self.config)
        launched = {launch.job_id: launch.gpus for launch in decisions.launches}
        by_id = {j.id: j for j in running}
        live = {j.id for j in running if preempt.stopping(j)}
        self.stopping_for = {v: f for v, f in self.stopping_for.items() if v in live}
        for p in preempt.choose(
            pending, running, gpus, self.config, now, order, launched, dep_states
        ):
            victim = by_id[p.job_id]
            if request_stop(self.store, victim, p.reason, now, "preempting"):
                log.info("job %s (%s): %s", victim.id, victim.name, p.reason)
                self.preempted = True
                self.stopping_for[victim.id] = self.yield_to[victim.id] = p.for_job
        for victim_id, for_job in self.stopping_for.items():
            if for_job in reasons:
                name = by_id[victim_id].name
                reasons[for_job] += f"; preempting job {victim_id} ({name})"

    def _evals_open(
        self, jobs: Sequence[Job], now: float, draining: Collection[int]
    ) -> dict[int, int]:
        """Open checkpoint evaluations of the jobs these wait on with `after: [X.evals]`.
        A watch closes with the clock, not with a change in the store: while a job waits
        on one, the loop decides again each tick."""
        wanted = {d for j in jobs for d in j.after_evals}
        if not wanted or self.evaluations_open is None:
            return {}
        evals = self.evaluations_open(wanted, now, draining)
        self.waiting_on_evals |= any(n > 0 for n in evals.values())
        return evals

    def _submit(self, jobs: Sequence[Job], now: float, draining: Collection[int] = ()) -> bool:
        """Hand pending jobs to their queueing runner as soon as nothing holds them here:
        not held, no retry backoff left, and every dependency either succeeded or already
        in that runner (then waited for there, `afterok`). A failed dependency cancels."""
        deps = dependencies(self.store, {d for j in jobs for d in j.after_ids})
        evals = self._evals_open(jobs, now, draining)
        reasons: dict[int, str] = {}
        handed = False
        for job in jobs:
            why, after = self._holds(job, deps, now)
            if why is None and any(evals.get(d, 0) for d in job.after_evals):
                why = "waiting for the checkpoint evaluations of its dependencies"
            if why is not None:
                if why.startswith("dependency ") and self.store.cancel_pending(job.id, why, now):
                    log.info("job %s cancelled: %s", job.id, why)
                elif job.reason != why:
                    reasons[job.id] = why
                continue
            if not claim_queued(self.store, job, "submitting"):
                continue
            queued = dataclasses.replace(job, queued=True)
            token = run_token(self.settings.home, job.id, job.attempt)
            env = remote_environment(job, self.store.env_of(job.id), token)
            self.submitted[job.id] = queued
            log.info("submitting job %s (%s) attempt %s to %s", job.id, job.name, job.attempt,
                     job.spec.runner)  # fmt: skip
            self.runner.start(StartRequest(queued, (), env, after))
            handed = True
        self.store.set_reasons(reasons)
        return handed

    @staticmethod
    def _holds(
        job: Job, deps: dict[int, tuple[JobState, str, str | None]], now: float
    ) -> tuple[str | None, tuple[str, ...]]:
        """Why `job` cannot be submitted yet (None: it can), and the runner's ids it must
        run after."""
        if job.held:
            return "held (tmuxtrain release to let it start)", ()
        if job.not_before is not None and job.not_before > now:
            return f"retry {job.attempt} in {format_duration(job.not_before - now)}", ()
        after = []
        for dep in job.after_ids:
            state, name, external = deps.get(dep, (JobState.CANCELLED, "?", None))
            if state in (JobState.FAILED, JobState.CANCELLED):
                return f"dependency {dep} ({name}) {state.value}", ()
            if state is JobState.SUCCEEDED:
                continue
            if external is None or dep in job.after_evals:
                return f"waiting for job {dep} ({name}) to succeed", ()
            after.append(external)
        return None, tuple(after)

    def _start(
        self,
        job: Job,
        gpus: tuple[int, ...],
        now: float,
        ports: set[int],
        infos: Sequence[GpuInfo],
    ) -> bool:
        port = free_port(ports)
        share = gpu_share(gpus, job.vram_mib, totals_of(infos))
        ok = self.store.transition(
            job.id,
            JobState.RUNNING,
            now,
            expect=[JobState.PENDING],
            at_attempt=job.attempt,
            event={"name": job.name, "gpus": list(gpus), "attempt": job.attempt},
            gpus=gpus,
            started_at=now,
            reason="",
            master_port=port,
            not_before=None,
            exit_code=None,
            tmux_window=None,
            tmux_pane=None,
            pid=None,
            pid_start=None,
            pid_boot=None,
            vram_peak_mib=None,
            gpu_share=share,
        )
        if not ok:  # cancelled or changed by another process meanwhile
            return False
        ports.add(port)
        token = run_token(self.settings.home, job.id, job.attempt)
        env = job_environment(job, self.store.env_of(job.id), gpus, infos, port, token)
        claimed = dataclasses.replace(
            job, state=JobState.RUNNING, gpus=gpus, started_at=now, master_port=port,
            gpu_share=share,
        )  # fmt: skip
        self.claimed[job.id] = claimed
        on = ",".join(map(str, gpus)) or "no GPU"
        log.info("starting job %s (%s) attempt %s on GPU %s", job.id, job.name, job.attempt, on)
        self.runner.start(StartRequest(claimed, gpus, env))
        return True

    def settle(self, now: float, wait: bool = False) -> list[Job]:
        """Record the answers that came (all of them with `wait`); the jobs now running."""
        started = []
        for answer in self.runner.started(wait):
            queued = self.submitted.pop(answer.job_id, None)
            if queued is not None:
                self._queued(queued, answer, now)
                continue
            job = self.claimed.pop(answer.job_id, None)
            if job is None or job.attempt != answer.attempt:
                continue
            if answer.handle is not None:
                if self.store.record_handle(job.id, job.attempt, answer.handle.fields()):
                    started.append(answer.handle.apply(job))
            else:
                self.could_not_start(job, answer, now)
        return started

    def _queued(self, job: Job, answer: Started, now: float) -> None:
        """The answer to a submission: the runner's id, or why not (tried again later when
        the runner itself was unreachable)."""
        if job.attempt != answer.attempt:
            return
        if answer.handle is not None and answer.handle.external_id:
            ext = answer.handle.external_id
            self.queue_moved = True  # jobs that wait for this one may be submitted now
            if record_external(self.store, job, ext, f"in {job.spec.runner}: submitted", now):
                log.info("job %s attempt %s is %s job %s", job.id, job.attempt,
                         job.spec.runner, ext)  # fmt: skip
        elif answer.retryable:
            unqueue(self.store, job, f"could not submit ({answer.error}); will try again",
                    now + START_AGAIN_S)  # fmt: skip
        else:
            log.error("could not submit job %s: %s", job.id, answer.error)
            fail_queued(self.store, job, f"could not submit: {answer.error}", now)

    def could_not_start(self, job: Job, answer: Started, now: float) -> None:
        """A start that failed. When the runner was gone the job never ran: back to pending
        with the same attempt. Otherwise it failed for good, with tmux's words."""
        self.runner.forget(job)
        if answer.retryable:
            reason = f"could not start ({answer.error}); will try again"
            log.warning("job %s: %s", job.id, reason)
            self.store.transition(
                job.id, JobState.PENDING, now, expect=[JobState.RUNNING], at_attempt=job.attempt,
                kind="requeued", event={"reason": reason},
                **attempt_fields(job.attempt, not_before=now + START_AGAIN_S, reason=reason),
            )  # fmt: skip
            return
        log.error("could not start job %s: %s", job.id, answer.error)
        self.store.transition(
            job.id, JobState.FAILED, now, expect=[JobState.RUNNING], at_attempt=job.attempt,
            event={"reason": answer.error}, reason=f"could not start: {answer.error}",
            finished_at=now,
        )  # fmt: skip


def expected_start(at: float, now: float) -> str:
    """'by 14:03:12' (local time; with the day when it is not within a day), or 'now'
    when the time limits that bound it have all passed (the jobs are being stopped)."""
    if at <= now:
        return "as the jobs past their time limit stop"
    fmt = "%H:%M:%S" if at - now < 86400 else "%a %d %b %H:%M"
    return "by " + time.strftime(fmt, time.localtime(at))
