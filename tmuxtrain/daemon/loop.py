"""The scheduler loop: composes the parts, each with one job, in a fixed order per tick.

    tick(now) = settle starts -> reap ends (and escalate cancels) -> probe GPUs
                -> measure peaks, learn sweeps' VRAM -> launch (when anything changed)
                -> tail logs -> drain ended logs
                -> watch checkpoints -> reap hooks -> trim windows

Sleeping happens in one place (`run`, through its clock), which wakes early on a nudge (a
byte in the fifo from `add`, `cancel`, a job's wrapper, or the runner when a pane dies).
The clock is real in the daemon and simulated in tests, which drive this same loop through
thousands of jobs (`tests/test_simulation.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from tmuxtrain.core import preempt
from tmuxtrain.core.allocate import usable
from tmuxtrain.core.model import Config, GpuInfo, Job, JobState
from tmuxtrain.daemon.checkpoints import CheckpointWatcher
from tmuxtrain.daemon.hooks import HookRunner
from tmuxtrain.daemon.launcher import Launcher
from tmuxtrain.daemon.learner import VramLearner
from tmuxtrain.daemon.reaper import Finished, Reaper
from tmuxtrain.daemon.tailer import LogTailer
from tmuxtrain.daemon.windows import WindowKeeper
from tmuxtrain.daemonctl import ensure_fifo, gpu_source, hold_lock
from tmuxtrain.gpus import GpuProbe
from tmuxtrain.gpus.credit import probe_gpus
from tmuxtrain.runners.base import Runner
from tmuxtrain.settings import Settings
from tmuxtrain.store import FATAL, Store, classify
from tmuxtrain.store.aside import set_aside

log = logging.getLogger("tmuxtrain.daemon")
FAILED_TICK_WAIT_S = 1.0  # a tick that failed (a full disk, a lock) is tried again after this


class Clock(Protocol):
    def time(self) -> float: ...

    def wait(self, seconds: float, fds: Sequence[int]) -> list[int]:
        """Sleep up to `seconds`; the fds that became readable meanwhile."""
        ...


class RealClock:
    def time(self) -> float:
        return time.time()

    def wait(self, seconds: float, fds: Sequence[int]) -> list[int]:
        ready, _, _ = select.select(list(fds), [], [], seconds)
        return ready


class Scheduler:
    """One scheduler per TMUXTRAIN_HOME (held by a lock while `run` runs)."""

    def __init__(
        self,
        settings: Settings,
        config: Config,
        store: Store,
        runner: Runner,
        probe: GpuProbe,
        clock: Clock | None = None,
        idle_tick_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.runner = runner
        self.probe = probe
        self.clock: Clock = clock or RealClock()
        self.idle_tick_s = idle_tick_s
        self.launcher = Launcher(store, runner, config, settings)
        self.reaper = Reaper(store, runner, config)
        self.tailer = LogTailer(store, runner)
        self.checkpoints = CheckpointWatcher(store, settings)
        self.launcher.evaluations_open = self.checkpoints.evaluations_open
        self.hooks = HookRunner(config, settings)
        self.windows = WindowKeeper(store, runner, config)
        self.learner = VramLearner(store, config)
        self.gpus: list[GpuInfo] = []
        self.dirty = True  # something may have changed: decide again
        self.first = True  # the first tick looks at everything (adopts after a restart)
        self.last_key: tuple[object, ...] | None = None
        self.next_due = 0.0
        self.stopping = ""  # why the loop stops ('' while it runs)
        self.visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # GPUs it was started with
        self.failures: dict[str, tuple[int, float]] = {}  # tick failures: (count, logged at)
        self.retry_at = 0.0  # after a failed tick, the next waits until then (no spinning)

    # ---- one step ---------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """One scheduling step at time `now` (POSIX seconds).

        The queue is only re-decided when something could have changed it: another process
        wrote to the store, a job ended, the GPU snapshot moved, we were nudged, or a retry
        backoff or cancel step fell due. An idle scheduler with a long queue stays cheap.
        """
        dirty, self.dirty = self.dirty, False  # steps below may set it again for next tick
        self.runner.prepare(dirty)
        try:
            self._tick(now, dirty)
        finally:
            self.runner.finish_tick()

    def _tick(self, now: float, dirty: bool) -> None:
        if self.store.unreadable:  # rows the last tick could not read: failed, with why
            for job_id in set_aside(self.store, now):
                log.warning("job %s set aside as failed: its row cannot be read", job_id)
        self._started(self.launcher.settle(now))
        running = self.store.jobs([JobState.RUNNING])
        queued = [j for j in self.store.pending() if j.queued]  # held by Slurm's queue
        if running or queued or self.first:
            active = [*running, *queued]
            flying = {*self.launcher.claimed, *self.launcher.submitted}
            exits = self.reaper.collect(
                active, now, nudged=dirty, full=self.first, in_flight=flying
            )
            self.first = False
            self._started(self.launcher.settle(now))  # answers that came with the exits
            for job in active:
                if job.id in exits:
                    self.tailer.read(job, now)  # its output so far, before its end is recorded
            finished = self.reaper.end(exits, active, now, self.gpus)
            if finished:
                self._finished(finished, now)
            if (queued and self.reaper.progress(queued, running, now)) or finished:
                running = self.store.jobs([JobState.RUNNING])
                queued = [j for j in self.store.pending() if j.queued]
            self.reaper.escalate([*running, *queued], now)
        self.gpus = self._probe(running)
        self.learner.observe(running, self.gpus)
        key = (self.store.data_version(), tuple(self.gpus))
        if dirty or self.dirty or key != self.last_key or now >= self.next_due:
            self.dirty = False
            pending = self.learner.learn(self.store.pending(), self.gpus, now)
            if pending and self.launcher.launch(
                pending, running, self.gpus, now, self.tailer.draining
            ):
                running = self.store.jobs([JobState.RUNNING])
                self.dirty |= self.launcher.preempted  # Ctrl-C at the next tick, at once
            pending = self.store.pending()
            due = min(self._due(pending + running), preempt.next_due(pending, self.config, now))
            self.next_due = min(due, self.reaper.next_due(running))
            if pending and self.launcher.waiting_on_evals:  # a watch closes with the clock
                self.next_due = min(self.next_due, now + self.idle_tick_s)
            self.last_key = key
        self.tailer.tail(running, now)
        if self.tailer.drain(now) and self.launcher.held_back:
            self.dirty = True  # the retry that waited for this output may start now
        if self.checkpoints.watch(now):
            self.dirty = True
        self.hooks.reap()
        if self.windows.due:
            self.windows.trim(self.tailer.draining)
        if self.store.unreadable:
            self.dirty = True  # set them aside on the next tick, at once

    def _started(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.hooks.fire(job, "started", None)
        if self.launcher.queue_moved:
            self.launcher.queue_moved = False
            self.dirty = True

    def _finished(self, finished: Sequence[Finished], now: float) -> None:
        for f in finished:
            self.tailer.ended(f.job, now)
            self.hooks.fire(f.job, f.hook, f.exit_code)
        self.windows.due = True
        self.dirty = True  # their GPUs are free

    def _due(self, jobs: Sequence[Job]) -> float:
        """When the next time-driven step falls due: a retry backoff ending, a cancel
        escalating, a timeout expiring (inf when nothing is waiting on the clock)."""
        grace = self.config.cancel_grace_s
        due = [j.not_before for j in jobs if j.not_before is not None]
        for j in jobs:
            if j.cancel_requested_at is not None:
                due += [j.cancel_requested_at + grace / 2, j.cancel_requested_at + grace]
            if j.spec.timeout_s is not None and j.started_at is not None:
                due.append(j.started_at + j.spec.timeout_s)
        return min(due, default=float("inf"))

    def _probe(self, running: list[Job]) -> list[GpuInfo]:
        """The GPUs tmuxtrain may use now (config `gpus:` and the scheduler's
        CUDA_VISIBLE_DEVICES), their memory credited to the jobs that hold it."""
        try:
            snapshot = probe_gpus(self.probe, running, self.gpus)
        except Exception as e:  # a probe failure must never stop the loop
            log.warning("GPU probe failed: %s", e)
            return self.gpus
        return usable(snapshot, self.config.gpus, self.visible)

    # ---- the loop ---------------------------------------------------------------------

    def next_wake(self, now: float) -> float:
        """Seconds to sleep: until the next due step, at most one idle tick; after a failed
        tick, until `retry_at` (a nudge still wakes it)."""
        if now < self.retry_at:
            return self.retry_at - now
        if self.dirty or self.tailer.behind:  # work queued for the next tick, or logs behind
            return 0.0
        if self.reaper.busy or self.tailer.draining:  # an ended job's output or leftovers
            return 0.002
        wait = min(self.next_due, self.runner.next_event()) - now
        return min(self.idle_tick_s, max(wait, 0.005)) if wait > 0 else self.idle_tick_s

    def idle(self) -> bool:
        c = self.store.counts()
        return c["pending"] == 0 and c["running"] == 0

    def run(
        self,
        *,
        until_idle: bool = False,
        max_ticks: int | None = None,
        until: float | None = None,
    ) -> str:
        """Tick until stopped (SIGTERM/SIGINT/SIGHUP), or until no job is pending or running
        (`until_idle`), or `max_ticks` ticks, or the clock reached `until`; returns why it
        stopped."""
        with self._serving() as (nudges, answers):
            ticks = 0
            while not self.stopping:
                try:
                    self.tick(self.clock.time())
                    self.failures.clear()
                except Exception as e:
                    self._failed(e)
                ticks += 1
                if until_idle and self.idle():
                    self.stopping = "idle"
                elif max_ticks and ticks >= max_ticks:
                    self.stopping = f"{ticks} ticks"
                elif until is not None and self.clock.time() >= until:
                    self.stopping = "time"
                else:
                    self._sleep(nudges, answers, until)
        return self.stopping

    def _failed(self, e: Exception) -> None:
        """A tick that failed is logged with its traceback once; the same failure again
        (a full disk, say) only as a line every minute, so the log does not flood."""
        self.dirty = True
        self.retry_at = self.clock.time() + FAILED_TICK_WAIT_S
        if not os.path.isdir(self.settings.home):  # deleted, or its file system unmounted
            log.error("scheduler stopped: its state folder %s is gone", self.settings.home)
            self.stopping = "the state folder is gone"
            return
        fault = classify(e, self.store.path)
        if isinstance(fault, FATAL):  # a damaged database is never written again
            log.error("scheduler stopped: %s", fault)
            self.stopping = "the database cannot be used"
            return
        key = f"{type(e).__name__}: {e}" if fault is None else str(fault)
        count, last = self.failures.get(key, (0, -1e18))
        now = time.monotonic()
        if count == 0 and fault is not None:  # a full disk, a lock: one line says it all
            log.error("tick failed: %s", fault)
        elif count == 0:
            log.exception("tick failed")
        elif now - last >= 60:
            log.error("tick failed again (%d times): %s", count + 1, key)
        else:
            self.failures[key] = (count + 1, last)
            return
        self.failures[key] = (count + 1, now)

    @contextlib.contextmanager
    def _serving(self) -> Iterator[tuple[int, int]]:
        """The lock, the nudge fifo, a pipe for the runner's answers and the signals, for
        the time the loop runs."""
        s = self.settings
        info: dict[str, object] = {
            "gpus": gpu_source(s.gpus),
            "log": s.scheduler_log,
            "config": s.config_path,
            "runner": self.runner.kind,
            "cuda_visible_devices": self.visible,
        }
        with hold_lock(s.lock_path, info):
            ensure_fifo(s.nudge_path)
            ensure_fifo(s.hold_path)
            nudges = os.open(s.nudge_path, os.O_RDWR | os.O_NONBLOCK)  # RDWR: never EOF
            answers_r, answers_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

            def poke(fd: int) -> None:  # from the runner's thread
                with contextlib.suppress(OSError):
                    os.write(fd, b"x")

            self._install_signals()
            self.runner.open(lambda: poke(nudges), lambda: poke(answers_w))
            try:
                yield nudges, answers_r
            finally:
                with contextlib.suppress(Exception):
                    self.launcher.settle(self.clock.time(), wait=True)
                self.runner.close()  # before the fds its thread writes to are closed
                for fd in (nudges, answers_r, answers_w):
                    os.close(fd)

    def _sleep(self, nudges: int, answers: int, until: float | None = None) -> None:
        """Wait for the next tick: a nudge, or the time `next_wake` says (at most until
        `until`). Start answers that come meanwhile are recorded without a tick."""
        while not self.stopping:
            now = self.clock.time()
            wait = self.next_wake(now)
            if until is not None:
                wait = max(0.0, min(wait, until - now))
            ready = self.clock.wait(wait, [nudges, answers])
            for fd in ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(fd, 4096):
                        pass
            if nudges in ready:
                self.dirty = True
            if answers not in ready or self.dirty:
                return
            try:
                self._started(self.launcher.settle(self.clock.time()))
            except Exception:
                log.exception("recording started windows failed")

    def _install_signals(self) -> None:
        def stop(signum: int, frame: object) -> None:
            if self.stopping:  # second signal: leave now
                raise SystemExit(1)
            self.stopping = f"signal {signal.Signals(signum).name}"

        with contextlib.suppress(ValueError):  # not the main thread (tests)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, stop)
