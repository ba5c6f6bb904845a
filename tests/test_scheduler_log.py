"""Where the scheduler is seen from the command line: `log --scheduler` shows (and follows)
its log, and `ls` and `status` say when it is down, since states go stale then."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from tests.conftest import Env


def test_log_scheduler_shows_the_scheduler_log(tt: Env) -> None:
    proc = tt.cli("log", "--scheduler")
    assert proc.returncode == 2 and "no scheduler has run" in proc.stderr
    tt.cli("up", check=True)
    tt.cli("down", check=True)
    text = tt.cli("log", "--scheduler", check=True).stdout
    assert "started for" in text and "scheduler stopped" in text
    last = tt.cli("log", "--scheduler", "-n", "1", check=True).stdout
    assert last.count("\n") == 1 and "scheduler stopped" in last
    for args in ([], ["1", "--scheduler"]):
        proc = tt.cli("log", *args)
        assert proc.returncode == 2 and "--scheduler" in proc.stderr


def read_until(proc: subprocess.Popen[bytes], text: bytes, timeout: float = 20) -> bytes:
    assert proc.stdout is not None
    got = b""
    deadline = time.monotonic() + timeout
    while text not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} in {got!r}"
        if select.select([proc.stdout], [], [], left)[0]:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"ended before {text!r}: {got!r}"
            got += chunk
    return got


def test_log_scheduler_follow_goes_on_across_a_rotation(tt: Env) -> None:
    tt.cli("up", check=True)
    tt.cli("down", check=True)
    path = tt.settings.scheduler_log
    follow = subprocess.Popen(
        [sys.executable, "-m", "tmuxtrain.cli", "log", "--scheduler", "-f"],
        stdout=subprocess.PIPE,
        env=tt.environ,
    )
    try:
        read_until(follow, b"scheduler stopped")
        with open(path, "ab") as f:
            f.write(b"one more line\n")
        read_until(follow, b"one more line")
        os.rename(path, path + ".1")  # what the scheduler's RotatingFileHandler does
        with open(path, "wb") as f:
            f.write(b"first line of the new file\n")
        got = read_until(follow, b"first line of the new file")
        assert b"one more line" not in got
    finally:
        follow.kill()
        follow.wait()


def test_ls_and_status_say_when_the_scheduler_is_down(tt: Env) -> None:
    tt.cli("add", "--no-start", "--", "true", check=True)
    ls = tt.cli("ls", check=True)
    assert "the scheduler is down" in ls.stderr and "tmuxtrain up" in ls.stderr
    assert "scheduler" not in ls.stdout  # the table stays a table, for pipes
    status = tt.cli("status", check=True).stdout
    assert "scheduler: down; `tmuxtrain up` starts it" in status
    assert f"log:       {tt.settings.scheduler_log}" in status
    tt.cli("up", check=True)
    assert tt.cli("ls", check=True).stderr == ""
    status = tt.cli("status", check=True).stdout
    assert "scheduler: running (pid" in status and "tmuxtrain log --scheduler" in status
    tt.cli("down", check=True)
    status = tt.cli("status", check=True).stdout
    assert "last line:" in status and "scheduler stopped" in status
