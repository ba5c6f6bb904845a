"""What the dashboard's worker threads send back to the UI thread."""

from __future__ import annotations

from textual.message import Message

from tmuxtrain.ui.source import Snapshot


class Fetched(Message):
    """A refresh's snapshot, from the worker thread; `selected` is what it read detail for."""

    def __init__(self, snap: Snapshot | None, selected: int | None, error: str = "") -> None:
        super().__init__()
        self.snap = snap
        self.selected = selected
        self.error = error


class Done(Message):
    """An action finished: a note for the user, and whether it failed. `attach`: the
    command that takes the terminal to a job's window; `refused`: a job file path that
    was refused, to offer again for fixing."""

    def __init__(
        self,
        text: str,
        error: bool = False,
        attach: list[str] | None = None,
        refused: str | None = None,
    ) -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.attach = attach
        self.refused = refused
