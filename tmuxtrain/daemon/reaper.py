"""The reaper: ends attempts, exactly once each.

It asks the runner which running attempts ended, decides what each end means (succeeded,
retried, failed, cancelled: `core.reconcile.outcome`) and records it with the attempt in
one transaction. It carries out cancels and timeouts step by step (Ctrl-C, SIGTERM,
SIGKILL), and after a scheduler restart it finds claimed attempts whose window was never
recorded: adopted when they run, finished when they ended, back to pending (same attempt)
when they never started. An end that was not clean (a killed wrapper, a closed window, tmux
gone) first ends what the attempt left running: its GPUs stay taken until nothing is left.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from tmuxtrain import patterns
from tmuxtrain.core import oom
from tmuxtrain.core import reconcile as rec
from tmuxtrain.core.failure import explain
from tmuxtrain.core.model import PREEMPTED, Config, GpuInfo, Job, JobState
from tmuxtrain.core.units import format_duration
from tmuxtrain.runners.base import Exit, Handle, Runner, Step
from tmuxtrain.store import Store
from tmuxtrain.store.queueing import requeued, start_queued, unqueue

log = logging.getLogger("tmuxtrain.daemon")
OUTPUT_WAIT_S = 2.0  # how long an ended job's last output may take to reach its log
KILL_AGAIN_S = 5.0  # SIGKILL again while a killed attempt still shows as running


@dataclass(frozen=True)
class Finished:
    """An attempt the reaper ended: the job as it ran, and the hook event of its end."""

    job: Job
    exit_code: int | None
    state: JobState
    hook: str


@dataclass
class _Ending:
    """An unclean end whose leftover processes are being ended."""

    exit: Exit
    since: float
    step: Step | None = None


@dataclass
class Reaper:
    store: Store
    runner: Runner
    config: Config
    killed: set[int] = field(default_factory=set)  # SIGKILLed after the grace period
    output_wait: dict[int, float] = field(default_factory=dict)  # retry_on waits for output
    ending: dict[int, _Ending] = field(default_factory=dict)
    signalled: dict[tuple[int, int], tuple[Step, float]] = field(default_factory=dict)

    def collect(
        self,
        running: Sequence[Job],
        now: float,
        *,
        nudged: bool,
        full: bool,
        in_flight: Collection[int],
    ) -> dict[int, Exit]:
        """The running attempts that ended (`end` records them, once the launcher recorded
        the starts that came meanwhile); `in_flight`: claimed jobs whose start's answer the
        launcher still waits for, which are not orphans."""
        exits = {e.job_id: e for e in self.runner.exits(running, now, full=full, nudged=nudged)}
        by_id = {j.id: j for j in running}
        known = {*in_flight, *exits}
        orphans = [
            j
            for j in running
            if j.tmux_window is None and j.external_id is None and j.id not in known
        ]
        for orphan in orphans:
            if (gone := self._orphan(orphan, now)) is not None:
                exits[orphan.id] = gone
        for job_id, ending in list(self.ending.items()):
            if job_id not in by_id or by_id[job_id].attempt != ending.exit.attempt:
                del self.ending[job_id]  # finished meanwhile by another way
            elif job_id not in exits:
                exits[job_id] = ending.exit
        return exits

    def end(
        self,
        exits: dict[int, Exit],
        running: Sequence[Job],
        now: float,
        gpus: Sequence[GpuInfo] = (),
    ) -> list[Finished]:
        """Record the ends of `exits` (see `collect`); the attempts that ended for good.
        `gpus`: the latest snapshot (how much a retry after an OOM may ask for)."""
        by_id = {j.id: j for j in running}
        finished = []
        for e in exits.values():
            job = by_id.get(e.job_id)
            if job is None or job.attempt != e.attempt:
                continue
            if e.handle is not None and self.store.record_handle(
                job.id, job.attempt, e.handle.fields()
            ):
                job = e.handle.apply(job)
            if not e.clean and self._leftovers(job, e, now):
                continue
            if (
                e.exit_code not in (0, None)
                and (job.spec.retry_on or job.attempt - job.restarts <= job.spec.retries)
                and not self._output_read(job, now)
            ):
                continue  # retry_on or an OOM judges the last lines, still on their way
            done = self.finish(job, e, now, gpus)
            if done is not None:
                finished.append(done)
        return finished

    def _orphan(self, job: Job, now: float) -> Exit | None:
        """A claimed attempt with no window recorded: the scheduler died between claiming it
        and recording its window. Never 'lost' for an attempt that never ran."""
        found = self.runner.find(job)
        if isinstance(found, Handle):
            if self.store.record_handle(job.id, job.attempt, found.fields()):
                where = found.window or found.external_id
                log.info("job %s attempt %s adopted: it runs in %s", job.id, job.attempt, where)
            return None
        if isinstance(found, Exit):
            return found
        if job.queued:  # claimed for its runner's queue, never submitted there
            unqueue(self.store, job, "the scheduler stopped before submitting it", None)
            return None
        reason = "requeued: the scheduler stopped before starting it"
        if self.store.transition(
            job.id, JobState.PENDING, now, expect=[JobState.RUNNING], at_attempt=job.attempt,
            kind="requeued", event={"reason": reason},
            **rec.attempt_fields(job.attempt, reason=reason),
        ):  # fmt: skip
            log.info("job %s attempt %s never started: pending again", job.id, job.attempt)
        return None

    def _leftovers(self, job: Job, e: Exit, now: float) -> bool:
        """End what an uncleanly ended attempt left running; True while some of it lives
        (the job keeps its GPUs meanwhile). SIGTERM at once, SIGKILL after half the grace."""
        ending = self.ending.get(job.id)
        if ending is None:
            ending = self.ending[job.id] = _Ending(e, now)
        step: Step | None = None
        if ending.step is None:
            step = Step.TERM
        elif ending.step is Step.TERM and now - ending.since >= self.config.cancel_grace_s / 2:
            step = Step.KILL
        left = self.runner.leftovers(job, step)
        if step is not None:
            ending.step = step
        if not left:
            del self.ending[job.id]
            return False
        if step is Step.TERM:
            reason = f"{e.note or 'ended'}; ending {left} process(es) it left running"
            log.info("job %s: %s", job.id, reason)
            self.store.update(job.id, reason=reason)
        return True

    def _output_read(self, job: Job, now: float) -> bool:
        """Has an ended job's last output reached its log? A job whose failure `retry_on`
        judges waits for that, at most OUTPUT_WAIT_S."""
        first = self.output_wait.setdefault(job.id, now)
        if self.runner.output_complete(job) or now - first >= OUTPUT_WAIT_S:
            del self.output_wait[job.id]
            return True
        return False

    def progress(self, queued: Sequence[Job], running: Sequence[Job], now: float) -> bool:
        """What a queueing runner (Slurm) says of the jobs it holds: which started (now
        running here), which it put back in its queue (requeued), and why the others
        wait. True when a job's state changed."""
        jobs = {j.id: j for j in [*queued, *running]}
        changed = False
        reasons: dict[int, str] = {}
        for p in self.runner.progress([*queued, *running], now):
            job = jobs.get(p.job_id)
            if job is None or job.attempt != p.attempt:
                continue
            if job.state is JobState.PENDING and p.started_at is not None:
                changed |= start_queued(self.store, job, p.started_at, now)
            elif job.state is JobState.RUNNING and p.started_at is None:
                changed |= requeued(self.store, job, p.reason, now)
            elif job.state is JobState.PENDING and p.reason and p.reason != job.reason:
                reasons[job.id] = p.reason
        self.store.set_reasons(reasons)
        return changed

    def finish(
        self, job: Job, e: Exit, now: float, gpus: Sequence[GpuInfo] = ()
    ) -> Finished | None:
        """Record the end of `job`'s attempt; None when another process got there first."""
        if e.cancelled and job.cancel_requested_at is None:  # the runner cancelled it
            job = dataclasses.replace(job, cancel_requested_at=now, cancel_reason=e.note)
        if job.started_at is None and e.started_at is not None:  # ended before we saw it run
            job = dataclasses.replace(job, started_at=e.started_at)
        code, note = e.exit_code, e.note
        if code is None and job.id in self.killed:  # tmux lost it, but we know
            code, note = 137, "killed with SIGKILL after the grace period"
        self.killed.discard(job.id)
        failed = code not in (0, None) and job.cancel_requested_at is None
        tail = self.runner.output_tail(job) if failed else ""
        why, detail = explain(code, tail) if failed else ("", [])
        if why and e.clean:  # what the exit code means, from the job's own last words
            note = f"{why} (exit code {code})"
        out = rec.outcome(
            job, code, tail, now, self.config.retry_backoff_s, note=note,
            matches=patterns.search_any,
        )  # fmt: skip
        ended_at = e.ended_at if e.ended_at is not None else now
        ended_at = max(ended_at, job.started_at or ended_at)
        fields: dict[str, Any] = {"exit_code": code, "reason": out.reason}
        preempted = out.state is JobState.PENDING and job.cancel_reason.startswith(PREEMPTED)
        if out.state is JobState.PENDING:
            fields.update(rec.attempt_fields(job.attempt + 1, not_before=out.not_before))
            fields["reason"] = out.reason
            if preempted:
                fields["restarts"] = job.restarts + 1
            elif why == oom.OOM_REASON:
                fields.update(self._raised(job, gpus))
                fields["reason"] = f"{out.reason}: {fields.pop('words')}"
        else:
            fields["finished_at"] = ended_at
            fields["started_at"] = job.started_at
        event: dict[str, object] = {
            "name": job.name, "exit_code": code, "attempt": job.attempt,
            "reason": fields["reason"],
        }  # fmt: skip
        if "vram_request_mib" in fields:  # what the next attempt asks for per GPU
            event["vram_mib"] = fields["vram_request_mib"]
        ok = self.store.finish_attempt(
            job, out.state, now, ended_at=ended_at, event=event, detail=detail,
            kind="preempted" if preempted else None, **fields,
        )  # fmt: skip
        self.runner.forget(job)
        self.output_wait.pop(job.id, None)
        if not ok:
            return None
        log.info(
            "job %s (%s) attempt %s ended: exit code %s; %s%s",
            job.id, job.name, job.attempt, code, out.state.value,
            f" ({out.reason})" if out.reason else "",
        )  # fmt: skip
        hook = "retrying" if out.state is JobState.PENDING else out.state.value
        return Finished(job, code, out.state, "preempted" if preempted else hook)

    def _raised(self, job: Job, gpus: Sequence[GpuInfo]) -> dict[str, object]:
        """The columns of a retry after CUDA ran out of memory: it asks for more than the
        attempt that ran out had (see core/oom.py), and `words` for its reason."""
        r = oom.raise_vram(
            job.vram_mib, job.vram_peak_mib, oom.largest_gpu(gpus), self.config.headroom_mib
        )
        if job.vram_mib is None:  # whole GPUs already: nothing more to ask for
            return {"words": r.words}
        return {"vram_source": "raised", "vram_request_mib": r.vram_mib, "words": r.words}

    def escalate(self, running: Sequence[Job], now: float) -> None:
        """Timeouts become cancels; cancels go Ctrl-C, then SIGTERM after half the grace
        period, then SIGKILL after all of it (each step sent once, SIGKILL repeated)."""
        grace = self.config.cancel_grace_s
        for job in running:
            if job.id in self.ending or (job.tmux_window is None and job.external_id is None):
                continue  # ending its leftovers already, or not started yet
            key = (job.id, job.attempt)
            if rec.timed_out(job, now):
                reason = f"timeout after {format_duration(job.spec.timeout_s or 0)}"
                log.info("job %s: %s", job.id, reason)
                self.store.update(job.id, cancel_requested_at=now, cancel_reason=reason)
                job.cancel_requested_at, job.cancel_reason = now, reason
            if job.cancel_requested_at is None:
                continue
            step = {"term": Step.TERM, "kill": Step.KILL}.get(
                rec.escalation(job, now, grace) or "", Step.INTERRUPT
            )
            last = self.signalled.get(key)
            if (
                last is not None
                and last[0] == step
                and (step is not Step.KILL or now - last[1] < KILL_AGAIN_S)
            ):
                continue
            if last is not None and _order(last[0]) > _order(step):
                continue
            self.runner.signal(job, step)
            self.signalled[key] = (step, now)
            if step is Step.KILL:
                self.killed.add(job.id)
        live = {(j.id, j.attempt) for j in running}
        self.signalled = {k: v for k, v in self.signalled.items() if k in live}

    def next_due(self, running: Sequence[Job]) -> float:
        """When a step of the reaper's falls due without being nudged."""
        due = [e.since + self.config.cancel_grace_s / 2 for e in self.ending.values()]
        due += [t + OUTPUT_WAIT_S for t in self.output_wait.values()]
        return min(due, default=float("inf"))

    @property
    def busy(self) -> bool:
        """An ended job waits for its output or its leftovers: look again soon."""
        return bool(self.output_wait or self.ending)


def _order(step: Step) -> int:
    return [Step.INTERRUPT, Step.TERM, Step.KILL].index(step)
