"""Run jobs as tmux windows. The one funnel to tmux: every call goes through `TmuxRunner.cmd`.

A job's window runs a generated wrapper script as its own argv (never typed in with
send-keys): the wrapper swaps in the job's environment, enters its folder, runs the command
with `/bin/sh -c` as a child so the terminal stays a tty, then records the exit status in a
file (durable even if tmux dies), nudges the scheduler and stays until the window is closed,
so tmux reads every last byte the job wrote. The window is created, set to `remain-on-exit`
and piped to the log in one tmux invocation, so even output of a job that exits at once
reaches the log. Windows are addressed by their ids (`@12`, `%12`).

tmux expands `#{...}` and `#(...)` in window names, so user text is escaped (`#` -> `##`)
before it reaches tmux; nothing user-provided is ever put into a tmux format or hook.

The scheduler talks to tmux over one control-mode connection (`tmux -C`, see `Control`):
a tmux client process per command would cost ~2 ms of CPU each, as much as the pane's own
start. Other callers (the CLI) run one `tmux` process per command, and so does the
scheduler whenever the connection is down.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from tmuxtrain.core.reconcile import PaneInfo

PANE_FORMAT = "\t".join(
    f"#{{{f}}}"
    for f in [
        "session_name",
        "pane_id",
        "window_id",
        "pane_dead",
        "pane_dead_status",
        "pane_dead_signal",
        "pane_pid",
    ]
)


class TmuxError(Exception):
    """tmux refused a command; the message is tmux's own."""


def tmux_literal(text: str) -> str:
    """Escape text for a place where tmux expands formats (window names)."""
    return text.replace("#", "##")


def window_name(job_id: int, name: str) -> str:
    clean = " ".join(name.split())  # no newlines or tabs in a window name
    return f"{job_id}-{clean}"[:120]


def parse_panes(text: str, session: str) -> dict[str, PaneInfo]:
    """`list-panes -a -F PANE_FORMAT` output -> panes of our session by pane id. Pure."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 7 or parts[0] != session:
            continue
        _, pane, window, dead, status, signal, pid = parts
        out[pane] = PaneInfo(
            pane_id=pane,
            window_id=window,
            dead=dead == "1",
            dead_status=int(status) if status.lstrip("-").isdigit() else None,
            dead_signal=int(signal) if signal.isdigit() else None,
            pid=int(pid) if pid.isdigit() else None,
        )
    return out


@dataclass(frozen=True)
class Launched:
    window_id: str
    pane_id: str
    pid: int


@dataclass
class Starting:
    """A window being started (`TmuxRunner.start`): its answer is not read yet."""

    job_id: int
    name: str
    script_path: str
    log_path: str
    control: Control | None = None  # the connection the command went out on
    ticket: int = 0
    out: str = ""
    error: TmuxError | None = None


# What a pane keeps of tmux's environment: the terminal it is in.
PANE_VARIABLES = frozenset({"TERM", "TMUX", "TMUX_PANE"})
# Names tmux 3.2-3.4 set in a new pane besides those and its global and session environment.
TMUX_ADDS = frozenset({"SHELL", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "PWD", "PATH"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names a shell may refuse to unset (bash, where it is /bin/sh, makes these read-only).
_READ_ONLY = frozenset({"SHELLOPTS", "BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "UID"})


STATUS_MARK = "# tmuxtrain status"


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
        f"printf '\\033[2m[tmuxtrain] job {job_id} attempt {attempt} in %s\\033[0m\\n' {q(cwd)}",
        f"if cd {q(cwd)}; then",
        # The command is a foreground child, so Ctrl-C reaches it and the wrapper outlives it
        # to record its status. INT and TERM get a handler (not "ignore", which the child
        # would inherit); HUP keeps its default so closing the window ends wrapper and job.
        "  trap ':' INT TERM",
        f"  /bin/sh -c {q(command)}",
        "  code=$?",
        "else",
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


def command_line(args: Sequence[str]) -> str | None:
    """argv -> one line of tmux command syntax (for control mode); None when an argument
    cannot be written on one line. A bare ";" stays the command separator it is in argv."""
    if any("\n" in a or "\r" in a for a in args):
        return None
    return " ".join(a if a == ";" else "'" + a.replace("'", "'\\''") + "'" for a in args)


class ControlLost(Exception):
    """The control-mode connection ended or stopped answering. `sent`: the command had
    been sent, so whether tmux ran it is unknown."""

    def __init__(self, message: str, *, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class Control:
    """A tmux control-mode client attached to our session: commands go in as lines on its
    stdin; each command of a line is answered by a `%begin`/`%end` (or `%error`) block on
    its stdout, in the order sent. `send` returns a ticket at once and `receive` waits for
    its answer, so a caller can send the next command while tmux works on this one. Used
    from one thread only (the scheduler's).

    A thread reads stdout all the time, so tmux's notifications (windows added and closed)
    never fill the pipe. With `on_dead`, a subscription to `#{pane_dead}` of every pane calls
    it (from that thread) when a pane dies: tmux checks subscriptions once a second, so a
    job whose wrapper was killed is noticed without a `run-shell` fork per job.
    """

    SUBSCRIPTION = "tmuxtrain-dead"
    TIMEOUT_S = 30.0

    def __init__(
        self,
        base: list[str],
        session: str,
        on_dead: Callable[[], None] | None = None,
        on_answer: Callable[[], None] | None = None,
    ) -> None:
        # -E: attaching must not copy the scheduler's (stale) DISPLAY, SSH_AUTH_SOCK ... into
        # the session, as a user's `attach` would (update-environment).
        argv = [*base, "-C", "attach-session", "-E", "-t", f"={session}"]
        self.proc = subprocess.Popen(
            [*argv, "-f", "no-output,ignore-size"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the scheduler must not end it
        )
        self.session = session
        self.on_dead = on_dead
        self.replies: queue.Queue[tuple[bool, str] | None] = queue.Queue()
        self.broken = False  # no answer can be trusted any more: EOF, a timeout, moved away
        self.sent = 0  # tickets handed out
        self.waiting: deque[tuple[int, int, str]] = deque()  # (ticket, blocks, command)
        self.answers: dict[int, str | TmuxError] = {}
        self.partial: list[str] = []  # blocks of the oldest waiting line's answer so far
        self.unwanted: set[int] = set()  # tickets whose answers are dropped (`discard`)
        # Called from the reader thread when an answer block comes while this is True:
        # a caller that does not wait for answers (`ready`) learns that one may be there.
        self.on_answer = on_answer
        self.wake_on_answer = False
        self.attached = threading.Event()  # commands sent before it would run detached
        self.reader = threading.Thread(target=self._read, name="tmux-control", daemon=True)
        self.reader.start()
        try:
            if not self.attached.wait(self.TIMEOUT_S) or not self.alive:
                raise ControlLost("could not attach")
            if self.run(["display-message", "-p", "tmuxtrain"]) != "tmuxtrain\n":
                raise ControlLost("unexpected answer")
            if on_dead is not None:
                self.run(["refresh-client", "-B", f"{self.SUBSCRIPTION}:%*:#{{pane_dead}}"])
        except (ControlLost, TmuxError):
            self.close()
            raise ControlLost("tmux control mode is not available") from None

    @property
    def alive(self) -> bool:
        return not self.broken and self.proc.poll() is None

    def run(self, args: Sequence[str]) -> str:
        """Run one command line; its output, or TmuxError with tmux's message."""
        return self.receive(self.send(args))

    def send(self, args: Sequence[str]) -> int:
        """Send a command line without waiting; the ticket to `receive` its answer with."""
        line = command_line(args)
        if line is None:
            raise ControlLost("not expressible on one line")
        if self.broken:
            raise ControlLost("tmux control connection broken")
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.broken = True
            raise ControlLost("tmux control client gone") from None
        self.sent += 1
        # One block per command of the line, until the first error (tmux skips the rest).
        self.waiting.append((self.sent, 1 + sum(a == ";" for a in args), args[0]))
        return self.sent

    def receive(self, ticket: int) -> str:
        """The output of a sent command line (answers to earlier tickets are kept)."""
        while ticket not in self.answers:
            if not self.waiting:
                raise ValueError(f"no command sent with ticket {ticket}")
            try:
                self._collect(wait=True)
            except ControlLost as e:
                raise ControlLost(str(e), sent=True) from None
        answer = self.answers.pop(ticket)
        if isinstance(answer, TmuxError):
            raise answer
        return answer

    def ready(self, ticket: int) -> bool:
        """Whether `receive(ticket)` would return (or raise) without waiting."""
        try:
            while ticket not in self.answers and self.waiting and self._collect(wait=False):
                pass
        except ControlLost:
            return True  # receive raises at once
        return ticket in self.answers or not self.waiting

    def pump(self) -> None:
        """Take every answer that has come, without waiting (dropping unwanted ones), so
        answers nobody asks for never pile up."""
        with contextlib.suppress(ControlLost):
            while self.waiting and self._collect(wait=False):
                pass

    def discard(self, ticket: int) -> None:
        """Nobody will `receive` this ticket: its answer is dropped when it comes."""
        if self.answers.pop(ticket, None) is None:
            self.unwanted.add(ticket)

    def _collect(self, *, wait: bool) -> bool:
        """Move the oldest waiting line's whole answer into `answers`; False (only when not
        `wait`) while some of its blocks have not come."""
        t, blocks, command = self.waiting[0]
        answer: str | TmuxError | None = None
        while answer is None:
            reply = self._reply(wait)
            if reply is None:
                return False
            ok, text = reply
            if not ok:  # tmux skips the rest of the line
                answer = TmuxError(text.strip() or f"tmux {command} failed")
            else:
                self.partial.append(text)
                if len(self.partial) == blocks:
                    answer = "".join(self.partial)
        self.waiting.popleft()
        self.partial = []
        if t in self.unwanted:
            self.unwanted.discard(t)
        else:
            self.answers[t] = answer
        return True

    def _reply(self, wait: bool = True) -> tuple[bool, str] | None:
        """The next answer block (None when not `wait` and none is there). Once one is
        missing, none after it can be matched to its command: the connection is broken
        for good (the caller falls back or reconnects)."""
        if self.broken:
            raise ControlLost("tmux control connection broken")
        try:
            reply = self.replies.get(timeout=self.TIMEOUT_S) if wait else self.replies.get_nowait()
        except queue.Empty:
            if not wait:
                return None
            self.broken = True
            self.close()
            raise ControlLost("tmux did not answer") from None
        if reply is None:
            self.broken = True
            raise ControlLost("tmux control client exited")
        return reply

    def _read(self) -> None:
        """Answers to the queue, notifications acted on or dropped. Only blocks flagged 1
        answer our commands: a hook's commands (say an `after-new-window` hook in the
        user's config) print blocks flagged 0 on this connection too."""
        stdout = self.proc.stdout
        assert stdout is not None
        block: list[str] | None = None
        tag = ""
        for raw in stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if block is None:  # between blocks: a notification
                if line.startswith("%begin "):
                    block, tag = [], line[len("%begin ") :]
                elif line.startswith(f"%subscription-changed {self.SUBSCRIPTION} "):
                    if line.endswith(" : 1") and self.on_dead is not None:
                        self.on_dead()
                elif line.startswith("%session-changed "):
                    if line.split(" ", 2)[2:] == [self.session]:
                        self.attached.set()
                    else:
                        self.broken = True  # our session is gone and tmux moved us on
            elif line in (f"%end {tag}", f"%error {tag}"):
                if tag.endswith(" 1"):
                    self.replies.put(("%end" in line, "".join(x + "\n" for x in block)))
                    if self.wake_on_answer and self.on_answer is not None:
                        self.on_answer()
                block = None
            else:
                block.append(line)
        self.attached.set()  # nobody waits for an attach that will not come
        self.replies.put(None)  # after the answers that came before the end: still valid

    def close(self) -> None:
        """End the client (closing its stdin detaches it); the session and jobs stay. Waits
        for the reader thread, so `on_dead` is never called after this returns."""
        self.broken = True
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.reader is not threading.current_thread():
            self.reader.join(timeout=5)


class TmuxRunner:
    """Jobs as windows of one tmux session on one tmux server (`-L socket` or the default)."""

    def __init__(self, socket: str | None, session: str) -> None:
        self.socket = socket
        self.session = session
        self.base = ["tmux"] + (["-L", socket] if socket else [])
        self.control: Control | None = None
        self._names_query: tuple[Control, int] | None = None  # see ask_inherited_names
        self._closing: list[tuple[Control, int, str]] = []  # windows closed, not answered

    def connect(
        self,
        on_dead: Callable[[], None] | None = None,
        on_answer: Callable[[], None] | None = None,
    ) -> bool:
        """Send commands over a control-mode connection from now on (the scheduler does);
        True when it is up. Without one (tmux older than 3.2, or the session is gone),
        every command runs its own tmux process, as before."""
        if self.control is not None and self.control.alive:
            return True
        self.disconnect()
        try:
            self.control = Control(self.base, self.session, on_dead, on_answer)
        except (ControlLost, OSError):
            return False
        return True

    def disconnect(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None

    def cmd(self, *args: str, check: bool = True, again: bool = True) -> str:
        """Run one tmux command line (several commands may be joined by ';' arguments).

        When the control connection breaks after the line was sent, the command runs again
        as a tmux process, unless `again` is False (a command that must not run twice, such
        as creating a window): then TmuxError.
        """
        if self.control is not None:
            try:
                return self.control.run(args)
            except TmuxError:
                if check:
                    raise
                return ""
            except ControlLost as e:
                self._lost()
                if e.sent and not again:
                    raise TmuxError(f"lost the tmux connection during {args[0]}") from None
        # tmux reads an argument ending in ";" as the end of a command ("\\;" for a literal).
        argv = [a if a == ";" or not a.endswith(";") else a[:-1] + "\\;" for a in args]
        proc = subprocess.run(
            [*self.base, *argv], capture_output=True, text=True, errors="replace", check=False
        )
        if check and proc.returncode != 0:
            raise TmuxError((proc.stderr or proc.stdout).strip() or f"tmux {args[0]} failed")
        return proc.stdout

    def _lost(self) -> None:
        if self.control is not None and not self.control.alive:
            self.control = None

    def ok(self, *args: str) -> bool:
        """Run a command for its exit status alone."""
        try:
            self.cmd(*args)
        except TmuxError:
            return False
        return True

    def has_session(self) -> bool:
        return self.ok("has-session", "-t", f"={self.session}")

    def socket_path(self) -> str | None:
        try:
            return self.cmd(
                "display-message", "-p", "-t", f"={self.session}:", "#{socket_path}"
            ).strip()
        except TmuxError:
            return None

    def ensure_session(
        self, first_argv: list[str] | None = None, first_name: str = "scheduler"
    ) -> bool:
        """Create the session when it is missing (with `first_argv` as its first window).

        Returns True when it created the session. A finished job's window stays (dead) until
        the scheduler trims it, so the session outlives its jobs.
        """
        if self.has_session():
            return False
        args = ["new-session", "-d", "-s", self.session, "-n", first_name, "-x", "200", "-y", "50"]
        if first_argv:
            args += ["--", *first_argv]
        try:
            self.cmd(*args)
        except TmuxError as e:
            if "duplicate session" not in str(e):
                raise
            return False
        return True

    def new_window(self, name: str, argv: list[str], *, remain: bool = True) -> Launched:
        target = f"={self.session}:"
        out = self.cmd(
            "new-window",
            "-d",
            "-t",
            target,
            "-n",
            tmux_literal(name),
            "-P",
            "-F",
            "#{window_id}\t#{pane_id}\t#{pane_pid}",
            "--",
            *argv,
        )
        window, pane, pid = out.strip().split("\t")
        if remain:
            self.cmd("set-option", "-w", "-t", window, "remain-on-exit", "on", check=False)
        return Launched(window, pane, int(pid))

    def _environment_argv(self) -> list[str]:
        return ["show-environment", "-g", ";", "show-environment", "-t", f"={self.session}"]

    @staticmethod
    def _names(text: str) -> set[str]:
        # "NAME=value", or "-NAME" (marked removed). A value with a newline may make a
        # line look like another name: unsetting one name too many does no harm.
        return {line.lstrip("-").split("=", 1)[0] for line in text.splitlines() if line}

    def inherited_names(self) -> set[str] | None:
        """Names in tmux's global and our session's environment: what a new pane of the
        session inherits (see `wrapper_script`); None when tmux does not say. The answer
        to `ask_inherited_names` when one was asked, else asked now."""
        query, self._names_query = self._names_query, None
        if query is not None and query[0] is self.control:
            try:
                return self._names(query[0].receive(query[1]))
            except (TmuxError, ControlLost):
                self._lost()  # ask the other way below
        try:
            return self._names(self.cmd(*self._environment_argv()))
        except TmuxError:
            return None

    def ask_inherited_names(self) -> None:
        """Send the question of `inherited_names` now and read the answer then: tmux
        answers in order, after the windows it is still making, while the caller works."""
        if self.control is not None and self._names_query is None:
            with contextlib.suppress(ControlLost):
                self._names_query = (self.control, self.control.send(self._environment_argv()))

    def drop_inherited_names(self) -> None:
        """Forget an asked question: its answer would be stale by the next launch."""
        query, self._names_query = self._names_query, None
        if query is not None and query[0] is self.control:
            query[0].discard(query[1])

    def launch(self, job_id: int, name: str, script_path: str, log_path: str) -> Launched:
        """Start a job's window at index `job_id` when free (so prefix+N finds job N).

        remain-on-exit and the log pipe are set in the same tmux call as the window, so
        nothing the job does can come before them.
        """
        return self.finish(self.start(job_id, name, script_path, log_path))

    def start(self, job_id: int, name: str, script_path: str, log_path: str) -> Starting:
        """`launch` in two halves: over the control connection this only sends the command,
        so tmux creates this window while the caller prepares the next; `finish` (called in
        the same order) waits for it. Without the connection it does all the work."""
        s = Starting(job_id, name, script_path, log_path)
        if self.control is not None:
            try:
                s.ticket = self.control.send(self._launch_argv(s, job_id))
                s.control = self.control
                return s
            except ControlLost:  # not sent: start it the other way
                self._lost()
        try:
            s.out = self.cmd(*self._launch_argv(s, job_id), again=False)
        except TmuxError as e:
            s.error = e
        return s

    def ready(self, s: Starting) -> bool:
        """Whether `finish(s)` would return (or raise) without waiting for tmux."""
        return s.control is None or s.control.ready(s.ticket)

    def wake_on_answers(self, on: bool) -> None:
        """While on, every answer from tmux calls `connect`'s `on_answer` (from the
        connection's thread): for a caller that polls `ready` instead of waiting."""
        if self.control is not None:
            self.control.wake_on_answer = on

    def finish(self, s: Starting) -> Launched:
        """The started window's ids, or TmuxError."""
        if s.control is not None:
            try:
                s.out = s.control.receive(s.ticket)
            except TmuxError as e:
                s.error = e
            except ControlLost:
                self._lost()  # tmux may have made the window: look for it before giving up
                found = self.find_window(window_name(s.job_id, s.name))
                if found is None:
                    raise TmuxError(
                        "lost the tmux connection while it started the window"
                    ) from None
                return found
        index = s.job_id
        while s.error is not None:
            if "in use" not in str(s.error):
                raise s.error
            index += 100_000  # the user has a window there: take one far above
            s.error = None
            try:
                s.out = self.cmd(*self._launch_argv(s, index), again=False)
            except TmuxError as e:
                s.error = e
        window, pane, pid = s.out.strip().splitlines()[0].split("\t")
        return Launched(window, pane, int(pid))

    def _launch_argv(self, s: Starting, index: int) -> list[str]:
        target = f"={self.session}:{index}"
        argv = ["new-window", "-d", "-t", target, "-n", tmux_literal(window_name(s.job_id, s.name))]
        argv += ["-P", "-F", "#{window_id}\t#{pane_id}\t#{pane_pid}", "--"]
        argv += ["/bin/sh", s.script_path]
        argv += [";", "set-option", "-w", "-t", target, "remain-on-exit", "on"]
        argv += [";", "pipe-pane", "-t", target, "-o"]
        argv.append(tmux_literal(f"exec cat >> {shlex.quote(s.log_path)}"))
        return argv

    def find_window(self, name: str) -> Launched | None:
        """The newest window of our session with this name (a job's window, when the answer
        that would have named it was lost)."""
        fmt = "#{window_name}\t#{window_id}\t#{pane_id}\t#{pane_pid}"
        try:
            out = self.cmd("list-windows", "-t", f"={self.session}:", "-F", fmt)
        except TmuxError:
            return None
        rows = [line.split("\t") for line in out.splitlines()]
        mine = [r for r in rows if len(r) == 4 and r[0] == name and r[3].isdigit()]
        if not mine:
            return None
        _, window, pane, pid = max(mine, key=lambda r: int(r[1].lstrip("@") or 0))
        return Launched(window, pane, int(pid))

    def panes(self) -> dict[str, PaneInfo]:
        """All panes of our session in one call (about 4 ms for 400 panes)."""
        try:
            return parse_panes(self.cmd("list-panes", "-a", "-F", PANE_FORMAT), self.session)
        except TmuxError:
            return {}

    def interrupt(self, pane_id: str) -> None:
        """Ctrl-C, as if typed: the foreground process group gets SIGINT."""
        self.cmd("send-keys", "-t", pane_id, "C-c", check=False, again=False)  # not twice

    def kill_window(self, window_id: str) -> None:
        self.kill_windows([window_id])

    def kill_windows(self, window_ids: list[str]) -> None:
        """Close windows by id; ids already gone are skipped. Over the control connection
        nothing waits for tmux (`pump` reads the answers later, and sends a close again
        when its connection broke first); else one tmux call for all."""
        control = self.control
        if control is not None:
            try:
                for w in window_ids:  # a line each: one that is gone fails alone
                    self._closing.append((control, control.send(["kill-window", "-t", w]), w))
                return
            except ControlLost:
                self._lost()  # those not sent yet go the other way, those sent again: no harm
        argv: list[str] = []
        for w in window_ids:
            argv += [";", "kill-window", "-t", w] if argv else ["kill-window", "-t", w]
        # tmux stops a command list at the first error: then kill them one by one.
        if argv and not self.ok(*argv):
            for w in window_ids:
                self.cmd("kill-window", "-t", w, check=False)

    def pump(self) -> None:
        """Read the answers that came for commands nobody waits on; a window close whose
        connection broke before tmux answered it is sent again (another way, if need be)."""
        if self.control is not None:
            self.control.pump()
        again, waiting = [], []
        for control, ticket, window in self._closing:
            if not control.ready(ticket):
                waiting.append((control, ticket, window))
                continue
            try:
                control.receive(ticket)
            except TmuxError:
                pass  # already gone
            except ControlLost:
                again.append(window)
        self._closing = waiting
        if again:
            self._lost()
            self.kill_windows(again)

    def capture(self, pane_id: str, lines: int = 200) -> str:
        return self.cmd("capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{lines}", check=False)

    def attach_argv(self, window_id: str) -> list[str]:
        """The command that takes the user's terminal to a window: switch-client inside tmux
        on this server (the usual keys lead back), attach-session outside."""
        inside = os.environ.get("TMUX", "")
        mine = self.socket_path()
        select = [*self.base, "select-window", "-t", window_id, ";"]
        if inside and mine and inside.split(",")[0] == mine:
            return [*select, "switch-client", "-t", f"={self.session}"]
        env = ["env", "-u", "TMUX"] if inside else []  # inside another server: nest
        return [*env, *select, "attach-session", "-t", f"={self.session}"]
