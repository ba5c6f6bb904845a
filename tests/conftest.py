"""Shared fixtures: every test gets its own TMUXTRAIN_HOME and its own tmux server.

Nothing here touches the user's tmux server or state; the private server (and with it the
scheduler and every job window) is killed when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

from tmuxtrain.api import Client
from tmuxtrain.settings import Settings, from_env

T = TypeVar("T")

FAST_CONFIG = """\
retry_backoff: 0.2s
cancel_grace: 2s
headroom: 0
"""


def wait_until(
    cond: Callable[[], T | Literal[False] | None],
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Poll `cond` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        time.sleep(interval)


@dataclass
class Env:
    """One isolated tmuxtrain installation: home, tmux socket, GPU source, config."""

    root: Path
    settings: Settings
    environ: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    def set(self, key: str, value: str) -> None:
        """Change a TMUXTRAIN_* variable for this process and the CLI processes it starts."""
        self.monkeypatch.setenv(key, value)
        self.environ[key] = value
        self.settings = from_env(self.environ)

    def client(self) -> Client:
        return Client(self.settings)

    def cli(
        self, *args: str, timeout: float = 60, check: bool = False, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `tmuxtrain` command in a fresh process."""
        proc = subprocess.run(
            [sys.executable, "-m", "tmuxtrain.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environ,
            cwd=kw.pop("cwd", self.root),
            stdin=subprocess.DEVNULL,
            **kw,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"tmuxtrain {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
        return proc

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.settings.socket or "", *args], capture_output=True, text=True
        ).stdout

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path


@pytest.fixture
def tt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    socket = f"tmuxtrain-test-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "config.yaml"
    config.write_text(FAST_CONFIG)
    values = {
        "TMUXTRAIN_HOME": str(tmp_path / "home"),
        "TMUXTRAIN_TMUX_SOCKET": socket,
        "TMUXTRAIN_GPUS": "fake:2x24GiB",
        "TMUXTRAIN_CONFIG": str(config),
        "TMUXTRAIN_SESSION": "tmuxtrain",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TMUX", raising=False)
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ)
    env = Env(tmp_path, from_env(environ), environ, monkeypatch)
    try:
        yield env
    finally:
        stop_scheduler(env.settings)
        kill_tmux_server(socket)
        _kill_leftovers(env.settings)


def stop_scheduler(settings: Settings) -> None:
    """Stop this test's scheduler (it runs detached, outside tmux), by the pid in its lock."""
    from tmuxtrain.daemonctl import scheduler_pid

    pid = scheduler_pid(settings.lock_path)
    if pid is None or pid <= 0:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while scheduler_pid(settings.lock_path) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def kill_tmux_server(socket: str) -> None:
    """Kill a test's private tmux server and remove its socket file."""
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
    tmpdir = os.environ.get("TMUX_TMPDIR") or "/tmp"
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(tmpdir, f"tmux-{os.getuid()}", socket))


def _kill_leftovers(settings: Settings) -> None:
    """End what this test's jobs left running (found by their run tokens, so only their
    processes), e.g. a job that ignores SIGHUP survives its tmux server."""
    if not os.path.exists(settings.db_path):
        return
    from tmuxtrain.procs import tagged
    from tmuxtrain.runners.base import run_token
    from tmuxtrain.store import StorageError, Store

    try:
        store = Store(settings.db_path)
    except StorageError:  # a test that damaged its database on purpose ran no jobs
        return
    try:
        tokens = [
            run_token(settings.home, job.id, a)
            for job in store.jobs()
            for a in range(1, job.attempt + 1)
        ]
    finally:
        store.close()
    for pid in tagged(*tokens) if tokens else ():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
