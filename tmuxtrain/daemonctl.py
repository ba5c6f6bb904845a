"""The scheduler process as other processes see it: its lock, its wake-up fifo, its status,
and how it is started. Nothing here imports the loop, so `tmuxtrain ls` stays light.

The scheduler runs as a daemon of its own (a new session, no terminal), not inside the tmux
server it manages: a dying tmux server must not take it along. It is started with Python's
isolated mode from the state folder, with the module path the caller had minus the caller's
folder, so a `psutil.py` or `tmuxtrain/` planted in the folder where someone ran `add` is
never imported into the scheduler.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator

from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.settings import Settings


class AlreadyRunning(TmuxtrainError):
    """Another scheduler holds this home's lock (so this one must not run)."""


@contextlib.contextmanager
def hold_lock(path: str, info: dict[str, object] | None = None) -> Iterator[None]:
    """The one-scheduler-per-home lock; the file holds the pid for `status` and `down`, and
    `info` (the GPU source, log and config, so other commands see what the scheduler sees)."""
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


def scheduler_pid(path: str) -> int | None:
    """The running scheduler's pid, or None (the lock is free). -1: running, pid unknown."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(path) as f:
                try:
                    return int(json.loads(f.read() or "{}").get("pid") or 0) or -1
                except (ValueError, AttributeError):
                    return -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


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


def gpu_source(spec: str | None) -> str | None:
    """TMUXTRAIN_GPUS as another process can use it: a relative fake file made absolute."""
    if spec and spec.lower().startswith("fake:") and os.path.exists(spec[5:]):
        return "fake:" + os.path.abspath(spec[5:])
    return spec


def gpu_source_for(settings: Settings) -> str | None:
    """TMUXTRAIN_GPUS, or when it is unset the source the running scheduler uses (so
    `gpus`, the dashboard and submission see the GPUs jobs are placed on)."""
    if settings.gpus:
        return settings.gpus
    spec = scheduler_info(settings.lock_path).get("gpus")
    return spec if isinstance(spec, str) else None


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


def module_path(cwd: str | None = None) -> list[str]:
    """The folders the scheduler may import from: ours (where this tmuxtrain came from)
    first, then the caller's path without its current folder ('' or the folder itself)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cwd = os.path.realpath(cwd or os.getcwd())
    out = [here]
    for p in sys.path:
        if not p or not os.path.isabs(p) or os.path.realpath(p) == cwd or p in out:
            continue
        out.append(p)
    return out


BOOT = (
    "import sys,json;sys.path[:0]=json.loads(sys.argv[1]);import tmuxtrain.daemon.main as m;m.run()"
)


def spawn(settings: Settings, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the scheduler detached: its own session, no terminal, output to its log,
    working in the state folder, in isolated mode (see the module docstring)."""
    env = dict(environ)
    env["TMUXTRAIN_HOME"] = settings.home
    log = open(settings.scheduler_log, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, json.dumps(module_path())],
            cwd=settings.home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
