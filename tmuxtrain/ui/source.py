"""Where the dashboard's data comes from: one `DataSource` per app, called from worker threads.

The sqlite connection inside a `Client` must not be used by two threads at once, so reads go
through one client under one lock, and actions (cancel, retry, add, start the scheduler; some
take seconds) through a second client under another lock, so they never stall a refresh.
A refresh re-reads the jobs only when another connection committed since the last one
(`data_version`), which our own actions do too, since they use the second connection.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tmuxtrain import logfile
from tmuxtrain.api import Client
from tmuxtrain.core.model import Job, JobState

T = TypeVar("T")

FULL_READ_S = 30.0  # re-read finished jobs too this often (a window trimmed, say)
LOG_TAIL_BYTES = 64 * 1024  # what the live log pane starts from
LOG_MAX_STEP = 512 * 1024  # more new bytes than this in one refresh: jump to the tail
CLUSTER_S = 5.0  # ask Slurm for its partitions at most this often (one `sinfo`)
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)|[@-Z\\^_])")


def clean_log(text: str) -> list[str]:
    """Raw terminal output -> lines as they last looked: colours dropped, and a progress bar
    redrawn with `\\r` kept as its last drawing only."""
    text = _ANSI.sub("", text.replace("\r\n", "\n"))
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            parts = [p for p in line.split("\r") if p]
            line = parts[-1] if parts else ""
        lines.append("".join(c if c.isprintable() or c == "\t" else "?" for c in line))
    return lines


@dataclass
class _LogPos:
    """How far the selected job's log was read; the decoder holds a split UTF-8 character."""

    job_id: int
    path: str
    offset: int
    decoder: codecs.IncrementalDecoder


@dataclass
class LogChunk:
    """New raw text of the selected job's log (may end mid-line); `reset`: replace, not append."""

    job_id: int
    text: str
    reset: bool


@dataclass
class Snapshot:
    """One refresh's reading. `jobs` is None when nothing was committed since the last one."""

    jobs: Sequence[Job] | None
    gpus: Sequence[dict[str, Any]]
    gpu_note: str
    scheduler: dict[str, Any]
    counts: dict[str, int]
    order: dict[int, int] | None = None  # pending job -> place in the start order, when read
    history: tuple[int, dict[str, list[list[float | None]]]] | None = None
    log: LogChunk | None = None
    checkpoints: tuple[int, list[dict[str, Any]]] | None = None  # the selected job's
    errors: list[str] = field(default_factory=list)
    cluster: dict[str, Any] | None = None  # Slurm's partitions (runner: slurm)


class DataSource:
    """Reads for the refresh worker, and runs actions; thread-safe by its two locks."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._read_lock = threading.Lock()
        self._act_lock = threading.Lock()
        self._actor: Client | None = None
        self._version: int | None = None
        self._full_at: float | None = None
        self._active: Sequence[Job] = ()
        self._finished: dict[int, Job] = {}
        self._by_id: dict[int, Job] = {}
        self._history_key: tuple[int, Any] | None = None
        self._checkpoints_key: tuple[int, int] | None = None
        self._log: _LogPos | None = None
        self._cluster: tuple[float, dict[str, Any] | None] | None = None

    # ---- reading (the refresh worker) -------------------------------------------------

    def fetch(
        self, selected: int | None = None, force: bool = False, fresh: bool = False
    ) -> Snapshot:
        """Everything one refresh shows. `selected` also brings its metric history (when it
        changed) and the new part of its log; `fresh` reads both from scratch (the screen
        dropped what it had). `force` re-reads every job even when nothing was committed."""
        with self._read_lock:
            c = self.client
            version = c.data_version()  # read first: a commit during the reads is seen next time
            status = c.status()
            jobs = self._read_jobs(version, status["counts"], force)
            running = [j for j in self._active if j.state is JobState.RUNNING]
            try:
                gpus = c.gpus_polled(running)
                note = c.gpu_probe_note()
            except Exception as e:  # a probe failure is shown, never fatal to the dashboard
                gpus, note = [], f"GPU probe failed: {e}"
            snap = Snapshot(jobs, gpus, note, status["scheduler"], status["counts"])
            snap.cluster = self._read_cluster()
            if jobs is not None:
                pending = [j for j in self._active if j.state is JobState.PENDING]
                ids = c.start_order(pending, running)
                snap.order = {job_id: n for n, job_id in enumerate(ids)}
            if fresh:
                self._history_key = None
                self._checkpoints_key = None
                self._log = None
            if selected is not None:
                job = self._by_id.get(selected)
                if job is not None:
                    snap.history = self._history(job)
                    snap.log = self._read_log(job)
                    snap.checkpoints = self._checkpoints(job, version)
            return snap

    def _read_cluster(self) -> dict[str, Any] | None:
        """The Slurm cluster's partitions, asked at most every CLUSTER_S (one `sinfo`)."""
        now = time.monotonic()
        if self._cluster is None or now - self._cluster[0] >= CLUSTER_S:
            try:
                self._cluster = (now, self.client.cluster())
            except Exception as e:  # shown, never fatal to the dashboard
                self._cluster = (now, {"partitions": [], "error": str(e)})
        return self._cluster[1]

    def _read_jobs(self, version: int, counts: dict[str, int], force: bool) -> Sequence[Job] | None:
        """All jobs, or None when nothing was committed since the last read.

        Only pending and running jobs are re-read on each change: finished jobs do not change
        (a retry makes them pending again), so they are kept, and read once when they leave
        the active set. The per-state counts check that nothing slipped past (a job added
        and cancelled between two refreshes); a full read also happens every FULL_READ_S.
        """
        c = self.client
        full = force or self._full_at is None or time.monotonic() - self._full_at > FULL_READ_S
        if not full and version == self._version:
            return None
        self._version = version
        if full:
            everything = c.list_jobs()
            self._finished = {j.id: j for j in everything if j.state.finished}
            self._active = [j for j in everything if not j.state.finished]
            self._full_at = time.monotonic()
        else:
            active = c.list_jobs([JobState.PENDING, JobState.RUNNING])
            now_active = {j.id for j in active}
            gone = [i for i in (j.id for j in self._active) if i not in now_active]
            if gone:
                for j in c.list_jobs(ids=gone):
                    if j.state.finished:
                        self._finished[j.id] = j
            for i in now_active:
                self._finished.pop(i, None)
            self._active = active
            seen = {s.value: 0 for s in JobState}
            for j in self._finished.values():
                seen[j.state.value] += 1
            for j in active:
                seen[j.state.value] += 1
            if any(seen[k] != counts.get(k, 0) for k in seen):
                return self._read_jobs(version, counts, True)
        jobs = [*self._active, *self._finished.values()]
        self._by_id = {j.id: j for j in jobs}
        return jobs

    def _history(self, job: Job) -> tuple[int, dict[str, list[list[float | None]]]] | None:
        key = (job.id, (job.metrics, job.attempt, job.state))
        if key == self._history_key:
            return None
        self._history_key = key
        return job.id, self.client.metrics(job.id)

    def _checkpoints(self, job: Job, version: int) -> tuple[int, list[dict[str, Any]]] | None:
        """The job's checkpoints, read again only when something was committed since (an
        evaluation ended, a checkpoint was found)."""
        if job.spec.checkpoints is None or self._checkpoints_key == (job.id, version):
            return None
        self._checkpoints_key = (job.id, version)
        return job.id, self.client.checkpoints(job)

    def _read_log(self, job: Job) -> LogChunk | None:
        path = job.log_path
        if not path:
            return None
        size = logfile.size(path)
        known = self._log
        if (
            known is not None
            and (known.job_id, known.path) == (job.id, path)
            and known.offset <= size <= known.offset + LOG_MAX_STEP
        ):
            if size == known.offset:
                return None
            start, reset, decoder = known.offset, False, known.decoder
        else:  # another job, a truncated file, or too much at once: start from the tail
            start, reset = max(0, size - LOG_TAIL_BYTES), True
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        data = logfile.read(path, start, size) if size > start else b""
        self._log = _LogPos(job.id, path, start + len(data), decoder)
        if reset and start > 0:  # a tail starts mid-line: drop that partial line
            data = data[data.find(b"\n") + 1 :] if b"\n" in data else b""
        return LogChunk(job.id, decoder.decode(data), reset)

    def read_whole_log(self, path: str, start: int = 0, limit: int = 8 * 2**20) -> tuple[str, int]:
        """From `start` to the end (at most `limit` bytes, the newest ones): (text, new end)."""
        size = logfile.size(path)
        if size < start:
            start = 0
        begin = max(start, size - limit)
        data = logfile.read(path, begin, size)
        cut = data.rfind(b"\n") + 1
        return data[:cut].decode("utf-8", "replace"), begin + cut

    # ---- actions (action workers) -----------------------------------------------------

    def act(self, fn: Callable[[Client], T]) -> T:
        """Run `fn` with the action client (made on first use), one action at a time."""
        with self._act_lock:
            if self._actor is None:
                self._actor = Client(self.client.settings)
            return fn(self._actor)

    def close(self) -> None:
        with self._read_lock:
            self.client.close_gpu_probe()
        with self._act_lock:
            if self._actor is not None:
                self._actor.close()
                self._actor = None
