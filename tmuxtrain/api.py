"""The Python API: `Client` is what the CLI, the dashboard and other programs call.

    from tmuxtrain.api import Client
    c = Client()                                   # reads TMUXTRAIN_* like the CLI
    [job_id] = c.add_command("python train.py --lr 3e-4", gpus=1, vram="10GiB")
    c.wait([job_id])                               # True when every job succeeded
    print(c.show(job_id)["metrics"].get("loss"))

Heavy modules (tmux, psutil, NVML, YAML) are imported only by the methods that need them,
so `tmuxtrain ls` starts fast.
"""

from __future__ import annotations

import builtins
import json
import os
import shlex
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tmuxtrain.core.errors import SpecError, StateError, TmuxtrainError
from tmuxtrain.core.model import FINISHED, Job, JobSpec, JobState
from tmuxtrain.core.reconcile import attempt_fields
from tmuxtrain.settings import Settings, from_env
from tmuxtrain.store import Store, job_json

ADHOC = "<command line>"
INTERPRETERS = {
    "python",
    "python3",
    "bash",
    "sh",
    "torchrun",
    "accelerate",
    "deepspeed",
    "uv",
    "srun",
}


def _spec_error(spec: JobSpec, field: str, message: str) -> SpecError:
    path, _, line = spec.source.rpartition(":")
    return SpecError(path or spec.source, int(line) if line.isdigit() else None, field, message)


def adhoc_name(argv: Sequence[str]) -> str:
    """A readable default name for `add -- CMD`: the script, not the interpreter."""
    words = list(argv)
    if len(words) == 1:
        words = shlex.split(words[0]) if words[0].strip() else ["job"]
    for w in words:
        base = os.path.basename(w)
        if base and base not in INTERPRETERS and not w.startswith("-"):
            return os.path.splitext(base)[0] or base
    return os.path.basename(words[0]) or "job"


class Client:
    """One user's view of one tmuxtrain home."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or from_env()
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self.settings.ensure_dirs()
            self._store = Store(self.settings.db_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # ---- submitting -------------------------------------------------------------------

    def add_files(
        self, paths: Sequence[str], overrides: dict[str, Any] | None = None, *, start: bool = True
    ) -> list[int]:
        """Queue every job of every file; nothing is queued if any file has a bad job."""
        from tmuxtrain.jobfile import load_jobs

        specs: list[JobSpec] = []
        for path in paths:
            specs.extend(load_jobs(path, overrides))
        return self.add_specs(specs, start=start)

    def add_command(
        self,
        command: str | Sequence[str],
        overrides: dict[str, Any] | None = None,
        *,
        start: bool = True,
        **opts: Any,
    ) -> list[int]:
        """Queue one ad-hoc command (a shell string, or argv to be quoted)."""
        from tmuxtrain.core.spec import parse_jobs
        from tmuxtrain.jobfile import apply_overrides

        argv = [command] if isinstance(command, str) else list(command)
        if not argv or not " ".join(argv).strip():
            raise SpecError(ADHOC, None, "command", "is empty: give a command after --")
        text = argv[0] if len(argv) == 1 else shlex.join(argv)
        doc: dict[str, Any] = {"command": text, "name": adhoc_name(argv)}
        doc = apply_overrides(doc, {**(overrides or {}), **opts})
        for key in ("command", "name"):  # no matrix here: braces are the user's, literally
            if isinstance(doc.get(key), str):
                doc[key] = doc[key].replace("{", "{{").replace("}", "}}")
        cwd = os.getcwd()
        specs = parse_jobs(doc, ADHOC, cwd, default_name=doc["name"], home=os.path.expanduser("~"))
        return self.add_specs(specs, start=start)

    def add_specs(
        self, specs: Sequence[JobSpec], *, start: bool = True, parent_id: int | None = None
    ) -> list[int]:
        """Resolve dependencies (names in this batch first, then existing jobs) and insert."""
        from tmuxtrain.jobenv import submit_environment

        given = list(specs)
        specs = self._dependency_order(given)
        batch = {s.name: i for i, s in enumerate(specs)}
        items: list[tuple[JobSpec, tuple[int, ...]]] = []
        # Ids of this batch are not known before insert: -(k+1) stands for its k-th job.
        for spec in specs:
            deps = []
            for ref in spec.after:
                if ref in batch and ref != spec.name:
                    deps.append(-(batch[ref] + 1))
                    continue
                try:
                    deps.append(self._resolve_dep(ref))
                except TmuxtrainError as e:
                    raise _spec_error(spec, "after", str(e)) from None
            items.append((spec, tuple(deps)))
        env = submit_environment(True)
        minimal = submit_environment(False)
        rows = [(spec, deps, env if spec.inherit_env else minimal) for spec, deps in items]
        inserted = self.store.add_jobs(rows, time.time(), self.settings.logs_dir, parent_id)
        by_spec = {id(s): i for s, i in zip(specs, inserted, strict=True)}
        ids = [by_spec[id(s)] for s in given]  # in the order the files gave them
        if start:
            self.ensure_scheduler()
        return ids

    @staticmethod
    def _dependency_order(specs: Sequence[JobSpec]) -> builtins.list[JobSpec]:
        """Jobs of one submission with each after the jobs of the batch it depends on (so a
        file may list `evaluate` before `train`); a cycle is a SpecError."""
        names = {s.name for s in specs}
        out: builtins.list[JobSpec] = []
        placed: set[str] = set()
        pending = list(specs)
        while pending:
            ready = [
                s
                for s in pending
                if all(d in placed or d not in names or d == s.name for d in s.after)
            ]
            if not ready:
                cycle = ", ".join(s.name for s in pending)
                raise _spec_error(pending[0], "after", f"dependency cycle among: {cycle}")
            out += ready
            placed.update(s.name for s in ready)
            pending = [s for s in pending if s.name not in placed]
        return out

    def _resolve_dep(self, ref: str) -> int:
        text = ref.strip()
        if text.isdigit():
            return self.store.resolve(text)
        ids = self.store.ids_named(text)
        if not ids:
            raise TmuxtrainError(f"no job named '{text}' to run after")
        return ids[-1]  # the latest job of that name: resubmitting a chain follows the new one

    # ---- reading ----------------------------------------------------------------------

    def list(self, state: str | None = None) -> builtins.list[dict[str, Any]]:
        jobs: builtins.list[dict[str, Any]] = json.loads(self.list_json(state))
        return jobs

    def list_json(self, state: str | None = None) -> str:
        """`list` as JSON text, built by SQLite: what `ls --json` prints."""
        return self.store.jobs_json(self._states(state), time.time())

    def _states(self, state: str | None) -> builtins.list[JobState] | None:
        if not state:
            return None
        try:
            return [JobState(s.strip()) for s in state.split(",")]
        except ValueError:
            allowed = ", ".join(s.value for s in JobState)
            raise TmuxtrainError(f"--state: unknown state '{state}' (use {allowed})") from None

    def job(self, ref: str | int) -> Job:
        return self.store.get(self.store.resolve(ref))

    def show(self, ref: str | int) -> dict[str, Any]:
        job = self.job(ref)
        out = job_json(job)
        out["attempts"] = self.store.history.attempts(job.id)
        out["spec"] = job.spec.to_dict()
        out["checkpoints"] = self.checkpoints(job)
        return out

    def checkpoints(self, job: Job) -> builtins.list[dict[str, Any]]:
        """A job's checkpoints with their evaluation's state and metrics; with `keep_best`,
        the best one is marked `best: true`."""
        from tmuxtrain.core.checkpoints import best_index

        cks = self.store.history.checkpoints(job.id)
        metric = job.spec.checkpoints.keep_best if job.spec.checkpoints else None
        best = best_index(cks, metric) if metric else None
        for i, c in enumerate(cks):
            c["best"] = i == best
        return cks

    def metrics(self, ref: str | int) -> dict[str, builtins.list[builtins.list[float | None]]]:
        return self.store.history.metric_history(self.store.resolve(ref))

    def events(
        self, after_id: int = 0, *, follow: bool = False, poll_s: float = 0.2
    ) -> Iterator[dict[str, Any]]:
        """Events after `after_id`, oldest first; with `follow`, wait for new ones forever."""
        last = after_id
        while True:
            batch = self.store.history.events(last)
            for ev in batch:
                last = ev["id"]
                yield ev
            if not follow:
                if len(batch) < 1000:
                    return
                continue
            if not batch:
                time.sleep(poll_s)

    def status(self) -> dict[str, Any]:
        from tmuxtrain.daemonctl import scheduler_info, scheduler_pid

        pid = scheduler_pid(self.settings.lock_path)
        info = scheduler_info(self.settings.lock_path) if pid is not None else {}
        counts = self.store.counts()
        return {
            "scheduler": {
                "running": pid is not None,
                "pid": pid if pid and pid > 0 else None,
                "log": self.settings.scheduler_log,
                "gpus": info.get("gpus", self.settings.gpus),
                "config": info.get("config", self.settings.config_path),
            },
            "counts": counts,
            "home": self.settings.home,
            "session": self.settings.session,
            "socket": self.settings.socket,
        }

    def gpus(self) -> builtins.list[dict[str, Any]]:
        """GPUs as `gpus --json`: memory, utilisation, temperature and the jobs on each."""
        try:
            return list(self.gpus_polled())
        finally:
            self.close_gpu_probe()

    def gpu_spec(self) -> str | None:
        """TMUXTRAIN_GPUS, or when it is unset the source the running scheduler uses (so
        `tmuxtrain gpus` and the dashboard show the GPUs jobs are placed on)."""
        if self.settings.gpus:
            return self.settings.gpus
        from tmuxtrain.daemonctl import scheduler_info

        spec = scheduler_info(self.settings.lock_path).get("gpus")
        return spec if isinstance(spec, str) else None

    def list_gpu_count(self) -> int:
        """How many GPUs the configured source sees (0 when there is no driver)."""
        return len(self.gpus())

    def gpu_source_note(self) -> str:
        """Where GPUs come from, in a line (e.g. why there are none)."""
        try:
            self.gpus_polled([])
            return self.gpu_probe_note()
        finally:
            self.close_gpu_probe()

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
            if job.state is JobState.RUNNING:
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

    def wait(
        self,
        refs: Iterable[str | int] | None = None,
        timeout: float | None = None,
        poll_s: float = 0.1,
    ) -> bool:
        """Block until the jobs (default: all) are finished. True when all succeeded."""
        ids = None if refs is None else [self.store.resolve(r) for r in refs]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            jobs = self.store.jobs(ids=ids) if ids is not None else self.store.jobs()
            if all(j.state in FINISHED for j in jobs):
                return all(j.state is JobState.SUCCEEDED for j in jobs)
            if deadline is not None and time.monotonic() > deadline:
                left = [str(j.id) for j in jobs if j.state not in FINISHED]
                raise TimeoutError(f"timed out; still unfinished: {', '.join(left)}")
            time.sleep(poll_s)

    def log_path(self, ref: str | int) -> str:
        return self.job(ref).log_path

    # ---- the scheduler ----------------------------------------------------------------

    def tmux(self) -> Any:
        from tmuxtrain.runners.tmux import Tmux

        return Tmux(self.settings.socket, self.settings.session)

    def nudge(self) -> bool:
        from tmuxtrain.daemonctl import nudge

        return nudge(self.settings)

    def scheduler_running(self) -> bool:
        from tmuxtrain.daemonctl import scheduler_pid

        return scheduler_pid(self.settings.lock_path) is not None

    def ensure_scheduler(self, timeout: float = 10.0) -> bool:
        """Nudge the scheduler, or start it when it is down. True when it was started."""
        if self.nudge() and self.scheduler_running():
            return False
        return self.up(timeout)

    def up(self, timeout: float = 10.0) -> bool:
        """Start the scheduler, detached (see `daemonctl.spawn`); True when it was started."""
        from tmuxtrain.daemonctl import gpu_source, spawn
        from tmuxtrain.jobfile import load_config

        if self.scheduler_running():
            return False
        load_config(self.settings.config_path)  # a bad config fails here, not in the daemon
        s = self.settings
        s.ensure_dirs()
        env = dict(os.environ)
        gpus = gpu_source(s.gpus)
        if gpus:
            env["TMUXTRAIN_GPUS"] = gpus
        if s.config_path:
            env["TMUXTRAIN_CONFIG"] = os.path.abspath(s.config_path)
        proc = spawn(s, env)
        deadline = time.monotonic() + timeout
        while not self.scheduler_running():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TmuxtrainError(f"the scheduler did not start; see {s.scheduler_log}")
            time.sleep(0.01)
        return True

    def down(self, timeout: float = 10.0) -> bool:
        """Stop the scheduler; running jobs keep running in their windows."""
        import signal

        from tmuxtrain.daemonctl import scheduler_pid

        pid = scheduler_pid(self.settings.lock_path)
        if pid is None:
            return False
        if pid > 0:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                return False
            self.nudge()
        deadline = time.monotonic() + timeout
        while self.scheduler_running():
            if time.monotonic() > deadline:
                raise TmuxtrainError(f"the scheduler (pid {pid}) did not stop within {timeout:g}s")
            time.sleep(0.02)
        return True

    def attach_argv(self, ref: str | int) -> builtins.list[str]:
        job = self.job(ref)
        deadline = time.monotonic() + 3
        while job.state is JobState.RUNNING and not job.tmux_window and time.monotonic() < deadline:
            time.sleep(0.02)  # claimed a moment ago: its window id is being recorded
            job = self.store.get(job.id)
        if not job.tmux_window:
            why = (
                "has not started yet" if job.state is JobState.PENDING else "has no window any more"
            )
            raise StateError(f"job {job.id} {why}; see tmuxtrain log {job.id}")
        return list(self.tmux().attach_argv(job.tmux_window))

    # ---- polling, for long-lived readers (added for the dashboard, tmuxtrain.ui) -------
    # A dashboard re-reads everything 1-2 times a second with up to thousands of jobs. These
    # let it skip the contract JSON (about half the cost of `list()`), skip re-reading when
    # nothing was committed, and keep one GPU probe open instead of starting NVML per call.

    _polled_probe: Any = None  # the GpuProbe gpus_polled() keeps open

    def list_jobs(
        self, states: Iterable[JobState] | None = None, ids: Iterable[int] | None = None
    ) -> Sequence[Job]:
        """Jobs (id order) as `core.model.Job` objects, without `list()`'s JSON conversion;
        only those states and/or ids when given."""
        return self.store.jobs(
            list(states) if states is not None else None, list(ids) if ids is not None else None
        )

    def data_version(self) -> int:
        """Changes whenever another process commits to the database (SQLite's `PRAGMA
        data_version`); equal values mean nothing changed but this client's own writes."""
        return self.store.data_version()

    def gpus_polled(self, running: Sequence[Job] | None = None) -> Sequence[dict[str, Any]]:
        """`gpus()` with the probe kept open between calls (NVML starts once), crediting
        `running` (read here when None); `close_gpu_probe()` releases the probe."""
        from tmuxtrain.gpus import open_probe
        from tmuxtrain.gpus.credit import probe_gpus

        jobs = running if running is not None else self.list_jobs([JobState.RUNNING])
        probe = self._polled_probe
        if probe is None:
            probe = open_probe(self.gpu_spec(), base_dir=os.getcwd())
            self._polled_probe = probe
        out = []
        for g in probe_gpus(probe, [*jobs], []):
            used = g.memory_used_mib
            if used is not None and g.memory_total_mib is not None:
                used = min(used, g.memory_total_mib)
            out.append(
                {
                    "index": g.index,
                    "uuid": g.uuid,
                    "name": g.name,
                    "memory_total_mib": g.memory_total_mib,
                    "memory_used_mib": used,
                    "memory_jobs_mib": sum(g.job_used_mib.values()) if g.job_used_mib else 0,
                    "utilization_pct": g.utilization_pct,
                    "temperature_c": g.temperature_c,
                    "simulated": g.simulated,
                    "jobs": [j.id for j in jobs if g.index in j.gpus],
                }
            )
        return out

    def gpu_probe_note(self) -> str:
        """The note of the probe `gpus_polled()` keeps open ('' before its first call)."""
        probe = self._polled_probe
        return probe.note if probe is not None else ""

    def close_gpu_probe(self) -> None:
        """Release the probe `gpus_polled()` kept open (nvmlShutdown on real GPUs)."""
        probe = self._polled_probe
        self._polled_probe = None
        if probe is not None:
            probe.close()
