"""The tmux runner against a real, private tmux server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import kill_tmux_server, wait_until
from tmuxtrain.runners.tmux import Launched, Tmux, parse_panes, tmux_literal, window_name
from tmuxtrain.runners.tmux_control import TmuxError, command_line
from tmuxtrain.runners.wrapper import read_status, wrapper_script


def test_parse_panes_keeps_our_session_only() -> None:
    text = (
        "tmuxtrain\t%1\t@1\t0\t\t\t100\n"
        "tmuxtrain\t%2\t@2\t1\t3\t\t101\n"
        "tmuxtrain\t%3\t@3\t1\t\t9\t102\n"
        "other\t%4\t@4\t0\t\t\t103\n"
        "garbage line\n"
    )
    panes = parse_panes(text, "tmuxtrain")
    assert set(panes) == {"%1", "%2", "%3"}
    assert (panes["%1"].dead, panes["%1"].pid) == (False, 100)
    assert (panes["%2"].dead, panes["%2"].dead_status) == (True, 3)
    assert (panes["%3"].dead_status, panes["%3"].dead_signal) == (None, 9)


def test_names_are_escaped_for_tmux_and_kept_on_one_line() -> None:
    assert tmux_literal("a#{b}#(c)") == "a##{b}##(c)"
    assert window_name(7, "multi\nline\tname") == "7-multi line name"


@contextlib.contextmanager
def private_runner(*, session: bool = True) -> Iterator[Tmux]:
    """A runner on a private tmux server (with our session unless told not); both end after."""
    r = Tmux(f"tmuxtrain-rt-{uuid.uuid4().hex[:8]}", "tmuxtrain")
    if session:
        r.ensure_session(["sleep", "600"])
    try:
        yield r
    finally:
        r.disconnect()
        kill_tmux_server(r.socket or "")


@pytest.fixture(params=["process", "control"])
def runner(request: pytest.FixtureRequest) -> Iterator[Tmux]:
    """A runner on a private server, sending commands the CLI's way (a tmux process per
    command) or the scheduler's (one control-mode connection): both must behave alike."""
    with private_runner() as r:
        if request.param == "control":
            assert r.connect()
        yield r


def launch(runner: Tmux, tmp: Path, job_id: int, command: str, cwd: Path) -> tuple[Path, Path]:
    status, log, _ = launch_full(runner, tmp, job_id, command, cwd)
    return status, log


def launch_full(
    runner: Tmux,
    tmp: Path,
    job_id: int,
    command: str,
    cwd: Path,
    status: Path | None = None,
) -> tuple[Path, Path, Launched]:
    """A job's window as the scheduler starts it (with its hold fifo)."""
    status = status or tmp / f"{job_id}.status"
    log = tmp / "lo#gs" / f"{job_id}.log"
    log.parent.mkdir(exist_ok=True)
    hold = tmp / "hold.fifo"
    if not hold.exists():
        os.mkfifo(hold)
    script = tmp / f"{job_id}.sh"
    script.write_text(
        wrapper_script(
            job_id=job_id, attempt=1, command=command, cwd=str(cwd),
            env={"PATH": "/usr/bin:/bin", "ODD": "it's $(not) run"}, status_path=str(status),
            nudge_path=str(tmp / "nudge"), hold_path=str(hold),
        )
    )  # fmt: skip
    return status, log, runner.launch(job_id, "job", str(script), str(log))


def test_launch_records_status_and_logs_even_instant_exits(runner: Tmux, tmp_path: Path) -> None:
    odd = tmp_path / "dir with 'quote' and #"
    odd.mkdir()
    results = [
        launch(runner, tmp_path, i, f'printf "%s|%s\\n" "$ODD" "$(pwd)"; exit {i}', odd)
        for i in range(1, 21)
    ]
    for i, (status, log) in enumerate(results, 1):
        # The wrapper writes its status in one small write; a reader may see the file
        # created and still empty (the scheduler's read_status retries the same way).
        wait_until(partial(lambda s: recorded(s) is not None, status), what=f"status {i}")
        assert recorded(status) == i

        def logged(log: Path = log) -> bool:
            return f"it's $(not) run|{odd}" in (log.read_text() if log.exists() else "")

        wait_until(logged, what=f"log of {i}")
    # Each wrapper stays until its window is closed: tmux closes a dead pane's terminal
    # as soon as it sees nothing waiting, which loses output the kernel has not passed on
    # yet (under load, a job's whole last lines).
    panes = runner.panes()
    assert len(panes) == 21 and not any(p.dead for p in panes.values())


def test_window_index_is_the_job_id_when_free(runner: Tmux, tmp_path: Path) -> None:
    launch(runner, tmp_path, 5, "sleep 5", tmp_path)
    out = runner.cmd("list-windows", "-t", "=tmuxtrain:", "-F", "#{window_index} #{window_name}")
    assert "5 5-job" in out.splitlines()
    launch(runner, tmp_path, 5, "sleep 5", tmp_path)  # index taken: another one is found
    assert len(runner.cmd("list-windows", "-t", "=tmuxtrain:").splitlines()) == 3


def test_missing_cwd_records_126(runner: Tmux, tmp_path: Path) -> None:
    status, _ = launch(runner, tmp_path, 1, "echo hi", tmp_path / "nope")
    wait_until(lambda: recorded(status) is not None)
    assert recorded(status) == 126


AWKWARD = [
    "plain",
    "",
    "it's",
    "''",
    "back\\slash \\' and \\",
    'double "quotes" and ; and \\;',
    "#{session_name} #(echo no) $HOME ~ {braces} %if",
    "-starts-with-dash",
    "ends with;",
    "ends with \\;",
    "ünïcode ✓ \t tab",
]


def test_command_line_quotes_each_argument_and_keeps_separators() -> None:
    assert command_line(["a b", ";", "it's"]) == "'a b' ; 'it'\\''s'"
    assert command_line(["two\nlines"]) is None  # control mode reads a command per line


@pytest.mark.parametrize("value", AWKWARD)
def test_arguments_reach_tmux_unchanged(runner: Tmux, value: str) -> None:
    runner.cmd("set-option", "-g", "@tmuxtrain-test", value)
    assert runner.cmd("show-options", "-gv", "@tmuxtrain-test") == value + "\n"


def test_multi_line_arguments_still_work_when_connected(runner: Tmux) -> None:
    runner.cmd("set-option", "-g", "@tmuxtrain-test", "two\nlines")
    assert runner.cmd("show-options", "-gv", "@tmuxtrain-test") == "two\nlines\n"


def test_errors_and_command_lists(runner: Tmux) -> None:
    with pytest.raises(TmuxError, match="can't find window"):
        runner.cmd("kill-window", "-t", "@999")
    assert runner.cmd("kill-window", "-t", "@999", check=False) in ("", "\n")
    # A list stops at its first error, and the next command's answer is its own.
    with pytest.raises(TmuxError):
        runner.cmd("display-message", "-p", "a", ";", "kill-window", "-t", "@999", ";",
                   "display-message", "-p", "c")  # fmt: skip
    assert runner.cmd("display-message", "-p", "a", ";", "display-message", "-p", "b") == "a\nb\n"
    assert runner.cmd("display-message", "-p", "after") == "after\n"
    assert runner.has_session()


def test_a_lost_connection_falls_back_to_a_process_per_command() -> None:
    with private_runner() as r:
        assert r.connect()
        assert r.control is not None
        os.kill(r.control.proc.pid, signal.SIGKILL)  # the client we started
        wait_until(lambda: r.control is not None and not r.control.alive, what="client gone")
        assert r.cmd("display-message", "-p", "still") == "still\n"
        assert r.control is None
        assert r.connect() and r.cmd("display-message", "-p", "again") == "again\n"
        assert r.control is not None


def test_no_session_means_no_connection() -> None:
    with private_runner(session=False) as r:
        assert not r.connect()
        assert r.control is None


def test_a_dying_pane_is_reported_over_the_connection(tmp_path: Path) -> None:
    """A wrapper killed outright records no status: only tmux knows its pane died, and the
    connection says so within about a second (tmux checks subscriptions once a second)."""
    died = threading.Event()
    script = tmp_path / "sleep.sh"
    script.write_text("sleep 600\n")
    with private_runner() as r:
        assert r.connect(died.set)
        pid = r.launch(3, "victim", str(script), str(tmp_path / "3.log")).pid
        wait_until(lambda: not r.panes() or all(not p.dead for p in r.panes().values()))
        died.clear()
        os.kill(pid, signal.SIGKILL)
        assert died.wait(5)
        assert any(p.dead and p.pid == pid for p in r.panes().values())


POLLUTED = {
    "STRAY": "from the tmux server",
    "HOME": "/stale/home",
    "PATH": "/stale/bin",
    "SHELL": "/bin/zsh",
    "TERM_PROGRAM": "tmux",
    "TERM": "tmux-256color",
    "TMUX": "/tmp/tmux-0/x,1,0",
    "TMUX_PANE": "%7",
}


def env_seen_by_job(tmp_path: Path, inherited: set[str] | None) -> dict[str, str]:
    """Run a wrapper as tmux would (with tmux's environment) and return the job's env."""
    out = tmp_path / "env.out"
    script = tmp_path / "w.sh"
    script.write_text(
        wrapper_script(
            job_id=1, attempt=1, command=f"env > {out}", cwd=str(tmp_path),
            env={"PATH": "/usr/bin:/bin", "MINE": "it's mine", "HOME": "/job/home"},
            status_path=str(tmp_path / "st"), nudge_path=str(tmp_path / "nudge"),
            inherited=inherited,
        )
    )  # fmt: skip
    subprocess.run(["/bin/sh", str(script)], env=POLLUTED, check=True, capture_output=True)
    pairs = (line.split("=", 1) for line in out.read_text().splitlines())
    return {k: v for k, v in pairs if k not in ("PWD", "OLDPWD")}  # the shell's own


@pytest.mark.parametrize(
    "inherited",
    [None, {"STRAY", "HOME", "PATH"}, {"STRAY", "HOME", "PATH", "BAD-NAME"}],
    ids=["env -i", "unset", "not a shell name: env -i"],
)
def test_a_job_sees_its_own_environment_and_its_terminal_only(
    tmp_path: Path, inherited: set[str] | None
) -> None:
    assert env_seen_by_job(tmp_path, inherited) == {
        "PATH": "/usr/bin:/bin",
        "MINE": "it's mine",
        "HOME": "/job/home",
        "TERM": "tmux-256color",
        "TMUX": "/tmp/tmux-0/x,1,0",
        "TMUX_PANE": "%7",
    }


def test_inherited_names_are_the_global_and_session_environment(runner: Tmux) -> None:
    runner.cmd("set-environment", "-g", "STRAY_GLOBAL", "1")
    runner.cmd("set-environment", "-t", "=tmuxtrain", "STRAY_SESSION", "2")
    runner.cmd("set-environment", "-t", "=tmuxtrain", "-r", "REMOVED")
    names = runner.inherited_names()
    assert names is not None
    assert {"STRAY_GLOBAL", "STRAY_SESSION", "REMOVED"} <= names


def windows_named(runner: Tmux, name: str) -> list[str]:
    out = runner.cmd("list-windows", "-t", "=tmuxtrain:", "-F", "#{window_index} #{window_name}")
    return [line.split()[0] for line in out.splitlines() if line.split()[1:] == [name]]


def test_windows_started_together_are_finished_in_order(runner: Tmux, tmp_path: Path) -> None:
    """The scheduler sends several windows before reading any answer, runs other commands in
    between, and still gets each job its own window."""
    script = tmp_path / "s.sh"
    script.write_text("sleep 30\n")
    runner.cmd("new-window", "-d", "-t", "=tmuxtrain:12", "--", "sleep", "30")  # a user's window
    starting = [
        runner.start(i, f"j{i}", str(script), str(tmp_path / f"{i}.log")) for i in (11, 12, 13)
    ]
    assert runner.cmd("display-message", "-p", "between") == "between\n"
    launched = [runner.finish(s) for s in starting]
    assert len({x.window_id for x in launched}) == 3
    assert windows_named(runner, "11-j11") == ["11"]
    assert windows_named(runner, "12-j12") == ["100012"]  # 12 was taken: one far above
    assert windows_named(runner, "13-j13") == ["13"]
    panes = runner.panes()
    assert all(panes[x.pane_id].pid == x.pid for x in launched)


def test_a_window_is_never_created_twice_when_the_connection_breaks(tmp_path: Path) -> None:
    script = tmp_path / "s.sh"
    script.write_text("sleep 30\n")
    with private_runner() as r:
        assert r.connect() and r.control is not None
        started = r.start(5, "once", str(script), str(tmp_path / "5.log"))
        control = r.control
        os.kill(control.proc.pid, signal.SIGKILL)  # the client we started
        wait_until(lambda: not control.alive, what="the client gone")
        try:
            r.finish(started)
        except TmuxError as e:  # tmux may or may not have made it: it is not made again
            assert "lost the tmux connection" in str(e)
        assert len(windows_named(r, "5-once")) <= 1
        assert r.control is None  # later commands use a tmux process each
        assert r.launch(6, "next", str(script), str(tmp_path / "6.log")).pid > 0


@pytest.fixture
def connected(tmp_path: Path) -> Iterator[Tmux]:
    """A runner with a control-mode connection, on a private server."""
    with private_runner() as r:
        assert r.connect()
        yield r


def sleeper(tmp_path: Path) -> str:
    script = tmp_path / "sleep.sh"
    script.write_text("sleep 30\n")
    return str(script)


def test_a_users_hooks_do_not_put_answers_out_of_step(connected: Tmux, tmp_path: Path) -> None:
    """A hook's commands print blocks on the connection too (flagged 0): not answers."""
    connected.cmd("set-hook", "-g", "after-new-window", "display-message -p hooked")
    launched = connected.launch(3, "hooked", sleeper(tmp_path), str(tmp_path / "3.log"))
    assert connected.cmd("display-message", "-p", "hello") == "hello\n"
    assert launched.pane_id in connected.panes()


def test_answers_that_come_too_late_are_never_given_to_another_window(
    connected: Tmux, tmp_path: Path
) -> None:
    control = connected.control
    assert control is not None
    control.TIMEOUT_S = 0.5
    server = int(connected.cmd("display-message", "-p", "#{pid}"))
    os.kill(server, signal.SIGSTOP)  # our own private server: it answers nothing for a while
    threading.Timer(1.5, os.kill, (server, signal.SIGCONT)).start()
    script = sleeper(tmp_path)
    starting = [connected.start(i, f"w{i}", script, str(tmp_path / f"{i}.log")) for i in (1, 2)]
    for s in starting:
        try:
            launched = connected.finish(s)
        except TmuxError:
            continue  # lost, and tmux had not made it: never taken for another's
        name = connected.cmd("display-message", "-p", "-t", launched.window_id, "#{window_name}")
        assert name == f"{s.job_id}-w{s.job_id}\n"
    assert connected.control is None  # a connection that lost its step is not used again


def test_windows_in_flight_when_the_client_dies_are_settled_at_once(
    connected: Tmux, tmp_path: Path
) -> None:
    control = connected.control
    assert control is not None
    script = sleeper(tmp_path)
    starting = [connected.start(i, f"w{i}", script, str(tmp_path / f"{i}.log")) for i in (1, 2, 3)]
    os.kill(control.proc.pid, signal.SIGKILL)  # the client we started
    t0 = time.monotonic()
    for s in starting:
        try:
            launched = connected.finish(s)  # its answer, or its window found by name
        except TmuxError:
            continue
        assert windows_named(connected, f"{s.job_id}-w{s.job_id}") != []
        assert launched.window_id in connected.cmd("list-windows", "-F", "#{window_id}")
    assert time.monotonic() - t0 < 5  # not a timeout per window


def test_connecting_leaves_the_sessions_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attaching would copy the scheduler's stale SSH_AUTH_SOCK and DISPLAY into the session
    (update-environment), undoing what the user's own attach set."""
    with private_runner() as r:
        r.cmd("set-environment", "-t", "=tmuxtrain", "SSH_AUTH_SOCK", "/tmp/fresh")
        monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/stale")
        assert r.connect()
        shown = r.cmd("show-environment", "-t", "=tmuxtrain", "SSH_AUTH_SOCK")
        assert shown == "SSH_AUTH_SOCK=/tmp/fresh\n"


def test_no_pane_death_is_reported_after_disconnect(connected: Tmux) -> None:
    control = connected.control
    assert control is not None
    connected.disconnect()
    assert not control.reader.is_alive()  # on_dead cannot fire into a closed fd


def test_an_answer_can_be_awaited_without_blocking(tmp_path: Path) -> None:
    """The scheduler sends a window and goes on; tmux's answer wakes it (`on_answer`) and
    `ready` says `finish` will not wait."""
    answered = threading.Event()
    with private_runner() as r:
        assert r.connect(on_answer=answered.set)
        r.wake_on_answers(True)
        started = r.start(4, "later", sleeper(tmp_path), str(tmp_path / "4.log"))
        assert answered.wait(10), "no wake-up for the answer"
        wait_until(lambda: r.ready(started), what="the answer")
        launched = r.finish(started)
        assert r.panes()[launched.pane_id].pid == launched.pid
        # Later answers still go to their own commands.
        assert r.cmd("display-message", "-p", "next") == "next\n"
        r.wake_on_answers(False)
        answered.clear()
        assert r.cmd("display-message", "-p", "quiet") == "quiet\n"
        assert not answered.is_set()


def test_a_discarded_answer_never_reaches_another_command(connected: Tmux) -> None:
    control = connected.control
    assert control is not None
    first = control.send(["display-message", "-p", "dropped"])
    failing = control.send(["kill-window", "-t", "@999"])  # an error, nobody reads it
    control.discard(first)
    control.discard(failing)
    assert control.run(["display-message", "-p", "mine"]) == "mine\n"
    late = control.send(["display-message", "-p", "late"])
    wait_until(lambda: control.ready(late), what="its answer")
    control.discard(late)  # already there: dropped at once
    assert control.run(["display-message", "-p", "again"]) == "again\n"
    assert control.answers == {} and control.unwanted == set()


def test_windows_are_closed_even_when_one_is_already_gone(runner: Tmux) -> None:
    ids = [
        runner.cmd("new-window", "-d", "-P", "-F", "#{window_id}", "-t", "=tmuxtrain:", "sleep",
                   "30").strip()
        for _ in range(2)
    ]  # fmt: skip
    runner.kill_windows([ids[0], "@999", ids[1]])

    def open_windows() -> set[str]:
        return set(runner.cmd("list-windows", "-t", "=tmuxtrain:", "-F", "#{window_id}").split())

    wait_until(lambda: not open_windows() & set(ids), what="both windows closed")


def test_names_asked_ahead_are_as_tmux_had_them_when_asked(runner: Tmux) -> None:
    runner.cmd("set-environment", "-g", "BEFORE_ASKING", "1")
    runner.ask_inherited_names()
    names = runner.inherited_names()
    assert names is not None and "BEFORE_ASKING" in names
    runner.ask_inherited_names()
    runner.drop_inherited_names()  # a tick that launched nothing
    runner.cmd("set-environment", "-g", "AFTER_DROPPING", "1")
    names = runner.inherited_names()  # asked afresh, not the dropped answer
    assert names is not None and "AFTER_DROPPING" in names
    assert runner.cmd("display-message", "-p", "in step") == "in step\n"


@pytest.mark.parametrize(
    ("command", "status", "output"),
    [
        ("exit 7", 7, ""),
        ("echo before; if then fi (", 2, ""),  # a syntax error is the command's own failure
        ("exec sh -c 'exit 5'", 5, ""),
        ('code=3; echo "set $code"', 0, "set 3"),
        ("trap", 0, ""),  # no trap of the wrapper's reaches the command
        ("kill -TERM $$; echo survived", 143, ""),  # $$ is the command's own shell
    ],
)
def test_the_command_runs_as_its_own_shell_would(
    runner: Tmux, tmp_path: Path, command: str, status: int, output: str
) -> None:
    status_path, log = launch(runner, tmp_path, 9, command, tmp_path)
    wait_until(lambda: recorded(status_path) is not None, what="status")
    assert recorded(status_path) == status
    text = wait_until(
        lambda: log.exists() and "exited with status" in log.read_text() and log.read_text(),
        what="the exit banner",
    )
    assert output in text
    assert "survived" not in text
    if command == "trap":
        body = text.split("\n", 1)[1].split("[tmuxtrain]")[0]
        assert "INT" not in body and "TERM" not in body


def test_the_command_is_a_child_of_the_wrapper(runner: Tmux, tmp_path: Path) -> None:
    """`/bin/sh -c` as the contract says: $PPID is the wrapper (the pane), not tmux."""
    _, log, launched = launch_full(runner, tmp_path, 4, 'echo "parent=$PPID"', tmp_path)
    wait_until(lambda: log.exists() and "exited with status" in log.read_text(), what="log")
    assert f"parent={launched.pid}" in log.read_text()


def test_what_a_job_leaves_in_the_background_ends_with_it(runner: Tmux, tmp_path: Path) -> None:
    """The wrapper stays for its window, but the job's leftovers get the hangup they got
    when it exited at once: they hold no GPU after their job is finished."""
    pidfile = tmp_path / "bg.pid"
    status, _, launched = launch_full(
        runner, tmp_path, 5, f"sleep 300 & echo $! > {pidfile}; echo started", tmp_path
    )
    wait_until(lambda: recorded(status) is not None, what="status")
    pid = int(pidfile.read_text())
    wait_until(lambda: not process_alive(pid), what="the background sleep to end")
    assert not runner.panes()[launched.pane_id].dead  # the wrapper still holds its window


def test_a_status_that_cannot_be_written_leaves_tmuxs_record(runner: Tmux, tmp_path: Path) -> None:
    """A full disk, say: the wrapper exits at once, and the dead pane's status is the record
    the scheduler's reconcile reads."""
    unwritable = tmp_path / "no-such-dir" / "6.status"
    _, _, launched = launch_full(runner, tmp_path, 6, "exit 3", tmp_path, status=unwritable)
    wait_until(lambda: runner.panes()[launched.pane_id].dead, what="a dead pane")
    assert settled_dead_status(runner, launched.pane_id) in (3, None)


def test_ctrl_c_in_a_finished_window_lets_it_go(runner: Tmux, tmp_path: Path) -> None:
    status, _, launched = launch_full(runner, tmp_path, 7, "true", tmp_path)
    wait_until(lambda: recorded(status) is not None, what="status")
    # Waiting for a writer on the fifo (before that, Ctrl-C only hits its INT trap).
    wait_until(lambda: waiting_on_fifo(launched.pid), what="the wrapper to wait")
    runner.cmd("send-keys", "-t", launched.pane_id, "Enter")  # typed input is not read
    time.sleep(0.2)  # a wrapper that reads the terminal would end here
    assert not runner.panes()[launched.pane_id].dead
    runner.interrupt(launched.pane_id)
    wait_until(lambda: runner.panes()[launched.pane_id].dead, what="the wrapper to end")
    # With the job's status (not 2, a shell's failed redirection).
    assert settled_dead_status(runner, launched.pane_id) in (0, None)


def test_unread_answers_never_pile_up(connected: Tmux) -> None:
    """A tick that asks tmux's environment and launches nothing drops the answer; with no
    other command to read past it, `pump` still clears it."""
    control = connected.control
    assert control is not None
    for _ in range(50):
        connected.ask_inherited_names()
        connected.drop_inherited_names()

    def cleared() -> bool:
        connected.pump()
        return not control.waiting and not control.unwanted and control.replies.empty()

    wait_until(cleared, what="the dropped answers read")


def test_a_close_lost_with_its_connection_is_sent_again(tmp_path: Path) -> None:
    with private_runner() as r:
        assert r.connect() and r.control is not None
        window = r.cmd("new-window", "-d", "-P", "-F", "#{window_id}", "-t", "=tmuxtrain:",
                       "sleep", "60").strip()  # fmt: skip
        server = int(r.cmd("display-message", "-p", "#{pid}"))
        control = r.control
        os.kill(server, signal.SIGSTOP)  # our own private server: it answers nothing now
        try:
            r.kill_windows([window])
            os.kill(control.proc.pid, signal.SIGKILL)  # the client we started
            wait_until(lambda: not control.alive, what="the client gone")
        finally:
            os.kill(server, signal.SIGCONT)

        def closed() -> bool:
            r.pump()  # each tick does: the lost close is noticed and sent again
            return window not in r.cmd("list-windows", "-t", "=tmuxtrain:", "-F", "#{window_id}")

        wait_until(closed, what="the window closed")


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def waiting_on_fifo(pid: int) -> bool:
    """The process sleeps opening a fifo (where the kernel hides wchan: it sleeps)."""
    wchan = Path(f"/proc/{pid}/wchan").read_text()
    if wchan not in ("", "0"):
        return wchan == "wait_for_partner"
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "S"


def recorded(status: Path) -> int | None:
    """The status a test job's wrapper appended to its status file (attempt 1)."""
    return read_status(str(status), 1)


def test_a_status_is_read_from_the_end_of_the_wrapper(tmp_path: Path) -> None:
    """The scheduler's status file is the wrapper script itself: the wrapper appends one
    line, a comment that is never run (it comes after `exit`)."""
    script = tmp_path / "5.sh"
    text = wrapper_script(
        job_id=5, attempt=2, command="exit 4", cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"},
        status_path=str(script), nudge_path=str(tmp_path / "nudge"), inherited=set(),
    )  # fmt: skip
    script.write_text(text)
    assert read_status(str(script), 2) is None  # nothing recorded yet
    proc = subprocess.run(["/bin/sh", str(script)], capture_output=True, start_new_session=True)
    assert proc.returncode == 4
    assert read_status(str(script), 2) == 4
    assert read_status(str(script), 1) is None  # another attempt's record
    assert script.read_text().startswith(text)  # appended, nothing else changed
    with open(script, "a") as f:
        f.write("# tmuxtrain status 3 1")  # a line still being written
    assert read_status(str(script), 3) is None
    assert read_status(str(tmp_path / "missing.sh"), 1) is None


def settled_dead_status(runner: Tmux, pane_id: str) -> int | None:
    """A dead pane's exit status once tmux has it: tmux can show a pane dead a moment
    before it has the status, and now and then never does (see core.reconcile)."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: runner.panes()[pane_id].dead_status is not None, timeout=3)
    return runner.panes()[pane_id].dead_status
