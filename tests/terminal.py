"""Run the real `tmuxtrain` command with its stdout on a pseudo-terminal of a given size,
as a person at a terminal runs it (confirmations, colours, fitting the width)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Shown:
    returncode: int
    stdout: str  # what the terminal showed, with "\r\n" made "\n"
    stderr: str


def on_terminal(
    environ: dict[str, str],
    *args: str,
    cwd: Path,
    columns: int = 80,
    lines: int = 24,
    timeout: float = 60,
) -> Shown:
    """`tmuxtrain ARGS` with stdout on a `columns` x `lines` terminal (stderr captured)."""
    env = {k: v for k, v in environ.items() if k not in ("COLUMNS", "LINES")}
    env.setdefault("TERM", "xterm-256color")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tmuxtrain.cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=err,
            env=env,
            cwd=cwd,
        )
        os.close(slave)
        out = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if not ready:
                    if proc.poll() is not None and not select.select([master], [], [], 0)[0]:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                out += chunk
            else:
                proc.kill()
                raise AssertionError(f"tmuxtrain {' '.join(args)} did not end in {timeout}s")
            code = proc.wait(timeout=10)
        finally:
            os.close(master)
        err.seek(0)
        stderr = err.read().decode()
    return Shown(code, out.decode().replace("\r\n", "\n"), stderr)
