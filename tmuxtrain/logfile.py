"""Reading a job's log file from an offset: the one copy the tailer, `log`, the dashboard and
the runners share. A log may not exist yet (the log pipe's `cat` is still starting), may
grow while it is read, and may be huge; every read here is bounded."""

from __future__ import annotations

import os


def size(path: str) -> int:
    """The log's size now; 0 while it does not exist."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read(path: str, start: int, end: int | None = None) -> bytes:
    """Bytes [start, end) of the log (to its current end when `end` is None); b"" when the
    file is missing or shorter."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(max(0, end - start))
    except OSError:
        return b""


def tail(path: str, nbytes: int) -> bytes:
    """The last `nbytes` bytes of the log (fewer when it is shorter)."""
    return read(path, max(0, size(path) - nbytes))


def tail_lines(path: str, lines: int, nbytes: int = 2**20) -> bytes:
    """The last `lines` lines of the log, looking at most `nbytes` back."""
    if lines <= 0:
        return b""
    data = tail(path, nbytes)
    return b"".join(data.splitlines(keepends=True)[-lines:])


def contains_near_end(path: str, text: str, window: int = 1024) -> bool:
    """Whether `text` is in the log's last `window` bytes (the wrapper's exit banner: once
    it is there, so is everything the job printed before it)."""
    return text.encode() in tail(path, window)
