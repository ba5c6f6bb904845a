"""A yes/no question over the dashboard (cancelling a running job loses its progress)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tmuxtrain.core.model import Job, JobState
from tmuxtrain.core.units import printable


def cancel_question(job: Job) -> str:
    """What the dashboard asks before it cancels `job` (what the job would lose)."""
    return f"Cancel job {job.id} ({printable(job.spec.name)})?\n" + (
        f"It is running on GPU {','.join(map(str, job.gpus)) or '-'}: it gets Ctrl-C, "
        "then SIGTERM, then SIGKILL."
        if job.state is JobState.RUNNING
        else "It is pending: it will not start."
    )


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True for y / the Yes button, False for n, Esc or No."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
