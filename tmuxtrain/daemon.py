"""The scheduler loop: tick(now) = reconcile -> timeouts/cancels -> probe -> decide -> launch
-> tail logs. Sleeping happens in one place (`Scheduler.run`), which wakes early on a nudge
(a byte in the fifo from `add`, `cancel`, a job's wrapper, or the tmux control connection
when a pane dies).

Run it with `python -m tmuxtrain.daemon`; `tmuxtrain up` does that in a tmux window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import glob
import json
import logging
import math
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import psutil

from tmuxtrain.core import reconcile as rec
from tmuxtrain.core.checkpoints import Seen, eval_spec, settle
from tmuxtrain.core.metrics import LogParser, Sample
from tmuxtrain.core.model import FINISHED, Config, GpuInfo, Job, JobState
from tmuxtrain.core.schedule import decide
from tmuxtrain.core.spec import HOOK_FIELDS, fill
from tmuxtrain.core.units import format_duration
from tmuxtrain.gpus import GpuProbe, open_probe
from tmuxtrain.jobenv import job_environment
from tmuxtrain.jobfile import load_config
from tmuxtrain.runners.tmux import (
    Starting,
    TmuxError,
    TmuxRunner,
    exit_banner,
    read_status,
    wrapper_script,
)
from tmuxtrain.settings import Settings, from_env
from tmuxtrain.store import Store

log = logging.getLogger("tmuxtrain.daemon")
FULL_RECONCILE_S = 5.0  # a full pane/process check even when nothing nudged us
OUTPUT_WAIT_S = 2.0  # how long an ended job's last output may take to reach its log
CONNECT_RETRY_S = 5.0  # how often to retry the tmux control connection when it is down
CHECKPOINT_AFTER_S = 10.0  # keep watching a finished job's checkpoints this long
LOG_BUDGET_S = 0.1  # log parsing per tick, so output floods never delay scheduling
LOG_CHUNK = 2**20
LOG_SKIP_BEHIND = 32 * 2**20
HOOK_EVENTS = ("started", "succeeded", "failed", "retrying")


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_start(pid: int) -> float | None:
    """Process start time as psutil's create_time gives it (boot time + /proc start ticks),
    or None when it is gone or a zombie. One read of /proc/PID/stat: this runs for every
    job that starts, and psutil.Process reads it three times."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # state ppid pgrp ... starttime is 20th
    if fields[0] == b"Z":
        return None
    return psutil.boot_time() + int(fields[19]) / _CLOCK_TICKS


def is_alive(job: Job) -> bool:
    if job.pid is None:
        return False
    start = process_start(job.pid)
    return start is not None and (job.pid_start is None or abs(start - job.pid_start) < 1.0)


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return []


def session_members(sid: int) -> set[int]:
    """Live pids in the session `sid`: a pane's process starts its own session, so this finds
    the job's processes even after their parent exited and they were reparented."""
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()  # state ppid pgrp session ...
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
            out.add(int(name))
    return out


def job_processes(job: Job) -> set[int]:
    """The job's wrapper, its descendants and anything left in its session."""
    if job.pid is None:
        return set()
    pids = {p.pid for p in process_tree(job.pid)} if is_alive(job) else set()
    return pids | session_members(job.pid)


def signal_pids(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def free_port(taken: set[int]) -> int:
    """A TCP port nobody listens on, and not given to another running job."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise RuntimeError("no free port")


def ensure_fifo(path: str) -> None:
    try:
        if stat.S_ISFIFO(os.stat(path).st_mode):
            return
        os.unlink(path)
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileExistsError):
        os.mkfifo(path, 0o600)


def nudge(settings: Settings) -> bool:
    """Wake the scheduler now. Never blocks; False when no scheduler listens."""
    try:
        fd = os.open(settings.nudge_path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        os.write(fd, b"x")
    except OSError as e:
        return e.errno == errno.EAGAIN  # full: it has plenty of wake-ups pending
    finally:
        os.close(fd)
    return True


def probe_gpus(probe: GpuProbe, running: list[Job], previous: list[GpuInfo]) -> list[GpuInfo]:
    """One GPU snapshot with each GPU's memory credited to the jobs that hold it.

    Simulated GPUs are told what running jobs hold (declared vram, or the whole GPU for an
    exclusive job); on NVML the per-process memory is matched to jobs' process trees.
    """
    if probe.kind == "fake":
        totals = {g.index: g.memory_total_mib or 0 for g in previous}
        if not totals and any(j.vram_mib is None for j in running):
            totals = {g.index: g.memory_total_mib or 0 for g in probe.probe()}
        held: dict[int, dict[int, int]] = {}
        for j in running:
            for index in j.gpus:
                held.setdefault(index, {})[j.id] = (
                    j.vram_mib if j.vram_mib is not None else totals.get(index, 0)
                )
        return probe.probe(held)
    snapshot = probe.probe()
    if not running or not any(g.processes for g in snapshot):
        return snapshot
    owner: dict[int, int] = {}
    for j in running:
        if j.pid:
            for p in process_tree(j.pid):
                owner[p.pid] = j.id
    out = []
    for g in snapshot:
        used: dict[int, int] = {}
        for pid, mib in g.processes:
            if pid in owner and mib is not None:
                used[owner[pid]] = used.get(owner[pid], 0) + mib
        out.append(dataclasses.replace(g, job_used_mib=used) if used else g)
    return out


@dataclass
class Tail:
    """Incremental log reading for one job: only new bytes are read and parsed."""

    parser: LogParser
    offset: int
    last_stored: dict[str, float] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)


class Scheduler:
    """One scheduler per TMUXTRAIN_HOME (held by a lock while `run` runs)."""

    def __init__(
        self,
        settings: Settings,
        *,
        config: Config | None = None,
        store: Store | None = None,
        runner: TmuxRunner | None = None,
    ) -> None:
        self.settings = settings
        settings.ensure_dirs()
        self.config = config or load_config(settings.config_path)
        self.store = store or Store(settings.db_path)
        self.runner = runner or TmuxRunner(settings.socket, settings.session)
        self.probe = open_probe(settings.gpus, base_dir=os.getcwd())
        self.tails: dict[int, Tail] = {}
        self.hooks: list[subprocess.Popen[bytes]] = []
        self.last_full = 0.0
        self.dirty = True  # something may have changed: do a full reconcile
        self.gpus: list[GpuInfo] = []
        self.ck_known: dict[int, set[str]] = {}
        self.ck_seen: dict[int, dict[str, Seen]] = {}
        self.stopping = False
        self.last_key: tuple[object, ...] | None = None
        self.seen_dead: dict[str, float] = {}
        self.killed: set[int] = set()  # jobs this scheduler sent SIGKILL to
        self.tail_cursor = 0  # the job whose log parsing the last tick broke off at
        self.logs_behind = False  # pane id -> first seen dead without status
        self.next_due = 0.0
        self.output_wait: dict[int, float] = {}  # ended job -> when it was first seen ended
        self.draining: dict[int, tuple[Job, float]] = {}  # finished job -> (it, finished at)
        # The pending jobs as last read, and (data_version, our changes) then: our own
        # writes that leave them as they are say so (`_pending_kept`); any other write,
        # ours or another process's, makes the next decision read them again.
        self.pending: list[Job] = []
        self.pending_stamp: tuple[int, int] | None = None
        # Claimed jobs whose windows tmux is making, in the order sent (see `_settle`).
        self.launching: deque[tuple[Job, Starting]] = deque()
        self.trim_due = False  # windows were kept for their last output: trim again
        self.script_sizes: dict[int, int] = {}  # running job -> its wrapper's size as written
        self.undrained_retry = False  # a retry waits for its last attempt's output

    # ---- one step ---------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """One scheduling step at time `now` (POSIX seconds).

        The queue is only re-decided when something could have changed it: another process
        wrote to the store, a job ended, the GPU snapshot moved, we were nudged, or a retry
        backoff or cancel step fell due. An idle scheduler with a long queue stays cheap.
        """
        dirty, self.dirty = self.dirty, False  # steps below may set it again for next tick
        if self.launching:
            self._settle()
        self.runner.pump()  # answers nobody waits for (closed windows) are read and dropped
        if dirty:  # a launch may come: tmux answers while we reconcile
            self.runner.ask_inherited_names()
        try:
            self._tick(now, dirty)
        finally:
            self.runner.drop_inherited_names()

    def _tick(self, now: float, dirty: bool) -> None:
        running = self.store.jobs([JobState.RUNNING])
        if running:
            periodic = now - self.last_full >= FULL_RECONCILE_S
            if self._reconcile(running, now, full=periodic, nudged=dirty):
                running = self.store.jobs([JobState.RUNNING])
            self._escalate(running, now)
        self.gpus = self._probe(running)
        key = (self.store.data_version(), tuple(self.gpus))
        if dirty or self.dirty or key != self.last_key or now >= self.next_due:
            self.dirty = False
            pending = self._pending_jobs(key[0])
            if pending:
                try:
                    self._schedule(pending + running, now)
                except BaseException:
                    self.pending_stamp = None  # a claim may not be out of the cache
                    raise
                running = self.store.jobs([JobState.RUNNING])
            self.next_due = self._next_due(pending + running)
            self.last_key = key
        self._tail_logs(running, now)
        self._drain(now)
        self._watch_checkpoints(now)
        self._reap_hooks()

    def _pending_jobs(self, version: int) -> list[Job]:
        """The pending jobs; read again only after a write `_pending_kept` did not cover
        (a queue of thousands is not re-read for every job that ends)."""
        stamp = (version, self.store.changes())
        if stamp != self.pending_stamp:
            self.pending = self.store.jobs([JobState.PENDING])
            self.pending_stamp = stamp
        return self.pending

    @contextlib.contextmanager
    def _pending_kept(self) -> Iterator[None]:
        """Around our own writes that leave the pending jobs as `self.pending` has them
        (or that fix it themselves): the cache stays valid if it was before."""
        stamp = self.pending_stamp
        valid = stamp is not None and stamp[1] == self.store.changes()
        try:
            yield
        finally:
            if valid and stamp is not None:
                self.pending_stamp = (stamp[0], self.store.changes())

    def _next_due(self, jobs: list[Job]) -> float:
        """When the next time-driven step falls due: a retry backoff ending, a cancel
        escalating, a timeout expiring (inf when nothing is waiting on the clock)."""
        grace = self.config.cancel_grace_s
        due = [j.not_before for j in jobs if j.not_before is not None]
        for j in jobs:
            if j.cancel_requested_at is not None:
                due += [j.cancel_requested_at + grace / 2, j.cancel_requested_at + grace]
            if j.spec.timeout_s is not None and j.started_at is not None:
                due.append(j.started_at + j.spec.timeout_s)
        return min(due, default=math.inf)

    def _probe(self, running: list[Job]) -> list[GpuInfo]:
        try:
            return probe_gpus(self.probe, running, self.gpus)
        except Exception as e:  # a probe failure must never stop the loop
            log.warning("GPU probe failed: %s", e)
            return self.gpus

    def _exit_codes(self, running: list[Job]) -> dict[int, int]:
        """Statuses the wrappers recorded at the end of their scripts: a script's size is
        looked at (one stat), its end read only once it grew past what was written."""
        codes = {}
        for j in running:
            path = self.settings.script_path(j.id)
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            if (
                size != self.script_sizes.get(j.id)
                and (code := read_status(path, j.attempt)) is not None
            ):
                codes[j.id] = code
        return codes

    def _reconcile(self, running: list[Job], now: float, full: bool, nudged: bool) -> bool:
        """Finish the running jobs that ended; True when any did. A nudge that the recorded
        statuses explain needs no look at tmux and the process table."""
        codes = self._exit_codes(running)
        if nudged and codes:
            full = False
        if not full and not codes and not nudged:
            return False
        if not full and not codes:
            full = True  # a nudge with no status behind it: a job may have been killed
        if self.launching and self._settle(wait_all=full, ended=codes):
            running = self.store.jobs([JobState.RUNNING])  # with the windows just recorded
        if full:
            panes = self.runner.panes()
            alive = {j.id: is_alive(j) for j in running if j.id not in codes}
            self.last_full = now
            codes = self._exit_codes(running)  # a wrapper may have finished since
            settled = frozenset(p for p, t in self.seen_dead.items() if now - t >= 1.0)
            ended = rec.reconcile(running, panes, codes, alive, settled)
            self.seen_dead = {p: self.seen_dead.get(p, now) for p in rec.dead_without_status(panes)}
            if self.seen_dead:  # look again in a second: tmux is about to have the status
                self.last_full = now - FULL_RECONCILE_S + 1.0
        else:
            ended = [rec.Ended(i, c) for i, c in codes.items()]
        by_id = {j.id: j for j in running}
        finished = False
        for e in ended:
            job = by_id[e.job_id]
            if (
                e.exit_code not in (0, None)
                and job.spec.retry_on
                and not self._output_read(job, now)
            ):
                continue  # retry_on judges the last lines, still on their way: next tick
            finished = True
            code, note = e.exit_code, e.note
            if code is None and e.job_id in self.killed:  # tmux lost it, but we know
                code, note = 128 + signal.SIGKILL, "killed with SIGKILL after the grace period"
            self.killed.discard(e.job_id)
            self._finish(job, code, note, now)
        return finished

    def _output_read(self, job: Job, now: float) -> bool:
        """Has an ended job's last output reached its log (see `_log_complete`)? A job whose
        failure `retry_on` judges waits for that, at most OUTPUT_WAIT_S."""
        first = self.output_wait.setdefault(job.id, now)
        if self._log_complete(job) or now - first >= OUTPUT_WAIT_S:
            del self.output_wait[job.id]
            return True
        return False  # looked at again in a moment (next_wake)

    def _log_complete(self, job: Job) -> bool:
        """The wrapper prints its exit banner last, and a terminal keeps order: once the
        banner is in the log, so is everything the job printed. Until then its last lines
        (a final metric, the error `retry_on` looks for) may still be on their way through
        tmux and the log pipe."""
        banner = exit_banner(job.id, job.attempt).encode()
        try:
            with open(job.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(job.log_path) - 1024))
                return banner in f.read()
        except OSError:
            return False  # not even created yet: the log pipe's `cat` is still starting

    def _drain(self, now: float) -> None:
        """Parse the last output of jobs that ended, once it is all in the log (at most
        OUTPUT_WAIT_S after they ended): the job was finished at once, so the next one
        could start; its final metrics follow a moment later."""
        for job_id, (job, since) in list(self.draining.items()):
            if now - since < OUTPUT_WAIT_S and not self._log_complete(job):
                continue
            del self.draining[job_id]
            self._read_log(job, now)
            self.tails.pop(job_id, None)
            if self.undrained_retry:
                self.undrained_retry = False
                self.dirty = True  # the retry that waited for this may start now

    def _finish(self, job: Job, code: int | None, note: str, now: float) -> None:
        log.info("job %s attempt %s ended: exit code %s %s", job.id, job.attempt, code, note)
        tail = ""
        if code not in (0, None) and job.spec.retry_on:
            tail = self._log_tail(job)
        out = rec.outcome(job, code, tail, now, self.config.retry_backoff_s, note=note)
        self._read_log(job, now)  # the last output, before the outcome is recorded
        fields: dict[str, object] = {"exit_code": code, "reason": out.reason}
        if out.state is JobState.PENDING:
            fields.update(
                attempt=job.attempt + 1,
                not_before=out.not_before,
                gpus=(),
                cancel_requested_at=None,
                cancel_reason="",
                pid=None,
                pid_start=None,
                started_at=None,
                master_port=None,
            )
        else:
            fields["finished_at"] = now
        event = {"name": job.name, "exit_code": code, "attempt": job.attempt, "reason": out.reason}
        # A job that ends for good leaves the pending jobs as they were; a retry is one.
        kept = (
            self._pending_kept() if out.state is not JobState.PENDING else contextlib.nullcontext()
        )
        with kept:
            ended = self.store.transition(
                job.id, out.state, now, expect=[JobState.RUNNING], event=event, **fields
            )
            if ended:
                self.store.record_attempt(job, now, code, out.reason)
        if ended:
            hook = "retrying" if out.state is JobState.PENDING else out.state.value
            self._hook(job, hook, code)
        if job.cancel_requested_at is not None and job.pid:
            # A cancelled job leaves nothing behind, even processes its wrapper outlived.
            signal_pids(session_members(job.pid) - {job.pid}, signal.SIGKILL)
        self._forget_run_files(job)
        if job.tmux_pane:
            self.draining[job.id] = (job, now)  # its last output may be on its way
        else:
            self.tails.pop(job.id, None)
        self.dirty = True

    def _forget_run_files(self, job: Job) -> None:
        """An ended attempt's wrapper (its status at its end) is read: remove it, so the
        folder holds only running jobs' wrappers. A wrapper still waiting for its window to
        close keeps its open file."""
        self.script_sizes.pop(job.id, None)
        with contextlib.suppress(OSError):
            os.unlink(self.settings.script_path(job.id))

    def _log_tail(self, job: Job) -> str:
        text = ""
        with contextlib.suppress(OSError), open(job.log_path, "rb") as f:
            f.seek(max(0, os.path.getsize(job.log_path) - 65536))
            text = f.read().decode("utf-8", "replace")
        if job.tmux_pane:  # pipe-pane may lag the exit by a few ms: the pane has it all
            with contextlib.suppress(TmuxError):
                text += "\n" + self.runner.capture(job.tmux_pane)
        return text

    def _escalate(self, running: list[Job], now: float) -> None:
        for job in running:
            if rec.timed_out(job, now):
                reason = f"timeout after {format_duration(job.spec.timeout_s or 0)}"
                self.store.update(job.id, cancel_requested_at=now, cancel_reason=reason)
                if job.tmux_pane:
                    self.runner.interrupt(job.tmux_pane)
                continue
            step = rec.escalation(job, now, self.config.cancel_grace_s)
            if step == "term" and job.pid:  # the wrapper itself stays to record the status
                signal_pids(job_processes(job) - {job.pid}, signal.SIGTERM)
            elif step == "kill" and job.pid:
                signal_pids(job_processes(job), signal.SIGKILL)
                self.killed.add(job.id)

    def _schedule(self, active: list[Job], now: float) -> None:
        deps = {d for j in active for d in j.after_ids} - {j.id for j in active}
        dep_states = {j.id: (j.state, j.name) for j in self.store.jobs(ids=deps)} if deps else {}
        decisions = decide(active, self.gpus, self.config, now, dep_states)
        for job_id, why in decisions.cancels:
            self.store.cancel_pending(job_id, why, now)
        by_id = {j.id: j for j in active}
        # Only reasons that changed since the jobs were read: most stay as they were.
        changed = {i: r for i, r in decisions.reasons.items() if by_id[i].reason != r}
        with self._pending_kept():
            self.store.set_reasons(changed)
            for i, r in changed.items():
                by_id[i].reason = r  # the cached pending job too
        ports = {j.master_port for j in active if j.master_port}
        inherited = self.runner.inherited_names() if decisions.launches else None
        # Each window is sent to tmux as soon as its job is claimed; its answer is read
        # when it comes (`_settle`), so tmux makes windows while the scheduler goes on.
        claimed = set()
        for launch in decisions.launches:
            job = by_id[launch.job_id]
            if job.id in self.draining:
                # A retry: closing the last attempt's window now would lose its last
                # lines (the error retry_on judged). Next tick, once they are in the log.
                self.undrained_retry = True
                continue
            claimed.add(job.id)
            try:
                started = self._start(job, launch.gpus, now, ports, inherited)
            except (TmuxError, OSError) as e:
                self._could_not_start(job, e, now)
                continue
            if started is not None:
                self.launching.append((job, started))
        if claimed:
            self.pending = [j for j in self.pending if j.id not in claimed]

    def _settle(self, *, wait_all: bool = False, ended: Collection[int] = ()) -> bool:
        """Record the windows of launched jobs whose answers came; wait for all of them
        (`wait_all`, before a full reconcile), or up to the last job in `ended` (it ran, so
        its window exists and must be known before the job is finished). True when any
        was recorded."""
        upto = len(self.launching) if wait_all else 0
        if not wait_all and ended:
            for k, (job, _) in enumerate(self.launching):
                if job.id in ended:
                    upto = k + 1
        settled = False
        while self.launching:
            job, started = self.launching[0]
            if upto <= 0 and not self.runner.ready(started):
                break
            upto -= 1
            self.launching.popleft()
            settled = True
            try:  # every one, whatever happens: they are claimed
                self._started(job, started)
            except (TmuxError, OSError) as e:
                self._could_not_start(job, e, time.time())
            except Exception:  # its window may run: leave it to the reconcile
                log.exception("recording the window of job %s failed", job.id)
        return settled

    def _could_not_start(self, job: Job, e: Exception, now: float) -> None:
        log.error("could not start job %s: %s", job.id, e)
        self.dirty = True  # its GPUs are free again
        self._forget_run_files(job)
        self.store.transition(
            job.id,
            JobState.FAILED,
            now,
            expect=[JobState.PENDING, JobState.RUNNING],  # claimed, then tmux failed
            event={"reason": str(e)},
            reason=f"could not start: {e}",
            finished_at=now,
        )

    def _start(
        self,
        job: Job,
        gpus: tuple[int, ...],
        now: float,
        ports: set[int],
        inherited: set[str] | None = None,
    ) -> Starting | None:
        """Claim the job, write its wrapper and send its window to tmux; None when another
        process changed the job first (a cancel). The caller takes it out of `self.pending`."""
        s = self.settings
        port = free_port(ports)
        # Claim first: a crash between here and tmux can never start it twice, and nothing
        # of a job that is not ours to start (its wrapper) is touched.
        with self._pending_kept():
            claimed = self.store.transition(
                job.id,
                JobState.RUNNING,
                now,
                expect=[JobState.PENDING],
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
            )
        if not claimed:
            return None
        ports.add(port)
        base_env = self.store.env_of(job.id)
        env = job_environment(job, base_env, gpus, self.gpus, port)
        script = s.script_path(job.id)
        text = wrapper_script(
            job_id=job.id,
            attempt=job.attempt,
            command=job.spec.command,
            cwd=job.spec.cwd,
            env=env,
            status_path=script,
            nudge_path=s.nudge_path,
            hold_path=s.hold_path,
            inherited=inherited,
        )
        fd = os.open(script + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(script + ".tmp", script)
        self.script_sizes[job.id] = len(text.encode())
        if job.tmux_window:  # an earlier attempt's window: its output is in the log
            self.runner.kill_window(job.tmux_window)
        return self.runner.start(job.id, job.name, script, job.log_path)

    def _started(self, job: Job, started: Starting | None) -> None:
        """Record the window of a job `_start` sent (or start it again if the session was
        closed under us)."""
        if started is None:
            return
        try:
            launched = self.runner.finish(started)
        except TmuxError:
            if self.runner.has_session():
                raise
            self.runner.ensure_session()  # the session was closed under us: make it again
            launched = self.runner.launch(job.id, job.name, started.script_path, job.log_path)
        with self._pending_kept():  # a running job's row
            self.store.update(
                job.id,
                tmux_window=launched.window_id,
                tmux_pane=launched.pane_id,
                pid=launched.pid,
                pid_start=process_start(launched.pid),
            )
        if self.store.cancel_requested(job.id):
            self.runner.interrupt(launched.pane_id)  # cancelled before its pane was known
        self._hook(job, "started", None)

    # ---- logs and metrics -------------------------------------------------------------

    def _tail_logs(self, running: list[Job], now: float) -> None:
        """Parse new log output, within a time budget per tick so a flood of output never
        holds up launches and finishes; jobs take turns, and the loop does not sleep while
        some log is behind."""
        deadline = time.monotonic() + LOG_BUDGET_S
        order = sorted(running, key=lambda j: (j.id <= self.tail_cursor, j.id))
        self.logs_behind = False
        for job in order:
            if not self._read_log(job, now, deadline):
                self.tail_cursor = job.id
                self.logs_behind = True
                return
        self.tail_cursor = 0

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

    def _read_log(self, job: Job, now: float, deadline: float = math.inf) -> bool:
        """Feed the job's new log bytes to its parser; False when the deadline came first.

        A log more than LOG_SKIP_BEHIND behind is skipped to its newest part: metrics are
        about now, and the raw log stays whole on disk.
        """
        tail = self.tails.get(job.id)
        if tail is None:
            tail = Tail(LogParser(job.spec.metrics or None), self.store.log_offset(job.id))
            self.tails[job.id] = tail
        try:
            size = os.path.getsize(job.log_path)
        except OSError:
            return True
        if size <= tail.offset:
            return True
        if size - tail.offset > LOG_SKIP_BEHIND:
            log.warning("job %s printed faster than it can be parsed: skipping ahead", job.id)
            tail.offset = size - LOG_CHUNK
        samples = []
        done = True
        with open(job.log_path, "rb") as f:
            f.seek(tail.offset)
            while tail.offset < size:
                if time.monotonic() > deadline:
                    done = False
                    break
                data = f.read(min(size - tail.offset, LOG_CHUNK))
                if not data:
                    break
                tail.offset += len(data)
                samples += tail.parser.feed(data, now)
        keep = self._thin(tail, samples, now - (job.started_at or now), now)
        latest = dict(tail.parser.latest)
        if keep or latest != job.metrics:
            with self._pending_kept():  # a running or ended job's metrics
                self.store.add_metrics(job.id, keep, latest, now, tail.offset)
            job.metrics = latest
        return done

    # ---- checkpoints ------------------------------------------------------------------

    def _watch_checkpoints(self, now: float) -> None:
        """Queue an evaluation for every new checkpoint file once it stopped growing (also
        for a few seconds after its job ended, for the last one). Each path is evaluated
        once, across restarts too: the store refuses a second record of it."""
        watching = self.store.jobs(
            [JobState.RUNNING, *FINISHED],
            with_checkpoints=True,
            finished_after=now - CHECKPOINT_AFTER_S,
        )
        for job in watching:
            ck = job.spec.checkpoints
            if ck is None:
                continue
            known = self.ck_known.get(job.id)
            if known is None:
                known = self.ck_known[job.id] = self.store.checkpoint_paths(job.id)
            observed: dict[str, tuple[int, float]] = {}
            for path in glob.glob(os.path.join(job.spec.cwd, ck.watch)):
                if path not in known:
                    with contextlib.suppress(OSError):
                        st = os.stat(path)
                        if stat.S_ISREG(st.st_mode):
                            observed[path] = (st.st_size, st.st_mtime)
            seen, ready = settle(self.ck_seen.get(job.id, {}), observed, now)
            self.ck_seen[job.id] = seen
            for path in ready:
                known.add(path)
                eval_id = self.store.add_checkpoint_eval(
                    job.id,
                    path,
                    eval_spec(job.spec, path),
                    self.store.env_of(job.id),
                    now,
                    self.settings.logs_dir,
                )
                if eval_id is not None:
                    log.info("job %s: checkpoint %s -> evaluation job %s", job.id, path, eval_id)
                    self.dirty = True

    # ---- hooks ------------------------------------------------------------------------

    def _hook(self, job: Job, event: str, code: int | None) -> None:
        """Run the config's and the job's hook for `event`; failures are logged, not raised.

        `{field}` in a hook becomes a reference to an environment variable, so a job name
        with shell characters is never executed.
        """
        commands = [c for c in (self.config.hooks.get(event), job.spec.hooks.get(event)) if c]
        if self.config.notify and event in ("succeeded", "failed") and shutil.which("notify-send"):
            argv = ["notify-send", f"tmuxtrain: job {job.id} {event}", job.name]
            with contextlib.suppress(OSError):
                self.hooks.append(
                    subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
        if not commands:
            return
        env = dict(os.environ)
        fields = {
            "id": str(job.id),
            "name": job.name,
            "state": event,
            "exit_code": "" if code is None else str(code),
            "attempt": str(job.attempt),
            "log": job.log_path,
            "project": job.spec.project,
            "gpus": ",".join(map(str, job.gpus)),
        }
        assert set(fields) == set(HOOK_FIELDS)
        for k, v in fields.items():
            env[f"TMUXTRAIN_JOB_{k.upper()}"] = v
        for command in commands:
            shell = fill(
                command, {k: f'"${{TMUXTRAIN_JOB_{k.upper()}}}"' for k in fields}, KeyError
            )
            try:
                with open(os.path.join(self.settings.home, "hooks.log"), "ab") as out:
                    self.hooks.append(
                        subprocess.Popen(
                            ["/bin/sh", "-c", shell],
                            env=env,
                            stdout=out,
                            stderr=out,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,
                            cwd=job.spec.cwd if os.path.isdir(job.spec.cwd) else None,
                        )
                    )
            except (OSError, KeyError) as e:
                log.warning("hook %s for job %s failed: %s", event, job.id, e)

    def _reap_hooks(self) -> None:
        self.hooks = [p for p in self.hooks if p.poll() is None]

    # ---- window housekeeping ----------------------------------------------------------

    def trim_windows(self) -> None:
        """Keep the newest `keep_finished_windows` finished windows, close the rest. A
        window whose last output is not in the log yet (`draining`) stays until it is:
        closing it would lose that output."""
        self.trim_due = False
        done = self.store.finished_windows()
        excess = done[: max(0, len(done) - self.config.keep_finished_windows)]
        if any(job_id in self.draining for job_id, _ in excess):
            excess = [(job_id, w) for job_id, w in excess if job_id not in self.draining]
            self.trim_due = True  # again once they are drained
        if excess:
            self.runner.kill_windows([w for _, w in excess])
            with self._pending_kept():  # finished jobs' rows
                self.store.forget_windows([job_id for job_id, _ in excess])

    # ---- the loop ---------------------------------------------------------------------

    def next_wake(self, now: float) -> float:
        """Seconds to sleep: until the next due step, at most one tick (1 s)."""
        if self.dirty or self.logs_behind:  # work queued for the next tick, or logs to catch up
            return 0.0
        if self.output_wait or self.draining:  # an ended job's last output is coming
            return 0.002
        wait = self.next_due - now
        return min(1.0, max(wait, 0.005)) if wait > 0 else 1.0

    def idle(self) -> bool:
        c = self.store.counts()
        return c["pending"] == 0 and c["running"] == 0

    def run(self, *, until_idle: bool = False, max_ticks: int | None = None) -> None:
        """Tick until stopped (SIGTERM/SIGINT), or until no job is pending or running."""
        s = self.settings
        with hold_lock(s.lock_path, {"gpus": gpu_source(s.gpus)}):
            ensure_fifo(s.nudge_path)
            ensure_fifo(s.hold_path)
            fd = os.open(s.nudge_path, os.O_RDWR | os.O_NONBLOCK)  # RDWR: never sees EOF
            self._install_signals()
            self.runner.ensure_session()

            def wake() -> None:  # a pane died: called from the tmux connection's thread
                with contextlib.suppress(OSError):
                    os.write(fd, b"x")

            # tmux answered a launch: a pipe of its own, as that alone needs no tick.
            answered_r, answered_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

            def answered() -> None:  # from the tmux connection's thread
                with contextlib.suppress(OSError):
                    os.write(answered_w, b"x")

            self.dirty = True
            ticks = 0
            finished_seen = -1
            connected_at = -math.inf
            try:
                while not self.stopping:
                    now = time.time()
                    if now - connected_at >= CONNECT_RETRY_S and not self.runner.connect(
                        wake, answered
                    ):
                        connected_at = now  # no control mode: a tmux process per command
                    try:
                        self.tick(now)
                    except Exception:
                        log.exception("tick failed")
                    ticks += 1
                    counts = self.store.counts()
                    finished = counts["succeeded"] + counts["failed"] + counts["cancelled"]
                    if finished != finished_seen or (self.trim_due and not self.draining):
                        finished_seen = finished
                        with contextlib.suppress(Exception):
                            self.trim_windows()
                    if (until_idle and self.idle()) or (max_ticks and ticks >= max_ticks):
                        break
                    self._sleep(fd, answered_r)
            finally:
                with contextlib.suppress(Exception):
                    self._settle(wait_all=True)  # every claimed job's window recorded
                self.runner.disconnect()  # before the fds its thread writes to are closed
                for x in (fd, answered_r, answered_w):
                    os.close(x)

    def _sleep(self, nudges: int, answers: int) -> None:
        """Wait for the next tick: a nudge, or the time `next_wake` says. Launch answers
        that come meanwhile are recorded without a tick."""
        while not self.stopping:
            self.runner.wake_on_answers(bool(self.launching))
            if self.launching:
                try:
                    self._settle()  # after the line above: a later answer wakes the select
                except Exception:
                    log.exception("recording launched windows failed")
            ready, _, _ = select.select([nudges, answers], [], [], self.next_wake(time.time()))
            for x in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(x, 4096):
                        pass
            if nudges in ready:
                self.dirty = True
            if answers not in ready or self.dirty:
                return

    def _install_signals(self) -> None:
        def stop(signum: int, frame: object) -> None:
            if self.stopping:  # second signal: leave now
                raise SystemExit(1)
            self.stopping = True

        with contextlib.suppress(ValueError):  # not the main thread (tests)
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGHUP, stop)


class AlreadyRunning(Exception):
    """Another scheduler holds this home's lock (so this one must not run)."""


@contextlib.contextmanager
def hold_lock(path: str, info: dict[str, object] | None = None) -> Iterator[None]:
    """The one-scheduler-per-home lock; the file holds the pid for `status` and `down`, and
    `info` (the GPU source, so other commands see the GPUs the scheduler sees)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(f"a scheduler already runs for {os.path.dirname(path)}") from None
        os.ftruncate(fd, 0)
        record = {"pid": os.getpid(), "started": time.time(), **(info or {})}
        os.write(fd, json.dumps(record).encode())
        yield
    finally:
        os.close(fd)


def gpu_source(spec: str | None) -> str | None:
    """TMUXTRAIN_GPUS as another process can use it: a relative fake file made absolute."""
    if spec and spec.lower().startswith("fake:") and os.path.exists(spec[5:]):
        return "fake:" + os.path.abspath(spec[5:])
    return spec


def scheduler_info(path: str) -> dict[str, object]:
    """What the running scheduler wrote into its lock ({} when none runs)."""
    if scheduler_pid(path) is None:
        return {}
    try:
        with open(path) as f:
            info = json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def scheduler_pid(path: str) -> int | None:
    """The running scheduler's pid, or None (the lock is free)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(path) as f:
                try:
                    return int(json.loads(f.read() or "{}").get("pid") or 0) or -1
                except ValueError:
                    return -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    settings = from_env()
    try:
        sched = Scheduler(settings)
        log.info("scheduler %s for %s (GPUs: %s)", os.getpid(), settings.home, sched.probe.kind)
        if sched.probe.note:
            log.info("%s", sched.probe.note)
        sched.run()
    except AlreadyRunning as e:
        print(f"tmuxtrain: {e}", file=sys.stderr)
        return 0
    log.info("scheduler stopped; running jobs keep running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
