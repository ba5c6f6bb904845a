"""Where things live, from the environment (the contract's TMUXTRAIN_* variables)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from tmuxtrain.core.errors import TmuxtrainError


@dataclass(frozen=True)
class Settings:
    home: str
    config_path: str | None
    socket: str | None
    session: str
    gpus: str | None  # None: auto (nvml when it loads, else none)

    @property
    def db_path(self) -> str:
        return os.path.join(self.home, "tmuxtrain.db")

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.home, "logs")

    @property
    def run_dir(self) -> str:
        return os.path.join(self.home, "run")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.home, "scheduler.lock")

    @property
    def nudge_path(self) -> str:
        return os.path.join(self.home, "nudge.fifo")

    @property
    def hold_path(self) -> str:
        """A fifo nobody writes: a finished job's wrapper waits on it until its window closes."""
        return os.path.join(self.home, "hold.fifo")

    @property
    def scheduler_log(self) -> str:
        return os.path.join(self.home, "scheduler.log")

    @property
    def hooks_log(self) -> str:
        return os.path.join(self.home, "hooks.log")

    def script_path(self, job_id: int) -> str:
        """A running job's wrapper; the wrapper appends its exit status to it."""
        return os.path.join(self.run_dir, f"{job_id}.sh")

    def ensure_dirs(self) -> None:
        """Make the state folder 0700 (it holds job environments) when it is missing. A
        folder that exists keeps its mode (it may be the user's own, shared on purpose),
        but one owned by another user is refused: its owner could read and change every
        job. `logs/` and `run/` inside it are made 0700."""
        parent = os.path.dirname(self.home)
        if parent:
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(self.home, 0o700)
        except FileExistsError:
            st = os.stat(self.home)
            if st.st_uid != os.getuid():
                raise TmuxtrainError(
                    f"TMUXTRAIN_HOME {self.home} belongs to another user (uid {st.st_uid}):"
                    " use a folder of your own"
                ) from None
        for d in (self.logs_dir, self.run_dir):
            os.makedirs(d, mode=0o700, exist_ok=True)


def from_env(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = env.get("TMUXTRAIN_HOME") or os.path.join(
        env.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tmuxtrain"
    )
    config = env.get("TMUXTRAIN_CONFIG") or None
    if config is None:
        default = os.path.join(
            env.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"),
            "tmuxtrain",
            "config.yaml",
        )
        config = default if os.path.exists(default) else None
    session = env.get("TMUXTRAIN_SESSION") or "tmuxtrain"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", session):
        raise TmuxtrainError(
            f"TMUXTRAIN_SESSION: '{session}' is not a valid session name (letters, digits, _ . -)"
        )
    return Settings(
        home=os.path.abspath(home),
        config_path=config,
        socket=env.get("TMUXTRAIN_TMUX_SOCKET") or None,
        session=session,
        gpus=env.get("TMUXTRAIN_GPUS") or None,
    )
