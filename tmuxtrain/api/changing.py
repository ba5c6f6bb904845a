"""Changing queued and running jobs: cancel, retry, hold and release, priorities, and
waiting for jobs to end."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable

from tmuxtrain.api.base import ClientBase
from tmuxtrain.core.errors import StateError
from tmuxtrain.core.model import FINISHED, Job, JobState
from tmuxtrain.core.reconcile import attempt_fields


class Changing(ClientBase):
    # ---- changing jobs ----------------------------------------------------------------

    def cancel(
        self, refs: Iterable[str | int], reason: str = "cancelled by user"
    ) -> builtins.list[int]:
        """Pending jobs are dropped; running ones get Ctrl-C now, then SIGTERM and SIGKILL to
        their process tree from the scheduler after the grace period."""
        ids = [self.store.resolve(r) for r in refs]
        now = time.time()
        interrupted = False
        for job_id in ids:
            job = self.store.get(job_id)
            if job.state is JobState.PENDING:
                if self.store.cancel_pending(job_id, reason, now):
                    continue
                job = self.store.get(job_id)
            if job.state is JobState.RUNNING or job.queued:  # queued: in Slurm's queue
                if job.cancel_requested_at is None or job.cancel_reason.startswith("timeout"):
                    self.store.update(job_id, cancel_requested_at=now, cancel_reason=reason)
                interrupted = True
            elif job.state in FINISHED:
                raise StateError(f"job {job_id} already {job.state.value}")
        if interrupted:  # the scheduler sends Ctrl-C at once, then TERM and KILL
            self.ensure_scheduler()
        return ids

    def retry(self, ref: str | int) -> int:
        job = self.job(ref)
        if job.state not in (JobState.FAILED, JobState.CANCELLED):
            raise StateError(
                f"job {job.id} is {job.state.value}: only failed or cancelled jobs can be retried"
            )
        ok = self.store.transition(
            job.id,
            JobState.PENDING,
            time.time(),
            expect=[JobState.FAILED, JobState.CANCELLED],
            at_attempt=job.attempt,
            kind="resubmitted",
            event={"reason": "retry requested"},
            exit_code=None,
            **attempt_fields(job.attempt + 1),
        )
        if not ok:
            raise StateError(f"job {job.id} changed state meanwhile; try again")
        self.ensure_scheduler()
        return job.id

    def hold(self, refs: Iterable[str | int], held: bool = True) -> builtins.list[int]:
        ids = [self.store.resolve(r) for r in refs]
        for job_id in ids:
            job = self.store.get(job_id)
            if job.state is not JobState.PENDING:
                raise StateError(
                    f"job {job_id} is {job.state.value}: only pending jobs can be held or released"
                )
            if job.queued:
                raise StateError(f"job {job_id} is in Slurm's queue already: cancel it instead")
        for job_id in ids:
            self.store.update(job_id, held=held, reason="held" if held else "")
        self.nudge()
        return ids

    def set_priority(self, ref: str | int, priority: int) -> int:
        job = self.job(ref)
        if job.state is not JobState.PENDING:
            raise StateError(
                f"job {job.id} is {job.state.value}: only a pending job's priority can change"
            )
        spec = job.spec.to_dict()
        spec["priority"] = priority
        self.store.set_spec(job.id, spec)
        self.nudge()
        return job.id

    # ---- waiting and logs -------------------------------------------------------------

    def wait(self, refs: Iterable[str | int] | None = None, timeout: float | None = None) -> bool:
        """Block until the jobs (default: those pending or running now) have ended; True
        when all succeeded. TimeoutError (naming the unfinished) after `timeout` s."""
        return all(j.state is JobState.SUCCEEDED for j in self.wait_for(refs, timeout))

    def waited_ids(self, refs: Iterable[str | int] | None = None) -> builtins.list[int]:
        """What `wait` waits for: these jobs, or the jobs pending or running now."""
        if refs is not None:
            return [self.store.resolve(r) for r in refs]
        return [j.id for j in self.store.jobs([JobState.PENDING, JobState.RUNNING])]

    def wait_for(
        self,
        refs: Iterable[str | int] | None = None,
        timeout: float | None = None,
        poll_s: float = 0.01,
    ) -> builtins.list[Job]:
        """Block until the jobs (default: those pending or running now) have ended; the
        jobs as they ended. Cheap to poll often: the jobs' states are read again only when
        another process committed (`data_version`), so `wait` returns within ~10 ms."""
        ids = self.waited_ids(refs)
        deadline = None if timeout is None else time.monotonic() + timeout
        version: int | None = None
        while True:
            now_version = self.store.data_version()
            if now_version != version:
                version = now_version
                states = self.store.states(ids)
                left = [i for i in ids if i in states and not states[i][0].finished]
                if not left:
                    return self.store.jobs(ids=ids)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"timed out; still unfinished: {', '.join(map(str, left))}")
            time.sleep(poll_s)

    def log_path(self, ref: str | int) -> str:
        return self.job(ref).log_path
