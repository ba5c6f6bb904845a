"""`tmuxtrain ui` for real: in a pane of a second private tmux server, read with capture-pane.

The pane belongs to another tmux server than the jobs' one, so Enter takes the path a user
outside tmux takes: the dashboard steps aside, `tmux attach` shows the job's window, and
detaching brings the dashboard back. Then q quits with status 0 (which the shell around it
writes to a file: tmux's own #{pane_dead_status} is sometimes left empty).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import Env, kill_tmux_server, wait_until
from tests.ui.test_live import TRAIN
from tmuxtrain.core.model import JobState
from tmuxtrain.ui import view


@pytest.fixture
def ui_server(tt: Env) -> Iterator[list[str]]:
    """`tmux -L NAME` of a server for the dashboard's pane, killed after the test."""
    base = ["tmux", "-L", f"{tt.settings.socket}-ui"]
    try:
        yield base
    finally:
        kill_tmux_server(base[2])


def capture(base: list[str]) -> str:
    proc = subprocess.run([*base, "capture-pane", "-p", "-t", "ui:"], capture_output=True)
    return proc.stdout.decode("utf-8", "replace")


def test_tmuxtrain_ui_in_a_real_pane(tt: Env, ui_server: list[str]) -> None:
    client = tt.client()
    script = tt.write("train.py", TRAIN)
    [job_id] = client.add_command(f"{sys.executable} {script}", name="trainer", vram="4GiB")
    wait_until(lambda: client.job(job_id).metrics.get("loss") == 0.0667, what="a parsed loss")
    assert [view.vram_figures(g, compact=False) for g in client.gpus()] == [
        "4/24 GiB",
        "0/24 GiB",
    ]

    status = tt.root / "ui.status"  # the exit status, written by the shell around the UI
    command = f"{shlex.quote(sys.executable)} -m tmuxtrain.cli ui; echo $? > {status}; sleep 60"
    session = ["new-session", "-d", "-s", "ui", "-x", "160", "-y", "48"]
    subprocess.run(
        [*ui_server, *session, "--", "/bin/sh", "-c", command],
        env=tt.environ,
        cwd=tt.root,
        check=True,
    )

    def shows(*texts: str) -> bool:
        screen = capture(ui_server)
        return all(t in screen for t in texts)

    def wait_screen(cond: Callable[[], bool], what: str) -> None:
        try:
            wait_until(cond, what=what)
        except AssertionError as e:  # show what the pane showed instead
            raise AssertionError(f"{e}; the pane shows:\n{capture(ui_server)}") from None

    wait_screen(
        lambda: shows("trainer", "4/24 GiB", "0/24 GiB", "0.0667", "scheduler running"),
        "job name, VRAM figures and the parsed loss on screen",
    )

    # Enter: the dashboard steps aside for `tmux attach` to the job's window ...
    subprocess.run([*ui_server, "send-keys", "-t", "ui:", "Enter"], check=True)
    wait_screen(
        lambda: shows("step 30/1000 loss=0.0667") and not shows("scheduler running"),
        "the job's window in the pane",
    )
    # ... whose status line says, this first time, how to come back ...
    wait_screen(lambda: shows("detach with C-b d to come back"), "the way back")
    # ... and comes back when the user detaches.
    subprocess.run(["tmux", "-L", tt.settings.socket or "", "detach-client", "-s", "tmuxtrain"])
    wait_screen(lambda: shows("scheduler running", "trainer"), "the dashboard again")
    assert client.job(job_id).state is JobState.RUNNING

    subprocess.run([*ui_server, "send-keys", "-t", "ui:", "q"], check=True)
    wait_until(lambda: status.exists() and status.read_text().strip(), what="q to quit")
    assert status.read_text().strip() == "0"
