"""The wrapper script a job's window runs, and how its recorded status is read back.

The wrapper swaps in the job's environment, enters its folder, runs the command with
`/bin/sh -c` as a child so the terminal stays a tty, then appends the exit status to
itself (durable even if tmux dies; its mtime is when the job ended), nudges the scheduler
and stays until the window is closed, so tmux reads every last byte the job wrote.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Collection, Mapping

# What a pane keeps of tmux's environment: the terminal it is in.
PANE_VARIABLES = frozenset({"TERM", "TMUX", "TMUX_PANE"})
# Names tmux 3.2-3.4 set in a new pane besides those and its global and session environment.
TMUX_ADDS = frozenset({"SHELL", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "PWD", "PATH"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names a shell may refuse to unset (bash, where it is /bin/sh, makes these read-only).
_READ_ONLY = frozenset({"SHELLOPTS", "BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "UID"})


STATUS_MARK = "# tmuxtrain status"
# The line the log pipe writes where output was lost, once it can write again.
LOST_MARK = "[tmuxtrain] log incomplete: no space left"


def pipe_command(log_path: str) -> str:
    """The shell line tmux's `pipe-pane` runs to copy a pane's output to its log.

    `cat` ends at the first write that fails (a full disk): what it held is lost, and with
    a plain `exec cat` every later byte of the job would be too. Instead the output read
    meanwhile is dropped a chunk at a time until a line saying so can be written (space
    is back), and a new `cat` carries on; at the end of the output (the window closed),
    it stops. A job's log so says where it has a hole, and the scheduler notes the job.
    """
    log = shlex.quote(log_path)
    # No `%` (tmux expands strftime escapes in this line) and no `#` (formats).
    mark = shlex.quote(f"{LOST_MARK} (output lost here)")
    return (
        f"until cat >> {log}; do"
        f" until {{ echo; echo {mark}; }} >> {log};"
        ' do [ "$(dd bs=65536 count=1 2>/dev/null | wc -c)" -gt 0 ] || exit 0; done;'
        " done 2>/dev/null"
    )


def read_status(path: str, attempt: int) -> int | None:
    """The exit status `attempt` recorded in `path` (the wrapper appends `STATUS_MARK
    attempt code`), or None when there is none yet: a line without its newline is still
    being written."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64))
            tail = f.read().decode("ascii", "replace")
    except OSError:
        return None
    mark = f"\n{STATUS_MARK} {attempt} "
    at = ("\n" + tail).rfind(mark)
    if at < 0 or not tail.endswith("\n"):
        return None
    try:
        return int(("\n" + tail)[at + len(mark) :].split("\n", 1)[0])
    except ValueError:
        return None


def start_banner(job_id: int, attempt: int) -> str:
    """The words of a job's first output line: once in the log, the attempt ran."""
    return f"job {job_id} attempt {attempt} in "


def exit_banner(job_id: int, attempt: int) -> str:
    """The words of a job's last output line, after which the wrapper writes nothing."""
    return f"job {job_id} attempt {attempt} exited with status"


def wrapper_script(
    *,
    job_id: int,
    attempt: int,
    command: str,
    cwd: str,
    env: Mapping[str, str],
    status_path: str,
    nudge_path: str,
    inherited: Collection[str] | None = None,
    hold_path: str | None = None,
) -> str:
    """The shell script a job's window runs. Every user value is single-quoted by shlex.

    A job sees its own environment, never what the tmux server happens to hold. When the
    caller knows the names a pane inherits from tmux (`inherited`, see
    `TmuxRunner.inherited_names`), the script unsets them; otherwise (or when a name is no
    shell name, or one a shell may refuse to unset) it re-runs itself under `env -i`, which
    costs two more program starts.

    With `hold_path` (a fifo nobody writes to) the wrapper stays, once the status is
    recorded, until its window is closed: tmux closes a dead pane's terminal as soon as it
    sees no output waiting, and output the kernel had not passed on yet (under load, a job's
    whole last lines) was lost. What the job left in the background still gets the hangup
    it got when the wrapper exited at once.
    """
    q = shlex.quote
    lines = [f"# tmuxtrain job {job_id}, attempt {attempt}: written by the scheduler"]
    drop = sorted((set(inherited) | TMUX_ADDS) - PANE_VARIABLES) if inherited is not None else None
    if drop is not None and all(_NAME.match(n) and n not in _READ_ONLY for n in drop):
        lines.append(f"unset {' '.join(drop)}" if drop else ":")
    else:
        lines += [
            # Stage 1 has tmux's environment; re-run with only the pane's terminal variables.
            'if [ -z "${TMUXTRAIN_WRAPPED:-}" ]; then',
            '  exec /usr/bin/env -i TMUXTRAIN_WRAPPED=1 TERM="${TERM:-screen}" TMUX="${TMUX:-}" '
            'TMUX_PANE="${TMUX_PANE:-}" /bin/sh "$0"',
            "fi",
            "unset TMUXTRAIN_WRAPPED",
        ]
    lines += [f"export {k}={q(v)}" for k, v in sorted(env.items())]
    lines += [
        f"printf '\\033[2m[tmuxtrain] {start_banner(job_id, attempt)}%s\\033[0m\\n' {q(cwd)}",
        f"if cd {q(cwd)}; then",
        # The command is a foreground child, so Ctrl-C reaches it and the wrapper outlives it
        # to record its status. INT and TERM get a handler (not "ignore", which the child
        # would inherit); HUP keeps its default so closing the window ends wrapper and job.
        "  trap ':' INT TERM",
        f"  /bin/sh -c {q(command)}",
        "  code=$?",
        "else",
        f"  printf '[tmuxtrain] cannot cd to %s\\n' {q(cwd)}",
        "  code=126",
        "fi",
        # The terminal's hangup, which the job's group got when the wrapper (the session
        # leader) exited at once: what the job left in the background ends with it. Only
        # to the wrapper's own group (`-$$`: none unless it leads one, as in a pane).
        "trap '' HUP; kill -HUP -$$ 2>/dev/null; trap - HUP",
        # The last line of the job's output: once it is in the log, all the job printed
        # is (the scheduler reads its final metrics then; see exit_banner).
        f"printf '\\033[2m[tmuxtrain] {exit_banner(job_id, attempt)} %s\\033[0m\\n' \"$code\"",
        # One small append (the scheduler's status file is this script: no file to create
        # per job; a line after `exit` is never run, and it is a comment). When it fails (a
        # full disk), the wrapper exits at once: tmux's dead-pane status is then the record.
        f"if printf '{STATUS_MARK} {attempt} %s\\n' \"$code\" >> {q(status_path)}; then",
        # A byte in the scheduler's fifo wakes it; `<>` never blocks, and a failed
        # redirection of a plain builtin fails that command only (no subshell to fork).
        f"  printf x 2>/dev/null 1<>{q(nudge_path)} || :",
    ]
    if hold_path is not None:
        # Opening a fifo nobody writes blocks until the window's hangup ends the wrapper
        # (or Ctrl-C in the window); nothing is read from the terminal. `true`, not `:`: a
        # failed redirection of a special builtin would end the shell with status 2.
        lines.append(f"  true 2>/dev/null <{q(hold_path)}")
    lines += [
        "fi",
        'exit "$code"',
    ]
    return "\n".join(lines) + "\n"
