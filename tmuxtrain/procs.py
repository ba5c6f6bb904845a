"""The one module that reads /proc and signals processes.

A recorded pid is trusted only together with its start time and the boot it was recorded
in, and only for a process of our own user: after a reboot, or once the pid was reused, it
names someone else's process, which must never be signalled (as BirddWang/gq reattaches by
pid plus start time and boot id).

Every process of a job carries `TMUXTRAIN_RUN=<token>` in its environment (the wrapper
exports it): that finds what a job left behind (`tagged`) even after its wrapper died and
its processes were reparented or started sessions of their own (`setsid`, `nohup`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
from dataclasses import dataclass

import psutil

RUN_VARIABLE = "TMUXTRAIN_RUN"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_UID = os.getuid()
START_TOLERANCE_S = 0.02  # start times are in clock ticks (10 ms): equal within one


@functools.cache
def boot_id() -> str:
    """This boot's id (`/proc/sys/kernel/random/boot_id`): pids restart at every boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()


def process_start(pid: int) -> float | None:
    """Process start time as psutil's create_time gives it (boot time + /proc start ticks),
    or None when it is gone or a zombie. One read of /proc/PID/stat: this runs for every
    job that starts, and psutil.Process reads it three times."""
    fields = _stat(pid)
    if fields is None or fields[0] == b"Z":
        return None
    return psutil.boot_time() + int(fields[19]) / _CLOCK_TICKS


def _own(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == _UID
    except OSError:
        return False


@dataclass(frozen=True)
class Pid:
    """A process as recorded: pid, start time and boot. `alive()` only when all three match
    a live process of our user."""

    pid: int
    start: float | None
    boot: str | None

    @classmethod
    def of(cls, pid: int) -> Pid:
        """The live process `pid` now (start None when it is already gone)."""
        return cls(pid, process_start(pid), boot_id())

    def alive(self) -> bool:
        if self.start is None or self.boot != boot_id():
            return False
        start = process_start(self.pid)
        return start is not None and abs(start - self.start) < START_TOLERANCE_S and _own(self.pid)


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (psutil's children walk)."""
    try:
        root = psutil.Process(pid)
        return [root.pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.Error:
        return []


def tree(p: Pid) -> set[int]:
    """The recorded process and its descendants; empty unless it is still that process."""
    return set(descendants(p.pid)) if p.alive() else set()


def _environ_has(pid: int, needles: set[bytes]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return not needles.isdisjoint(f.read().split(b"\0"))
    except OSError:
        return False


def tagged(*tokens: str) -> set[int]:
    """Live processes of our user whose environment has `TMUXTRAIN_RUN=` one of `tokens`:
    a job's processes wherever they went (one read of each of our processes' environment,
    a few ms for a few hundred processes)."""
    needles = {f"{RUN_VARIABLE}={t}".encode() for t in tokens}
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            pid = int(name)
            fields = _stat(pid)
            if (
                fields is not None
                and fields[0] != b"Z"
                and _own(pid)
                and _environ_has(pid, needles)
            ):
                out.add(pid)
    return out


def signal_pids(pids: set[int], sig: signal.Signals) -> None:
    """Signal these pids; the gone and the foreign are skipped."""
    for pid in pids:
        if pid > 1 and pid != os.getpid():
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
