"""The dashboard driven by Pilot on the fabricated demo home (no tmux, no scheduler): what a
refresh touches, selection and detail, filter, full log and search, layout, theme, dialogs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.coordinate import Coordinate
from textual.pilot import Pilot

from tests.ui.conftest import run, screen_text, settle, until
from tmuxtrain.api import Client
from tmuxtrain.core.model import JobState
from tmuxtrain.store import Store
from tmuxtrain.ui.add_job_screen import AddJobScreen
from tmuxtrain.ui.app import TmuxtrainApp
from tmuxtrain.ui.confirm_screen import ConfirmScreen
from tmuxtrain.ui.log_screen import LogScreen
from tmuxtrain.ui.log_tail import LogTail
from tmuxtrain.ui.metric_plot import MetricPlot

MakeApp = Callable[..., TmuxtrainApp]


def test_a_refresh_patches_only_the_rows_that_changed(
    demo_app: MakeApp, demo_client: Client
) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        rows = app.table.row_count
        assert rows == 13
        # what the scheduler does on a tick: new metrics for one running job
        other = Store(demo_client.settings.db_path)
        latest = {"loss": 0.0123, "epoch": 3.0, "epochs": 4.0, "step": 10.0, "steps": 500.0}
        other.add_metrics(3, [("loss", 0.0123, 1510.0)], latest, 1.0, 0)
        other.close()
        loads = app.loads
        app.refresh_now()
        await until(pilot, lambda: app.loads > loads)
        assert app.table.rows_formatted == 1
        assert app.table.row_count == rows
        assert app.table.get_cell("3", "loss").plain == "0.0123"
        # nothing committed since: no job is re-read or re-formatted
        loads = app.loads
        app.refresh_now()
        await until(pilot, lambda: app.loads > loads)
        assert app.table.rows_formatted == 0

    run(app, body)


def test_selecting_a_job_shows_its_settings_curve_and_log(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        assert app.table.selected_id == 2  # running jobs first, by id
        await pilot.press("down")
        await settle(pilot)
        assert app.table.selected_id == 3
        info = screen_text(app)
        assert "mlp-lr0.1-s0" in info and "18 GiB each" in info
        plot = app.query_one(MetricPlot)
        assert plot.current() == "loss"
        xs, ys, by_time = plot.points()
        assert len(xs) == 60 and not by_time
        assert ys[0] > ys[-1]  # the curve falls
        await pilot.press("m")
        assert plot.current() == "val_acc"
        await pilot.press("x")
        assert plot.points()[2] is True and "time" in str(plot.border_title)
        tail = app.query_one(LogTail)
        assert tail.job_id == 3 and any("loss=" in line for line in tail.last_lines(20))

    run(app, body)


def test_filter_narrows_the_table_and_esc_brings_everything_back(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("slash", *"mlp", "enter")
        await pilot.pause()
        shown = {str(app.table.coordinate_to_cell_key(Coordinate(r, 0)).row_key.value) for r in range(
            app.table.row_count)}  # fmt: skip
        assert shown == {"3", "4", "7", "8", "12"}
        assert app.table.has_focus
        assert "filter: mlp" in screen_text(app)
        await pilot.press("slash", "escape")
        await pilot.pause()
        assert app.table.row_count == 13

    run(app, body)


def test_full_log_view_searches_and_goes_back(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("l")
        screen = await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen)
        await until(pilot, lambda: screen.log_view.line_count > 10, what="the log to load")
        await pilot.press("slash", *"epoch 3/3", "enter")
        await pilot.pause()
        status = str(screen.query_one("#log-status").render())
        assert "matches" in status and "'epoch 3/3': 1/" in status
        await pilot.press("n")
        assert "2/" in str(screen.query_one("#log-status").render())
        await pilot.press("slash", "escape")  # Esc in the search box: back to the log
        assert isinstance(app.screen, LogScreen)
        await pilot.press("q")
        await until(pilot, lambda: not isinstance(app.screen, LogScreen))

    run(app, body)


def test_resizing_switches_between_wide_and_narrow_columns(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        assert not app.table.narrow and len(app.table.columns) == 9
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: app.table.narrow)
        assert len(app.table.columns) == 7 and app.table.row_count == 13
        assert app.table.selected_id == 2
        assert not app.query_one(LogTail).display or app.query_one(LogTail).size.width == 0

    run(app, body)


def test_theme_toggle_recolours_cells(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        before = app.table.get_cell("3", "state").style
        await pilot.press("t")
        await until(pilot, lambda: not app.current_theme.dark)
        await pilot.pause()
        assert app.table.get_cell("3", "state").style != before

    run(app, body)


def test_cancel_asks_first_and_no_keeps_the_job(demo_app: MakeApp, demo_client: Client) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("c")
        dialog = await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        assert "Cancel job 2 (llama-7b-lora)" in dialog.question
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert demo_client.job(2).state is JobState.RUNNING

    run(app, body)


def test_actions_that_do_not_apply_say_why(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        app.table.move_cursor(row=app.table.get_row_index("7"))  # pending
        await settle(pilot)
        await pilot.press("a")
        assert any("has not started yet" in m for _, m in app.notes)
        await pilot.press("r")
        await until(
            pilot, lambda: any("only finished jobs can be retried" in m for _, m in app.notes)
        )
        app.table.move_cursor(row=app.table.get_row_index("1"))  # succeeded
        await settle(pilot)
        await pilot.press("c")
        assert any("already succeeded" in m for _, m in app.notes)

    run(app, body)


def test_add_dialog_completes_paths_and_reports_bad_files(
    demo_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "bad.yaml").write_text("name: x\ncommand: true\ngpu: 1\n")
    monkeypatch.chdir(tmp_path)
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, AddJobScreen))
        await pilot.press("j", "tab", "b", "tab")
        assert app.screen.query_one("#path").value == "jobs/bad.yaml"  # type: ignore[attr-defined]
        await pilot.press("enter")
        # refused: the dialog comes back with the path and why, to fix it
        await until(pilot, lambda: isinstance(app.screen, AddJobScreen) and app.screen.error)
        assert "gpu" in app.screen.error  # type: ignore[attr-defined]
        assert app.screen.query_one("#path").value == "jobs/bad.yaml"  # type: ignore[attr-defined]

    run(app, body)


def test_a_filter_that_hides_everything_clears_the_detail(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("slash", *"zzz")
        await pilot.pause()
        assert app.table.row_count == 0 and app.table.selected_id is None
        assert "no job selected" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert app.table.selected_id == 2

    run(app, body)
