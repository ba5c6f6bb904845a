"""The one funnel to tmux: every call goes through `Tmux.cmd`.

Commands go over one control-mode connection (`tmux -C`, see `tmux_control.Control`) when
the caller connected one (the scheduler), else one `tmux` process per command (the CLI, and
the scheduler whenever the connection is down). Windows are addressed by their ids (`@12`,
`%12`), never by a name a user typed. tmux expands `#{...}` and `#(...)` in window names,
so user text is escaped (`#` -> `##`) before it reaches tmux; nothing user-provided is ever
put into a tmux format or hook.

A job's window is created, set to `remain-on-exit`, tagged with its run token (the window
option `@tmuxtrain-run`, so a restarted scheduler finds it) and piped to the log in one tmux
invocation, so even output of a job that exits at once reaches the log.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from tmuxtrain.core.reconcile import PaneInfo
from tmuxtrain.runners.tmux_control import Control, ControlLost, TmuxError
from tmuxtrain.runners.wrapper import pipe_command

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


TAG_OPTION = "@tmuxtrain-run"


@dataclass
class Starting:
    """A window being started (`Tmux.start`): its answer is not read yet."""

    job_id: int
    name: str
    script_path: str
    log_path: str
    tag: str  # the run token, set as the window's TAG_OPTION
    control: Control | None = None  # the connection the command went out on
    ticket: int = 0
    out: str = ""
    error: TmuxError | None = None


class Tmux:
    """One tmux session on one tmux server (`-L socket` or the default)."""

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
        # The size windows get while no client is attached (tmux makes it the session's
        # `default-size`): a job reads its terminal's width when it starts (tqdm does), so
        # a wide default made every progress bar wrap in a narrower terminal attached
        # later. 80x24 fits any terminal; an attached client resizes the window to its
        # own size (`window-size latest`, set on each job window in `_launch_argv`).
        args = ["new-session", "-d", "-s", self.session, "-n", first_name, "-x", "80", "-y", "24"]
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

    def launch(
        self, job_id: int, name: str, script_path: str, log_path: str, tag: str = ""
    ) -> Launched:
        """Start a job's window at index `job_id` when free (so prefix+N finds job N).

        remain-on-exit, the tag and the log pipe are set in the same tmux call as the
        window, so nothing the job does can come before them.
        """
        return self.finish(self.start(job_id, name, script_path, log_path, tag))

    def start(
        self, job_id: int, name: str, script_path: str, log_path: str, tag: str = ""
    ) -> Starting:
        """`launch` in two halves: over the control connection this only sends the command,
        so tmux creates this window while the caller prepares the next; `finish` (called in
        the same order) waits for it. Without the connection it does all the work."""
        s = Starting(job_id, name, script_path, log_path, tag)
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
                found = self.find_tagged(s.tag) if s.tag else None
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
        # The terminal that attaches sets the size, whatever the user's tmux.conf says.
        argv += [";", "set-option", "-w", "-t", target, "window-size", "latest"]
        if s.tag:
            argv += [";", "set-option", "-w", "-t", target, TAG_OPTION, s.tag]
        argv += [";", "pipe-pane", "-t", target, "-o"]
        argv.append(tmux_literal(pipe_command(s.log_path)))
        return argv

    def find_tagged(self, tag: str) -> Launched | None:
        """The window of our session tagged with this run token (a job's window, when the
        answer that would have named it was lost, or after a scheduler restart)."""
        fmt = f"#{{{TAG_OPTION}}}\t#{{window_id}}\t#{{pane_id}}\t#{{pane_pid}}"
        try:
            out = self.cmd("list-windows", "-t", f"={self.session}:", "-F", fmt)
        except TmuxError:
            return None
        for line in out.splitlines():
            row = line.split("\t")
            if len(row) == 4 and row[0] == tag and row[3].isdigit():
                return Launched(row[1], row[2], int(row[3]))
        return None

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
