"""Changing queued and running jobs: cancel, retry, hold and release, edit (priorities
among it), and waiting for jobs to end."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tmuxtrain.api.base import ClientBase
from tmuxtrain.api.editing import edited_spec, spec_changes
from tmuxtrain.core.checkpoints import evals_ref
from tmuxtrain.core.errors import StateError, TmuxtrainError
from tmuxtrain.core.model import FINISHED, PREEMPTED, Job, JobState
from tmuxtrain.store import editing

if TYPE_CHECKING:
    from tmuxtrain.store.cleaning import RemovedJob

# Imported where used (reconcile, cleaning): every command imports this module,
# and start-up time is most of a command's time.


class Changing(ClientBase):
    # ---- changing jobs ----------------------------------------------------------------

    def cancel(
        self, refs: Iterable[str | int], reason: str = "cancelled by user"
    ) -> builtins.list[int]:
        """Pending jobs are dropped; running ones get Ctrl-C now, then SIGTERM and SIGKILL to
        their process tree from the scheduler after the grace period. Finished jobs are left
        as they are (see `cancel_jobs` for what happened to each)."""
        return [job_id for job_id, _ in self.cancel_jobs(refs, reason)]

    def cancel_jobs(
        self, refs: Iterable[str | int], reason: str = "cancelled by user"
    ) -> builtins.list[tuple[int, str]]:
        """`cancel`, saying what it did to each job: `dropped` (it was pending),
        `stopping` (it runs: the scheduler interrupts it), or its state when it had already
        finished (`succeeded`, `failed`, `cancelled`): nothing to do, not an error, so that
        cleaning up twice is harmless."""
        ids = [self.store.resolve(r) for r in refs]
        now = time.time()
        out: builtins.list[tuple[int, str]] = []
        for job_id in ids:
            job = self.store.get(job_id)
            if job.state is JobState.PENDING:
                if self.store.cancel_pending(job_id, reason, now):
                    out.append((job_id, "dropped"))
                    continue
                job = self.store.get(job_id)
            if job.state is JobState.RUNNING or job.queued:  # queued: in Slurm's queue
                if job.cancel_requested_at is None or job.cancel_reason.startswith(
                    ("timeout", PREEMPTED)
                ):  # a cancel wins over a stop that would end otherwise
                    self.store.update(job_id, cancel_requested_at=now, cancel_reason=reason)
                out.append((job_id, "stopping"))
            elif job.state in FINISHED:
                out.append((job_id, job.state.value))
        if any(what == "stopping" for _, what in out):
            self.ensure_scheduler()  # the scheduler sends Ctrl-C at once, then TERM and KILL
        return out

    def retry(self, ref: str | int) -> int:
        """Queue a finished job again (failed, cancelled, or succeeded: a rerun) as its next
        attempt, under the same id."""
        job = self.job(ref)
        if job.state not in FINISHED:
            raise StateError(
                f"job {job.id} is {job.state.value}: only finished jobs can be retried"
            )
        ok = self.store.transition(
            job.id,
            JobState.PENDING,
            time.time(),
            expect=list(FINISHED),
            at_attempt=job.attempt,
            kind="resubmitted",
            event={"reason": "retry requested"},
            exit_code=None,
            **_attempt_fields(job.attempt + 1),
        )
        if not ok:
            raise StateError(f"job {job.id} changed state meanwhile; try again")
        self.ensure_scheduler()
        return job.id

    def hold(self, refs: Iterable[str | int], held: bool = True) -> builtins.list[int]:
        """Keep pending jobs from starting (`held`), or let them start again."""
        return [job_id for job_id, _ in self.hold_jobs(refs, held)]

    def hold_jobs(
        self, refs: Iterable[str | int], held: bool = True
    ) -> builtins.list[tuple[int, bool]]:
        """`hold`, saying for each job whether it changed (False: it already was held, or
        released). Only pending jobs: any other is a StateError, before anything changed."""
        ids = [self.store.resolve(r) for r in refs]
        for job_id in ids:
            job = self.store.get(job_id)
            if job.state is not JobState.PENDING:
                raise StateError(
                    f"job {job_id} is {job.state.value}: only pending jobs can be held or released"
                )
            if job.queued:
                raise StateError(f"job {job_id} is in Slurm's queue already: cancel it instead")
        out = []
        for job_id in ids:
            result = editing.set_held(self.store, job_id, held, time.time())
            if result not in ("changed", "unchanged"):
                raise StateError(f"job {job_id} is {result} now: it started meanwhile")
            out.append((job_id, result == "changed"))
        self.nudge()
        return out

    def set_priority(self, ref: str | int, priority: int) -> int:
        """Change a pending job's priority (see `edit`)."""
        job_id = self.store.resolve(ref)
        self.edit(job_id, priority=priority)
        return job_id

    def edit(
        self,
        ref: str | int,
        *,
        command: str | None = None,
        gpus: int | None = None,
        vram: str | None = None,
        priority: int | None = None,
        timeout: str | float | None = None,
        env: dict[str, str] | None = None,
        name: str | None = None,
        after: Sequence[str | int] | None = None,
    ) -> dict[str, builtins.list[Any]]:
        """Change a pending (or held) job in place, keeping its id; validated as a job file
        is (`vram: exclusive` and `timeout: none` remove those). `env` adds to the job's
        variables; `after` replaces its dependencies (ids, or names as `add` resolves
        them). Returns what changed, `{field: [old, new]}` as people read them."""
        job = self.job(ref)
        if job.state is not JobState.PENDING:
            raise StateError(
                f"job {job.id} is {job.state.value}: only pending or held jobs can be edited"
            )
        if job.queued:
            raise StateError(
                f"job {job.id} is in Slurm's queue already: cancel it and add it again"
            )
        spec = edited_spec(
            job.spec, command=command, gpus=gpus, vram=vram, priority=priority,
            timeout=timeout, env=env, name=name, after=after,
        )  # fmt: skip
        after_ids, after_evals = job.after_ids, job.after_evals
        if after is not None:
            after_ids, after_evals = self._new_dependencies(job.id, after)
        changes = spec_changes(job.spec, spec)
        if after_ids != job.after_ids:
            changes["after"] = [list(job.after_ids), list(after_ids)]
        if after_evals != job.after_evals:
            changes["after_evals"] = [list(job.after_evals), list(after_evals)]
        if not changes:
            return {}
        deps = (after_ids, after_evals)
        if not editing.edit_pending(self.store, job.id, spec, deps, time.time(), changes):
            raise StateError(f"job {job.id} started meanwhile; it was not changed")
        self.nudge()
        return changes

    def _new_dependencies(
        self, job_id: int, refs: Sequence[str | int]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The ids `refs` name, and those of them whose checkpoint evaluations it waits for
        too (`train.evals`); refused when the job would wait for itself (a cycle)."""
        ids: builtins.list[int] = []
        evals: builtins.list[int] = []
        for ref in refs:
            base = evals_ref(str(ref).strip())
            try:
                dep = self.dependency_id(str(ref) if base is None else base)
            except TmuxtrainError as e:
                raise TmuxtrainError(f"--after: {e}") from None
            if base is not None and dep not in evals:
                if self.store.get(dep).spec.checkpoints is None:
                    raise TmuxtrainError(f"--after: '{ref}': job {dep} has no checkpoints:")
                evals.append(dep)
            if dep not in ids:
                ids.append(dep)
        seen: set[int] = set()
        todo = list(ids)
        while todo:  # everything the new dependencies wait for, transitively
            if job_id in todo:
                raise TmuxtrainError(f"--after: job {job_id} would wait for itself (a cycle)")
            seen.update(todo)
            deps = editing.dependencies(self.store, todo).values()
            todo = [d for ds in deps for d in ds if d not in seen]
        return tuple(ids), tuple(evals)

    def clean(
        self,
        refs: Iterable[str | int] | None = None,
        state: str | None = None,
        older_than: float | None = None,
    ) -> dict[str, Any]:
        """Remove finished jobs (these, or all) with their logs, metric history and events;
        `state` narrows to some finished states, `older_than` (seconds) to jobs finished
        that long ago. Jobs a waiting job depends on stay. What it did, as `clean --json`
        prints it: `removed` ids, `kept` {id: [ids waiting on it]}, `gone` (ids removed
        before). A job given that has not finished is a StateError; nothing is removed."""
        states = self._states(state) or list(FINISHED)
        unfinished = [s.value for s in states if s not in FINISHED]
        if unfinished:
            raise TmuxtrainError(
                f"--state: {', '.join(unfinished)} jobs have not finished; clean removes"
                " succeeded, failed and cancelled jobs"
            )
        ids = None
        if refs is not None:
            ids = []
            for ref in refs:
                text = str(ref).strip()
                ids.append(int(text) if text.isdigit() else self.store.resolve(text))
        before = None if older_than is None else time.time() - older_than
        if ids:
            busy = {i: st.value for i, (st, _) in self.store.states(ids).items() if not st.finished}
            if busy:
                i, st = next(iter(busy.items()))
                raise StateError(f"job {i} is {st}: only finished jobs can be cleaned")
        from tmuxtrain.store import cleaning

        done = cleaning.clean(self.store, ids, states, before)
        self._tidy(done.removed)
        return {
            "removed": [j.id for j in done.removed],
            "kept": done.kept,
            "gone": done.gone,
        }

    def _tidy(self, removed: Sequence[RemovedJob]) -> None:
        """What removed jobs leave outside the database: their log files, their wrapper
        scripts, and the finished windows kept for reading (found by the run token, so a
        window id that tmux reused for something else is never closed)."""
        import contextlib
        import os

        for job in removed:
            for path in (job.log_path, self.settings.script_path(job.id)):
                if path:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        windows = [j for j in removed if j.tmux_window]
        if windows:
            from tmuxtrain.runners.base import run_token
            from tmuxtrain.runners.tmux import TAG_OPTION
            from tmuxtrain.runners.tmux_control import TmuxError

            tmux = self.tmux()
            tags = {run_token(self.settings.home, j.id, j.attempt) for j in windows}
            fmt = f"#{{{TAG_OPTION}}}\t#{{window_id}}"
            try:
                listed = tmux.cmd("list-windows", "-t", f"={self.settings.session}:", "-F", fmt)
            except TmuxError:
                return  # no server, no session: no windows either
            mine = [w for tag, _, w in (ln.partition("\t") for ln in listed.splitlines())
                    if tag in tags]  # fmt: skip
            if mine:
                tmux.kill_windows(mine)

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


def _attempt_fields(attempt: int) -> dict[str, Any]:
    from tmuxtrain.core.reconcile import attempt_fields

    return attempt_fields(attempt)
