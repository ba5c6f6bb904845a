"""Reading jobs, their metrics and events, the GPUs and the scheduler's status: what `ls`,
`show`, `metrics`, `events`, `gpus`, `status` and the dashboard show."""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tmuxtrain.api.base import ClientBase
from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.core.model import GpuInfo, Job, JobState
from tmuxtrain.store import job_json

# Every kind of event, named as hooks name them (`started`, not `running`).
EVENT_KINDS = (
    "submitted",  # queued (`add`, or a checkpoint's evaluation)
    "started",  # an attempt started
    "succeeded",
    "failed",
    "cancelled",
    "retrying",  # an attempt failed and another follows
    "preempting",  # a preemptible job is being stopped for a waiting one (Ctrl-C, TERM)
    "preempted",  # its attempt ended: back to pending, no retry used
    "requeued",  # claimed but never started: back to pending, same attempt
    "resubmitted",  # `retry`: queued again as the next attempt
    "held",
    "released",
    "edited",
    "note",  # something the scheduler had to say about a job
    "metric",  # new metric values
    "checkpoint",  # a checkpoint seen, its evaluation queued
    "learned",  # a waiting job's VRAM ask learned from its sweep (or dropped again)
)
# Kinds an older tmuxtrain wrote for the same events: read as today's names.
LEGACY_KINDS = {"running": "started", "pending": "retrying"}


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """Event kinds as given (comma-separated allowed), each a known one, or a
    TmuxtrainError saying which kinds exist."""
    import difflib

    out = []
    for item in kinds:
        for kind in filter(None, (k.strip() for k in item.split(","))):
            kind = LEGACY_KINDS.get(kind, kind)
            if kind not in EVENT_KINDS:
                near = difflib.get_close_matches(kind, EVENT_KINDS, 1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise TmuxtrainError(
                    f"--kind: unknown kind '{kind}'{hint}; kinds: {', '.join(EVENT_KINDS)}"
                )
            out.append(kind)
    return out


class Reading(ClientBase):
    # ---- reading ----------------------------------------------------------------------

    def list(self, state: str | None = None) -> builtins.list[dict[str, Any]]:
        jobs: builtins.list[dict[str, Any]] = json.loads(self.list_json(state))
        return jobs

    def list_json(self, state: str | None = None) -> str:
        """`list` as JSON text, built by SQLite: what `ls --json` prints."""
        return self.store.jobs_json(self._states(state), time.time())

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
        self,
        after_id: int | None = 0,
        *,
        follow: bool = False,
        job: str | int | None = None,
        kinds: Sequence[str] = (),
        poll_s: float = 0.2,
    ) -> Iterator[dict[str, Any]]:
        """Events after `after_id`, oldest first; only of `job`, or of these `kinds` (see
        EVENT_KINDS). With `follow`, wait for new ones forever; `after_id=None` starts at
        the end then (only what happens from now on, as `tail -f`), at the start otherwise."""
        job_id = None if job is None else self.store.resolve(job)
        wanted = check_kinds(kinds)
        asked = [*wanted, *(old for old, new in LEGACY_KINDS.items() if new in wanted)]
        history = self.store.history
        last = (history.last_event_id() if follow else 0) if after_id is None else after_id
        while True:
            batch = history.events(last, job_id=job_id, kinds=asked)
            for ev in batch:
                last = ev["id"]
                ev["kind"] = LEGACY_KINDS.get(ev["kind"], ev["kind"])
                yield ev
            if len(batch) == 1000:  # a full page: there is more at once
                continue
            if not follow:
                return
            if not batch:
                time.sleep(poll_s)

    def doctor(self) -> builtins.list[Any]:
        """The installation's checks (`doctor.Check`s): state folder, database, tmux,
        GPUs, scheduler; read-only, so it also runs on a damaged database."""
        from tmuxtrain.doctor import run_checks

        return run_checks(self.settings)

    def status(self, full: bool = False) -> dict[str, Any]:
        """The scheduler, job counts, where state lives; with `full`, also the Slurm
        cluster's partitions (`cluster()`: one `sinfo`) and each project's fair-share
        standing (`projects()`: the history read), which no dashboard refresh needs."""
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
            "cluster": self.cluster() if full else None,
            "projects": self.projects() if full else [],
        }

    def cluster(self) -> dict[str, Any] | None:
        """With `runner: slurm` in the config, the cluster's partitions from `sinfo`: name,
        whether it is the default, nodes (all, usable), GPUs (all, free on usable nodes);
        `error` says why there are none. None for a workstation's config."""
        try:
            if self.config().runner != "slurm":
                return None
        except TmuxtrainError:
            return None
        from dataclasses import asdict

        from tmuxtrain.runners.slurm_runner import cluster

        try:
            return {"partitions": [asdict(p) for p in cluster()], "error": None}
        except TmuxtrainError as e:
            return {"partitions": [], "error": str(e)}

    def projects(self, now: float | None = None) -> builtins.list[dict[str, Any]]:
        """Fair-share per project (`core.fairshare.report`): usage, share, standing, jobs;
        empty when the config cannot be read."""
        from tmuxtrain.core.fairshare import Usage, report

        try:
            config = self.config()
        except TmuxtrainError:
            return []
        t = time.time() if now is None else now
        half_life = config.fair_share_half_life_s
        usage = Usage(half_life)
        for _, project, started, finished, share in self.store.history.finished_usage(
            0, t - 40 * half_life
        ):
            usage.add(project, share, started, finished, t)
        running = self.store.jobs([JobState.RUNNING])
        pending = self.store.pending()
        return report(usage.of(running, t), running, pending, config.shares, half_life)

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
        usable = self._usable_indices()
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
                    # May tmuxtrain use it (config `gpus:`, the scheduler's CUDA_VISIBLE_DEVICES)?
                    "usable": usable is None or g.index in usable,
                    # Memory held by processes outside tmuxtrain, where the driver names them.
                    "others": [{"pid": p, "user": u or None, "mib": m} for p, u, m in g.others],
                    "memory_others_mib": _others_mib(g),
                }
            )
        return out

    def _usable_indices(self) -> set[int] | None:
        """The GPU indices tmuxtrain may use, or None for all (config `gpus:` and the
        CUDA_VISIBLE_DEVICES the scheduler runs with, or would run with)."""
        from tmuxtrain.daemonctl import scheduler_info

        try:
            allowed = self.config().gpus
        except TmuxtrainError:
            allowed = None
        info = scheduler_info(self.settings.lock_path)
        visible = (
            info.get("cuda_visible_devices") if info else os.environ.get("CUDA_VISIBLE_DEVICES")
        )
        if allowed is None and not isinstance(visible, str):
            return None
        keep = set(allowed) if allowed is not None else None
        if isinstance(visible, str):
            names = {v.strip() for v in visible.split(",") if v.strip()}
            shown = {int(n) for n in names if n.isdigit()}
            keep = shown if keep is None else keep & shown
        return keep

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

    def start_order(self, pending: Sequence[Job], running: Sequence[Job]) -> builtins.list[int]:
        """The pending jobs' ids in the order the scheduler will consider them, under the
        configured policy (`core.schedule.start_order`); config errors give id order."""
        from tmuxtrain.core.schedule import start_order

        try:
            config = self.config()
        except TmuxtrainError:
            return sorted(j.id for j in pending)
        usage = None
        if config.policy == "fair-share":  # usage moves slowly: read it every 10 s at most
            now = time.time()
            t, usage = self._usage_read
            if usage is None or now - t > 10:
                usage = {p["project"]: p["usage_gpu_s"] for p in self.projects(now)}
                self._usage_read = (now, usage)
        return start_order(pending, running, config, usage)

    _usage_read: tuple[float, dict[str, float] | None] = (0.0, None)


def _others_mib(g: GpuInfo) -> int | None:
    """Memory in use by anything but tmuxtrain's jobs (None when unknown)."""
    if g.memory_used_mib is None:
        return None
    return max(0, g.memory_used_mib - sum(g.job_used_mib.values()))
