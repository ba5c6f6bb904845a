"""Job windows take the size of the terminal that attaches: a job that starts while nobody
watches sees an 80x24 terminal (so its progress bars fit any terminal attached later), and
`tmuxtrain attach` from a 100-column terminal (a pane of a second tmux server) makes the
job's window 100 columns wide and tells the job so, even where the user's tmux.conf sets
another `window-size`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Env, kill_tmux_server, wait_until

# Prints its terminal's size at start and at every SIGWINCH, then waits.
SIZES = """\
import os, signal, time
def show(*_):
    c, r = os.get_terminal_size(1)
    print(f"size {c}x{r}", flush=True)
signal.signal(signal.SIGWINCH, show)
show()
while True:
    time.sleep(0.05)
"""


def test_job_windows_take_the_size_of_the_terminal_that_attaches(tt: Env) -> None:
    script = tt.write("sizes.py", SIZES)
    tt.cli("up", check=True)
    # as a user's tmux.conf might: windows keep their size whoever attaches
    tt.tmux("set-option", "-g", "window-size", "manual")
    [job] = [
        int(x)
        for x in tt.cli(
            "add", "--gpus", "0", "--", f"{sys.executable} {script}", check=True
        ).stdout.split()
    ]

    def log() -> str:
        return tt.cli("log", str(job), check=True).stdout

    wait_until(lambda: "size " in log(), what="the job's first size")
    assert "size 80x24" in log()  # nobody attached: a terminal that fits anywhere
    window = tt.client().show(job)["tmux_window"]

    outer = f"{tt.settings.socket}-outer"
    exe = Path(sys.executable).parent / "tmuxtrain"
    env_args = [f"{k}={v}" for k, v in tt.environ.items() if k.startswith("TMUXTRAIN_")]
    try:
        subprocess.run(
            ["tmux", "-L", outer, "new-session", "-d", "-x", "100", "-y", "30",
             "env", *env_args, str(exe), "attach", str(job)],
            check=True,
        )  # fmt: skip

        def width() -> str:
            out = tt.tmux("display-message", "-p", "-t", window, "#{window_width}x#{window_height}")
            return out.strip()

        wait_until(lambda: width() == "100x29", what="the window at the client's size")
        wait_until(lambda: "size 100x29" in log(), what="the job told of its new size")
    finally:
        kill_tmux_server(outer)
