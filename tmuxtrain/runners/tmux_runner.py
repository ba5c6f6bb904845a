"""Jobs as windows of a tmux session on this machine: the `Runner` the scheduler uses here.

A job's window runs a generated wrapper script as its own argv (never typed in with
send-keys, see `wrapper`). Its end is known three ways, cheapest first: the status the
wrapper appended to its own script (one stat per running job and tick), tmux's dead-pane
status, and, every few seconds, a full look at tmux's panes and the process table. Starts
go out over the control connection without waiting; their answers are read as they come.

What an attempt leaves running after an end that was not clean (its wrapper killed, its
window closed, tmux gone) is found by its run token and ended, like a cancel.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence

from tmuxtrain import logfile
from tmuxtrain.core import reconcile as rec
from tmuxtrain.core.model import Job
from tmuxtrain.procs import Pid, signal_pids, tagged, tree
from tmuxtrain.runners.base import (
    Capabilities,
    Exit,
    Handle,
    Progress,
    Started,
    StartRequest,
    Step,
    run_token,
)
from tmuxtrain.runners.tmux import Launched, Starting, Tmux
from tmuxtrain.runners.tmux_control import TmuxError
from tmuxtrain.runners.wrapper import exit_banner, read_status, start_banner, wrapper_script
from tmuxtrain.settings import Settings

log = logging.getLogger("tmuxtrain.runner")
FULL_RECONCILE_S = 5.0  # a full pane/process check even when nothing nudged us
CONNECT_RETRY_S = 5.0  # how often to retry the control connection while it is down
# tmux's words when the server or our session is not there: a start that failed so never
# ran, and the job goes back to pending.
_GONE = ("no server running", "lost the tmux connection", "can't find session", "server exited")


class TmuxRunner:
    """The Runner protocol over one tmux session (`settings.socket`, `settings.session`)."""

    kind = "tmux"
    capabilities = Capabilities(places_gpus=True, windows=True)

    def __init__(self, settings: Settings, tmux: Tmux | None = None) -> None:
        self.settings = settings
        self.tmux = tmux or Tmux(settings.socket, settings.session)
        self.launching: deque[tuple[Job, Starting]] = deque()
        self.answers: list[Started] = []  # answers read, not handed out yet
        self.script_sizes: dict[int, int] = {}  # running job -> its wrapper's size as written
        self.seen_dead: dict[str, float] = {}  # pane -> first seen dead without a status
        self.last_full = -1e18
        self.connected_at = -1e18
        self._wake: Callable[[], None] | None = None
        self._answered: Callable[[], None] | None = None
        self._inherited: set[str] | None = None
        self._asked = False

    # ---- connection -------------------------------------------------------------------

    def open(self, wake: Callable[[], None], answered: Callable[[], None]) -> None:
        self._wake, self._answered = wake, answered
        self._connect(force=True)

    def _connect(self, force: bool = False) -> None:
        """(Re)connect the control connection at most every CONNECT_RETRY_S; the session
        is made first (its first window shows the scheduler's log)."""
        now = time.monotonic()
        if self.tmux.control is not None:
            if self.tmux.control.alive:
                return
            self.tmux.disconnect()  # it broke: tmux (or our session) went away
            self.last_full = -1e18  # look at every running job now
            if self._wake is not None:
                self._wake()
        if not force and now - self.connected_at < CONNECT_RETRY_S:
            return
        self.connected_at = now
        try:
            self.ensure_session()
        except (TmuxError, OSError) as e:
            log.warning("cannot reach tmux: %s", e)
            return
        if not self.tmux.connect(self._wake, self._answered):
            log.info("no tmux control connection: one tmux process per command")

    def ensure_session(self) -> bool:
        """Make the session when it is missing; its first window follows the scheduler's
        log (Ctrl-C there ends only that `tail`)."""
        log_path = self.settings.scheduler_log
        argv = ["tail", "-n", "100", "-F", log_path]
        return self.tmux.ensure_session(argv, "scheduler")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.started(wait=True)
        self.tmux.disconnect()

    def prepare(self, dirty: bool) -> None:
        self._connect()
        self.tmux.pump()  # answers nobody waits for (closed windows) are read and dropped
        if dirty:  # a launch may come: tmux answers while the scheduler reconciles
            self.tmux.ask_inherited_names()
            self._asked = True

    def finish_tick(self) -> None:
        self.tmux.drop_inherited_names()
        self._inherited, self._asked = None, False

    # ---- starting ---------------------------------------------------------------------

    def start(self, request: StartRequest) -> None:
        job = request.job
        script = self.settings.script_path(job.id)
        try:
            if self._inherited is None:
                self._inherited = self.tmux.inherited_names()
            text = wrapper_script(
                job_id=job.id,
                attempt=job.attempt,
                command=job.spec.command,
                cwd=job.spec.cwd,
                env=request.env,
                status_path=script,
                nudge_path=self.settings.nudge_path,
                hold_path=self.settings.hold_path,
                inherited=self._inherited,
            )
            fd = os.open(script + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(script + ".tmp", script)
            self.script_sizes[job.id] = len(text.encode())
            if job.tmux_window:  # an earlier attempt's window: its output is in the log
                self.tmux.kill_window(job.tmux_window)
            token = run_token(self.settings.home, job.id, job.attempt)
            starting = self.tmux.start(job.id, job.name, script, job.log_path, token)
        except (TmuxError, OSError) as e:
            self.answers.append(self._failed(job, e))
            return
        self.launching.append((job, starting))
        self.tmux.wake_on_answers(True)

    def _failed(self, job: Job, e: Exception) -> Started:
        gone = isinstance(e, TmuxError) and any(w in str(e) for w in _GONE)
        return Started(job.id, job.attempt, None, str(e), retryable=gone)

    def started(self, wait: bool = False) -> list[Started]:
        while self.launching:
            job, starting = self.launching[0]
            if not wait and not self.tmux.ready(starting):
                break
            self.launching.popleft()
            self.answers.append(self._answer(job, starting))
        if not self.launching:
            self.tmux.wake_on_answers(False)
        out, self.answers = self.answers, []
        return out

    def _answer(self, job: Job, starting: Starting) -> Started:
        try:
            launched = self.tmux.finish(starting)
        except TmuxError as e:
            if self.tmux.has_session():
                return self._failed(job, e)
            try:  # the session was closed under us: make it again and start the job there
                self.ensure_session()
                launched = self.tmux.launch(
                    job.id, job.name, starting.script_path, job.log_path, starting.tag
                )
            except (TmuxError, OSError) as e2:
                return self._failed(job, e2)
        return Started(job.id, job.attempt, self._handle(launched))

    @staticmethod
    def _handle(launched: Launched) -> Handle:
        p = Pid.of(launched.pid)
        return Handle(launched.window_id, launched.pane_id, p.pid, p.start, p.boot)

    def in_flight(self) -> int:
        return len(self.launching) + len(self.answers)

    # ---- ends -------------------------------------------------------------------------

    def _statuses(self, jobs: Sequence[Job]) -> dict[int, tuple[int, float]]:
        """(status, when) the wrappers recorded at the end of their scripts: a script's size
        is looked at (one stat), its end read only once it grew past what was written."""
        codes = {}
        for j in jobs:
            try:
                st = os.stat(self.settings.script_path(j.id))
            except OSError:
                continue
            if st.st_size == self.script_sizes.get(j.id):
                continue
            code = read_status(self.settings.script_path(j.id), j.attempt)
            if code is None:
                self.script_sizes[j.id] = st.st_size  # read again once it grows
            else:
                codes[j.id] = (code, st.st_mtime)
        return codes

    def exits(self, running: Sequence[Job], now: float, *, full: bool, nudged: bool) -> list[Exit]:
        """Running attempts that ended. Attempts whose start is still in flight count only
        when their wrapper recorded a status: their answer is then waited for, and comes
        with the exit. A nudge that the recorded statuses explain needs no look at tmux;
        one they do not explain (a killed job) does."""
        flying = {job.id: (job, s) for job, s in self.launching}
        codes = self._statuses(running)
        full = full or now - self.last_full >= FULL_RECONCILE_S or (nudged and not codes)
        out: list[Exit] = []
        handles: dict[int, Handle] = {}
        if any(i in flying for i in codes):
            answers = self.started(wait=True)  # handed out again by the next `started`
            self.answers = answers
            handles = {a.job_id: a.handle for a in answers if a.handle and a.job_id in codes}
        known = [j for j in running if j.tmux_pane and j.id not in flying]
        if full:
            panes = self.tmux.panes()
            alive = {
                j.id: Pid(j.pid, j.pid_start, j.pid_boot).alive()
                for j in known
                if j.id not in codes and j.pid
            }
            self.last_full = now
            codes.update(self._statuses(known))  # a wrapper may have finished since
            settled = frozenset(p for p, t in self.seen_dead.items() if now - t >= 1.0)
            plain = {i: c for i, (c, _) in codes.items()}
            ended = rec.reconcile(known, panes, plain, alive, settled)
            self.seen_dead = {p: self.seen_dead.get(p, now) for p in rec.dead_without_status(panes)}
            if self.seen_dead:  # look again in a second: tmux is about to have the status
                self.last_full = now - FULL_RECONCILE_S + 1.0
        else:
            ended = []
        seen = {e.job_id for e in ended}
        ended += [rec.Ended(i, c) for i, (c, _) in codes.items() if i not in seen]
        attempts = {j.id: j.attempt for j in running}
        for e in ended:
            when = codes[e.job_id][1] if e.job_id in codes else None
            out.append(
                Exit(
                    e.job_id,
                    attempts[e.job_id],
                    e.exit_code,
                    e.note,
                    clean=e.clean,
                    ended_at=when,
                    handle=handles.get(e.job_id),
                )
            )
        return out

    def progress(self, queued: Sequence[Job], now: float) -> list[Progress]:
        return []  # no queue of its own: a started job runs at once

    def find(self, job: Job) -> Handle | Exit | None:
        token = run_token(self.settings.home, job.id, job.attempt)
        launched = self.tmux.find_tagged(token)
        if launched is not None:
            return self._handle(launched)
        script = self.settings.script_path(job.id)
        code = read_status(script, job.attempt)
        if code is not None:
            return Exit(job.id, job.attempt, code, "recorded while the scheduler was down")
        ran = logfile.contains_near_end(job.log_path, start_banner(job.id, job.attempt), 2**20)
        if ran or tagged(token):
            note = "lost: its window closed before it recorded an exit status"
            return Exit(job.id, job.attempt, None, note, clean=False)
        return None

    # ---- stopping ---------------------------------------------------------------------

    def signal(self, job: Job, step: Step) -> None:
        if step is Step.INTERRUPT:
            if job.tmux_pane:
                self.tmux.interrupt(job.tmux_pane)
            return
        wrapper = Pid(job.pid, job.pid_start, job.pid_boot) if job.pid else None
        pids = (tree(wrapper) if wrapper else set()) | tagged(self._token(job))
        if step is Step.TERM and wrapper is not None:
            pids.discard(wrapper.pid)  # the wrapper stays to record the status
        signal_pids(pids, signal.SIGTERM if step is Step.TERM else signal.SIGKILL)

    def _token(self, job: Job) -> str:
        return run_token(self.settings.home, job.id, job.attempt)

    def leftovers(self, job: Job, step: Step | None) -> int:
        pids = tagged(self._token(job))
        if step is not None and pids:
            signal_pids(pids, signal.SIGKILL if step is Step.KILL else signal.SIGTERM)
        return len(pids)

    # ---- output and housekeeping ------------------------------------------------------

    def output_complete(self, job: Job) -> bool:
        return logfile.contains_near_end(job.log_path, exit_banner(job.id, job.attempt))

    def output_tail(self, job: Job) -> str:
        text = logfile.tail(job.log_path, 65536).decode("utf-8", "replace")
        if job.tmux_pane:  # pipe-pane may lag the exit by a few ms: the pane has it all
            with contextlib.suppress(TmuxError):
                text += "\n" + self.tmux.capture(job.tmux_pane)
        return text

    def forget(self, job: Job) -> None:
        """An ended attempt's wrapper (its status at its end) is read: remove it, so the
        folder holds only running jobs' wrappers. A wrapper still waiting for its window to
        close keeps its open file."""
        self.script_sizes.pop(job.id, None)
        with contextlib.suppress(OSError):
            os.unlink(self.settings.script_path(job.id))

    def close_windows(self, windows: Sequence[str]) -> None:
        self.tmux.kill_windows(list(windows))

    def next_event(self) -> float:
        return float("inf")

    def capabilities_of(self, job: Job) -> Capabilities:
        return self.capabilities
