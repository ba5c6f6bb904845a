"""The base of `Client`: one user's view of one tmuxtrain home (its settings and its store)
and the scheduler process behind it, which every other part may need to wake or start."""

from __future__ import annotations

import builtins
import os
import time
from typing import Any

from tmuxtrain.core.errors import StateError, TmuxtrainError
from tmuxtrain.core.model import Config, Job, JobState
from tmuxtrain.settings import Settings, from_env
from tmuxtrain.store import Store


class ClientBase:
    """Settings, the store (opened on first use) and the scheduler process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or from_env()
        self._store: Store | None = None
        self._config: tuple[tuple[int, int, int], Config] | None = None  # by (size, mtime, inode)

    @property
    def store(self) -> Store:
        if self._store is None:
            home = self.settings.home
            if not os.path.isdir(home) or os.access(home, os.W_OK):
                self.settings.ensure_dirs()
            # else: a read-only state folder, which the store opens for reading only
            self._store = Store(self.settings.db_path)
        return self._store

    def fault(self, e: BaseException) -> TmuxtrainError | None:
        """The storage failure `e` stands for (disk full, locked, damaged...: one line with
        its own exit status), or None when it is not one."""
        from tmuxtrain.store import classify

        return classify(e, self.settings.db_path)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def config(self) -> Config:
        """The config file, validated (a bad one is a SpecError naming file, line, key).
        Read again only when the file changed (size, mtime): the dashboard asks on every
        refresh."""
        from tmuxtrain.jobfile import load_config

        path = self.settings.config_path
        try:
            st = os.stat(path) if path else None
            key = None if st is None else (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            key = None
        cached = self._config
        if cached is not None and key is not None and cached[0] == key:
            return cached[1]
        config = load_config(path)
        self._config = (key, config) if key is not None else None
        return config

    def job(self, ref: str | int) -> Job:
        return self.store.get(self.store.resolve(ref))

    def dependency_id(self, ref: str) -> int:
        """The job an `after` reference names: an id, or the newest job of that name (so a
        chain submitted again follows the new one), as `add` resolves them."""
        text = ref.strip()
        if text.isdigit():
            return self.store.resolve(text)
        ids = self.store.ids_named(text)
        if not ids:
            raise TmuxtrainError(f"no job named '{text}' to run after")
        return ids[-1]

    def _states(self, state: str | None) -> builtins.list[JobState] | None:
        if not state:
            return None
        try:
            return [JobState(s.strip()) for s in state.split(",")]
        except ValueError:
            allowed = ", ".join(s.value for s in JobState)
            raise TmuxtrainError(f"--state: unknown state '{state}' (use {allowed})") from None

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

        if self.scheduler_running():
            return False
        self.config()  # a bad config fails here, not in the daemon
        self.store.check()  # so does a damaged database (with its own exit status)
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
