"""The log tailer: new log bytes -> metrics, within a time budget per tick.

Only new bytes are read (from the offset stored with the job's metrics), parsed, thinned
into the history and stored. A job that ended is drained: its last output is parsed once it
is all in the log (at most OUTPUT_WAIT_S after the end), so the job could be finished at
once and the next one start; its final metrics follow a moment later.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tmuxtrain import logfile
from tmuxtrain.core.metrics import LogParser, Sample
from tmuxtrain.core.model import Job
from tmuxtrain.patterns import bounded_metrics
from tmuxtrain.runners.base import Runner
from tmuxtrain.runners.wrapper import LOST_MARK
from tmuxtrain.store import Store

log = logging.getLogger("tmuxtrain.daemon")
OUTPUT_WAIT_S = 2.0
LOG_BUDGET_S = 0.1  # log parsing per tick, so output floods never delay scheduling
LOG_CHUNK = 2**20
LOG_SKIP_BEHIND = 32 * 2**20
MAX_TAILS = 10_000  # parsers kept; more running jobs than this is not a workstation
FULL_BELOW = 64 * 1024  # bytes free on the logs' disk under which it counts as full
NO_SPACE = "log incomplete: no space left"
LOST_MARK_BYTES = LOST_MARK.encode()


@dataclass
class Tail:
    """Incremental log reading for one job: only new bytes are read and parsed."""

    parser: LogParser
    offset: int
    last_stored: dict[str, float] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)
    notes: int = 0  # the parser's notes already stored


class LogTailer:
    """Per-job parsers over the running jobs' logs, and the drain of ended ones."""

    def __init__(self, store: Store, runner: Runner) -> None:
        self.store = store
        self.runner = runner
        self.tails: dict[int, Tail] = {}
        self.draining: dict[int, tuple[Job, float]] = {}  # ended job -> (it, ended at)
        self.cursor = 0  # the job whose log parsing the last tick broke off at
        self.behind = False
        self.saw_full: set[int] = set()  # running jobs whose log's disk was full meanwhile
        self.disk_full = False  # at the last look (said once in the log per episode)
        self.holes: set[int] = set()  # jobs whose log has a hole (said in the log)
        self.unnoted: set[int] = set()  # of those, the ones whose note is not stored yet

    def tail(self, running: Sequence[Job], now: float) -> None:
        """Parse new log output within LOG_BUDGET_S: jobs take turns, and the loop does not
        sleep while some log is behind."""
        deadline = time.monotonic() + LOG_BUDGET_S
        self._look_at_disk(running)
        self._note(now)
        order = sorted(running, key=lambda j: (j.id <= self.cursor, j.id))
        self.behind = False
        for job in order:
            if not self.read(job, now, deadline):
                self.cursor = job.id
                self.behind = True
                return
        self.cursor = 0

    def _look_at_disk(self, running: Sequence[Job]) -> None:
        """Whether the disk of the logs is full (one statvfs a tick): the log pipe of a job
        that printed meanwhile lost output (see `wrapper.pipe_command`)."""
        path = next((j.log_path for j in running if j.log_path), "")
        if not path:
            return
        try:
            st = os.statvfs(os.path.dirname(path))
        except OSError:
            return
        full = st.f_bavail * st.f_frsize < FULL_BELOW
        if full:
            self.saw_full.update(j.id for j in running)
        if full != self.disk_full:
            self.disk_full = full
            if full:
                log.error("no space left for the jobs' logs in %s", os.path.dirname(path))
            else:
                log.info("space for the jobs' logs again")

    def _lost(self, job: Job) -> None:
        """The job's log has a hole: said once in the log, noted on the job (`_note`)."""
        if job.id not in self.holes:
            self.holes.add(job.id)
            self.unnoted.add(job.id)
            log.warning("job %s: %s", job.id, NO_SPACE)

    def _note(self, now: float) -> None:
        """Store the notes of holes found; a write that fails (the disk is still full) is
        tried again next tick."""
        for job_id in sorted(self.unnoted):
            self.store.add_notes(job_id, [NO_SPACE], now)
            self.unnoted.discard(job_id)

    def ended(self, job: Job, now: float) -> None:
        """The attempt of `job` ended: drain its log (when it has one), then forget it."""
        if job.tmux_pane or job.log_path:
            self.draining[job.id] = (job, now)
        else:
            self.tails.pop(job.id, None)
            self.saw_full.discard(job.id)
            self.holes.discard(job.id)

    def drain(self, now: float) -> list[int]:
        """Read the last output of ended jobs whose log is complete (or waited long
        enough); the ids drained."""
        done = []
        for job_id, (job, since) in list(self.draining.items()):
            complete = self.runner.output_complete(job)
            if now - since < OUTPUT_WAIT_S and not complete:
                continue
            self.read(job, now)
            if not complete and job_id in self.saw_full:  # its last output never came
                self._lost(job)
            self._note(now)
            self._finish(job, now)
            del self.draining[job_id]  # only now: a failed write above is tried again
            self.saw_full.discard(job_id)
            self.holes.discard(job_id)
            done.append(job_id)
        return done

    def _finish(self, job: Job, now: float) -> None:
        """The job's output is all read: its last values go into the history unthinned
        (so `metrics ID` ends where `show ID` does) and its ETA is dropped."""
        tail = self.tails.pop(job.id, None)
        if tail is None:
            return
        final = [(s.name, s.value, s.step) for s in tail.parser.finish(now)]
        self.store.add_metrics(job.id, final, dict(tail.parser.latest), now, tail.offset)

    @staticmethod
    def _thin(
        tail: Tail, samples: list[Sample], age: float, now: float
    ) -> list[tuple[str, float, float | None]]:
        """Which samples go into the history: all of a metric's first 1,000, then at most one
        per `age / 1000` seconds, so a week-long run stays a few MB; the newest value is
        always in the job's latest metrics."""
        keep = []
        for s in samples:
            count = tail.stored.get(s.name, 0)
            due = now - tail.last_stored.get(s.name, -1e18) >= age / 1000
            if count < 1000 or due:
                keep.append((s.name, s.value, s.step))
                tail.stored[s.name] = count + 1
                tail.last_stored[s.name] = now
        return keep

    def read(self, job: Job, now: float, deadline: float = math.inf) -> bool:
        """Feed the job's new log bytes to its parser; False when the deadline came first.

        A log more than LOG_SKIP_BEHIND behind is skipped to its newest part: metrics are
        about now, and the raw log stays whole on disk.
        """
        tail = self.tails.get(job.id)
        if tail is None:
            if len(self.tails) >= MAX_TAILS:
                self.tails.clear()
            parser = LogParser(bounded_metrics(job.spec.metrics) or None)
            tail = Tail(parser, self.store.history.log_offset(job.id))
            self.tails[job.id] = tail
        size = logfile.size(job.log_path)
        if size <= tail.offset:
            return True
        if size - tail.offset > LOG_SKIP_BEHIND:
            log.warning("job %s printed faster than it can be parsed: skipping ahead", job.id)
            tail.offset = size - LOG_CHUNK
        samples: list[Sample] = []
        done = True
        while tail.offset < size:
            if time.monotonic() > deadline:
                done = False
                break
            data = logfile.read(job.log_path, tail.offset, min(size, tail.offset + LOG_CHUNK))
            if not data:
                break
            tail.offset += len(data)
            samples += tail.parser.feed(data, now)
            if LOST_MARK_BYTES in data:
                self._lost(job)
        keep = self._thin(tail, samples, now - (job.started_at or now), now)
        latest = dict(tail.parser.latest)
        if keep or latest != job.metrics:
            self.store.add_metrics(job.id, keep, latest, now, tail.offset)
            job.metrics = latest
        notes = tail.parser.notes
        if len(notes) > tail.notes:  # a pattern of the job's was disabled
            tail.notes = len(notes)
            log.warning("job %s: %s", job.id, "; ".join(notes))
            self.store.add_notes(job.id, notes, now)
        return done
