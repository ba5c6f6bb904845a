"""The dashboard on a real store, a real scheduler in a private tmux server and simulated GPUs:
the GPU rows, the table, selection and the curve follow real jobs, and the keys change them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from textual.coordinate import Coordinate
from textual.pilot import Pilot

from tests.conftest import Env, wait_until
from tests.ui.conftest import run, screen_text, settle, until
from tmuxtrain.core.model import JobState
from tmuxtrain.ui import view
from tmuxtrain.ui.app import make_app
from tmuxtrain.ui.confirm_screen import ConfirmScreen
from tmuxtrain.ui.job_table import JobTable
from tmuxtrain.ui.metric_plot import MetricPlot

TRAIN = """\
import time
for i in range(1, 31):
    print(f"step {i}/1000 loss={2.0 / i:.4f}", flush=True)
    time.sleep(0.01)
time.sleep(120)
"""


def start_jobs(tt: Env) -> tuple[int, int, int]:
    """A job printing a loss, a job holding 20 GiB, and one that cannot fit (2 x 22 GiB)."""
    script = tt.write("train.py", TRAIN)
    c = tt.client()
    [a] = c.add_command(f"{sys.executable} {script}", name="trainer", gpus=1, vram="4GiB")
    [b] = c.add_command("sleep 120", name="holder", gpus=1, vram="20GiB")
    [p] = c.add_command("sleep 1", name="too-big", gpus=2, vram="22GiB")
    wait_until(
        lambda: (
            c.job(a).metrics.get("loss") == 0.0667
            and c.job(b).state is JobState.RUNNING
            and c.job(p).reason
        ),
        what="jobs running, a parsed loss and a reason",
    )
    return a, b, p


def test_live_dashboard_shows_real_jobs_and_its_keys_change_them(tt: Env) -> None:
    a, b, p = start_jobs(tt)
    client = tt.client()
    expect_vram = [view.vram_figures(g, compact=False) for g in client.gpus()]
    app = make_app(client, refresh_s=0.2)

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        text = screen_text(app)
        assert "scheduler running" in text
        for figures in expect_vram:  # e.g. "4/24 GiB" and "20/24 GiB"
            assert figures in text
        assert "trainer" in text and "holder" in text
        assert "waiting for 2 GPUs with 22 GiB free" in text
        order = [app.table.coordinate_to_cell_key(Coordinate(r, 0)).row_key.value for r in range(3)]
        assert order == [str(a), str(b), str(p)]  # running first, then pending

        # the curve of the selected job, picked with the mouse
        await pilot.click(JobTable, offset=(4, 1 + order.index(str(a))))
        await settle(pilot)
        assert app.table.selected_id == a
        xs, ys, _ = app.query_one(MetricPlot).points()
        assert len(xs) >= 2 and ys[-1] == 0.0667 and ys[0] > ys[-1]
        assert "loss 0.0667" in screen_text(app)

        # c asks, y cancels: the real job ends as cancelled
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: client.job(a).state is JobState.CANCELLED, 20, "cancel")
        await until(pilot, lambda: app.by_id[a].state is JobState.CANCELLED)
        assert app.table.selected_id == a  # the selection followed the job down the table

        # r queues it again
        await pilot.press("r")
        await until(pilot, lambda: client.job(a).attempt == 2, 10, "retry")
        await until(pilot, lambda: client.job(a).state is JobState.RUNNING, 20, "restart")

        # + raises a pending job's priority
        app.table.move_cursor(row=app.table.get_row_index(str(p)))
        await settle(pilot)
        await pilot.press("plus")
        await until(pilot, lambda: client.job(p).spec.priority == 1, 10, "priority")
        await pilot.press("minus", "minus")
        await until(pilot, lambda: client.job(p).spec.priority == -1, 10, "priority")
        # h holds it, and h again releases it
        await pilot.press("h")
        await until(pilot, lambda: client.job(p).held and app.by_id[p].held, 10, "hold")
        await pilot.press("h")
        await until(pilot, lambda: not client.job(p).held, 10, "release")

    run(app, body)


class Recorder:
    """Stands in for subprocess.run: records argv, succeeds."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[Any]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "", "")


def test_enter_inside_tmux_switches_the_client_to_the_job_window(
    tt: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = tt.client()
    [job_id] = client.add_command("sleep 120", name="sleeper", gpus=1, vram="1GiB")
    wait_until(lambda: client.job(job_id).tmux_window, what="the job's window")
    window = client.job(job_id).tmux_window
    socket_path = client.tmux().socket_path()
    monkeypatch.setenv("TMUX", f"{socket_path},1,0")  # as if the dashboard ran in that server
    quiet, loud = Recorder(), Recorder()
    app = make_app(client, refresh_s=None, run_quiet=quiet, run_command=loud)

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: quiet.calls, what="the switch-client call")
        argv = quiet.calls[0]
        assert "switch-client" in argv and "select-window" in argv
        assert argv[argv.index("select-window") + 2] == window
        assert not loud.calls  # the dashboard was never suspended

    run(app, body)


def test_u_starts_the_scheduler_which_runs_the_queue(tt: Env) -> None:
    client = tt.client()
    [job_id] = client.add_command("true", name="quick", gpus=0, start=False)
    app = make_app(client, refresh_s=0.2)

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        assert "scheduler down" in screen_text(app)
        await pilot.press("u")
        await until(pilot, lambda: app.scheduler.get("running"), 15, "the scheduler")
        await until(pilot, lambda: app.by_id[job_id].state is JobState.SUCCEEDED, 15, "the job")
        await pilot.pause()
        assert "scheduler running" in screen_text(app)

    run(app, body)


def test_n_queues_jobs_from_a_file(tt: Env) -> None:
    tt.write("hello.yaml", "name: hello\ncommand: echo hello\ngpus: 0\n")
    client = tt.client()
    app = make_app(client, refresh_s=0.2)

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("n", "h", "e", "tab", "enter")  # "h" alone: home/ too
        await until(pilot, lambda: any("queued job" in m for _, m in app.notes), 15, "the add")
        await until(pilot, lambda: any(j.spec.name == "hello" for j in app.jobs), 10, "the row")
        [job] = client.list_jobs()
        wait_until(lambda: client.job(job.id).state is JobState.SUCCEEDED, what="the job")

    run(app, body)
