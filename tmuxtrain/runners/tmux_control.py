"""A tmux control-mode client (`tmux -C`): the scheduler's one connection to tmux.

A tmux client process per command would cost ~2 ms of CPU each, as much as the pane's own
start; over one control connection a command costs a line written and a block read.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence


class TmuxError(Exception):
    """tmux refused a command; the message is tmux's own."""


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
        if not self.broken and self.on_dead is not None:
            self.on_dead()  # tmux itself went away: every pane with it

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
