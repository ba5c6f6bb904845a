"""Why a job failed, in words a person would use, from its exit status and its last output.

`exit code 127` is what the shell says; `command not found` is what it means. The reason
goes into the job's `reason` (shown by `ls`); the lines it came from go with the attempt
(shown by `show`).
"""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
NOT_FOUND = re.compile(r"(?:not found|No such file or directory)\s*$")
CANNOT_CD = re.compile(r"\[tmuxtrain\] cannot cd to (.+)$")
OOM = re.compile(r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError")
TRACEBACK = "Traceback (most recent call last):"
EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)\b.*)$")
MAX_LINES = 5


def _lines(tail: str) -> list[str]:
    """The output's lines as they last looked: colours gone, a `\\r` redraw as its last."""
    out = []
    for line in ANSI.sub("", tail).replace("\r\n", "\n").split("\n"):
        line = line.rsplit("\r", 1)[-1].rstrip()
        if line and not line.startswith("[tmuxtrain] job "):
            out.append(line)
    return out


def explain(exit_code: int | None, tail: str) -> tuple[str, list[str]]:
    """(reason, the log lines it came from) for an attempt that failed with `exit_code`,
    `tail` being its last output. The reason is empty when nothing better than the exit
    code can be said."""
    lines = _lines(tail)
    for line in reversed(lines[-20:]):
        m = CANNOT_CD.search(line)
        if m:
            return f"cannot cd to {m.group(1)}", [line]
    if exit_code == 127:
        found = [line for line in lines[-10:] if NOT_FOUND.search(line)]
        return "command not found", found[-1:]
    oom = [line for line in lines[-200:] if OOM.search(line)]
    if oom:
        return "CUDA out of memory", oom[-1:]
    if TRACEBACK in tail:
        start = max(i for i, line in enumerate(lines) if line.startswith(TRACEBACK))
        for line in reversed(lines[start:]):
            m = EXCEPTION.match(line)
            if m:
                text = m.group(1)
                return (text if len(text) <= 200 else text[:199] + "…"), lines[start:][-MAX_LINES:]
    if exit_code is not None and 128 < exit_code < 128 + 65:
        return f"killed by signal {exit_code - 128}{_signal_name(exit_code - 128)}", []
    if exit_code == 126:
        return "command not executable (permission denied?)", lines[-1:]
    return "", []


# The signals that end training jobs (the same numbers on every Linux architecture).
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
           9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}  # fmt: skip


def _signal_name(number: int) -> str:
    name = SIGNALS.get(number)
    return f" ({name})" if name else ""
