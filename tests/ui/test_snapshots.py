"""Pictures of the dashboard on the fixed demo home (frozen clock, no refresh timer).

Update them after a deliberate change with `pytest tests/ui --snapshot-update`, and look at
the report pytest-textual-snapshot writes when one differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.ui.conftest import settle
from tmuxtrain.ui.app import TmuxtrainApp


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen(
    snap_compare: Callable[..., bool], demo_app: Callable[..., TmuxtrainApp], size: tuple[int, int]
) -> None:
    assert snap_compare(demo_app(), terminal_size=size, run_before=settle)


def test_main_screen_light_theme(
    snap_compare: Callable[..., bool], demo_app: Callable[..., TmuxtrainApp]
) -> None:
    assert snap_compare(demo_app(theme="textual-light"), terminal_size=(160, 48), run_before=settle)


def test_failed_job_selected_narrow(
    snap_compare: Callable[..., bool], demo_app: Callable[..., TmuxtrainApp]
) -> None:
    """The narrow layout with a failed job: its exit status and reason must be readable."""

    async def select_failed(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, TmuxtrainApp)
        app.table.move_cursor(row=app.table.get_row_index("11"))
        await settle(pilot)

    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=select_failed)
