"""The tmux windows of finished jobs, kept for reading until the window keeper closes
them (`daemon/windows.py`)."""

from __future__ import annotations

from collections.abc import Sequence

from tmuxtrain.core.model import FINISHED
from tmuxtrain.store.jobs import Store


def finished_windows(store: Store) -> list[tuple[int, str]]:
    """(job id, window id) of finished jobs whose window is still open, oldest finish
    first: what trimming needs, without building whole jobs after every finish."""
    return list(
        store.db.execute(
            # `+state`: walk the small index of open windows, not every finished job
            "SELECT id, tmux_window FROM jobs WHERE tmux_window IS NOT NULL"
            " AND +state IN (?, ?, ?) ORDER BY finished_at, id",
            [s.value for s in FINISHED],
        )
    )


def forget_windows(store: Store, ids: Sequence[int]) -> None:
    """The windows of these jobs were closed."""
    with store.tx() as db:
        db.executemany(
            "UPDATE jobs SET tmux_window = NULL, tmux_pane = NULL WHERE id = ?",
            [(i,) for i in ids],
        )
