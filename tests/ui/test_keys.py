"""The dashboard's keys a newcomer tries first, driven by Pilot: `?` shows them, Ctrl-C and
`q` quit, Home/End/g/G move the selection, a refused job file keeps the typed path, and
the first jump into a job window says how to come back (real tmux for that one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.conftest import Env, wait_until
from tests.ui.conftest import run, screen_text, settle, until
from tests.ui.test_live import Recorder
from tmuxtrain.ui.add_job_screen import AddJobScreen
from tmuxtrain.ui.app import TmuxtrainApp, make_app
from tmuxtrain.ui.filter_bar import FilterBar
from tmuxtrain.ui.help_screen import HelpScreen

MakeApp = Callable[..., TmuxtrainApp]


def test_question_mark_shows_the_keys_and_closes_again(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        assert "? keys" in screen_text(app)  # the footer says where the help is
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        await pilot.pause()
        text = screen_text(app)
        for key in ("Home End  g G", "Ctrl-C", "hold a pending job", "Enter"):
            assert key in text, key
        await pilot.press("question_mark")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="closed")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        assert app.is_running  # q in the help closed the help, not the app, too:
        await pilot.press("question_mark", "q")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        assert app.is_running

    run(app, body)


@pytest.mark.parametrize("keys", [("q",), ("ctrl+c",), ("slash", "m", "ctrl+c")])
def test_q_and_ctrl_c_quit(demo_app: MakeApp, keys: tuple[str, ...]) -> None:
    """Ctrl-C quits from anywhere, the filter box too (where q is just a letter)."""
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await until(pilot, lambda: not app.is_running, what="the app to quit")

    run(app, body)
    assert app.return_code == 0 and not any(s == "warning" for s, _ in app.notes)


def test_home_end_g_and_G_move_the_selection(demo_app: MakeApp) -> None:
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        last = app.table.row_count - 1
        first_id = app.table.selected_id
        for key, row in (("end", last), ("home", 0), ("G", last), ("g", 0)):
            await pilot.press(key)
            await settle(pilot)
            assert app.table.cursor_row == row, key
        assert app.table.selected_id == first_id
        await pilot.press("end")
        await settle(pilot)
        assert app.table.selected_id != first_id  # the detail follows the selection
        assert app.table.selected_id == app.table._order[-1]

    run(app, body)


def test_a_refused_file_keeps_the_typed_path(
    demo_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\ncommand: 'true'\ngpu: 1\n")
    monkeypatch.chdir(tmp_path)
    app = demo_app()

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("n", *"bad.yaml", "enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, AddJobScreen) and app.screen.error,
            what="the dialog back, with why",
        )
        box = app.screen.query_one("#path", Input)
        assert box.value == "bad.yaml" and box.has_focus
        error = str(app.screen.query_one("#add-error", Static).render())
        assert "bad.yaml:3" in error and "gpu" in error
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, AddJobScreen))

    run(app, body)


def test_the_first_jump_into_a_job_window_says_how_to_come_back(
    tt: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = tt.client()
    [job_id] = client.add_command("sleep 120", name="sleeper", gpus=0)
    wait_until(lambda: client.job(job_id).tmux_window, what="the job's window")
    socket_path = client.tmux().socket_path()
    monkeypatch.setenv("TMUX", f"{socket_path},1,0")  # as if the dashboard ran in that server
    quiet, loud = Recorder(), Recorder()
    app = make_app(client, refresh_s=None, run_quiet=quiet, run_command=loud)

    async def body(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: quiet.calls, what="the first switch-client")
        await pilot.press("a")
        await until(pilot, lambda: len(quiet.calls) == 2, what="the second switch-client")
        first, second = quiet.calls
        assert "switch-client" in first and "display-message" in first
        assert "back to the dashboard with #{prefix} L" in first[-1]
        assert "display-message" not in second  # once is enough
        assert not app.query_one(FilterBar).display

    run(app, body)
