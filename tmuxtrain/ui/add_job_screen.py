"""Queue jobs from a file: a path input that completes like a shell (Tab), showing matches."""

from __future__ import annotations

import os
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Label, Static

JOB_SUFFIXES = (".yaml", ".yml")
MAX_SHOWN = 8


def path_candidates(value: str, base: str) -> list[str]:
    """Entries that complete `value` (relative to `base`), folders with a trailing `/`,
    folders and job files first; hidden ones only when the name typed starts with a dot."""
    expanded = os.path.expanduser(value)
    head, tail = os.path.split(expanded)
    folder = os.path.join(base, head) if head else base
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(tail) or (name.startswith(".") and not tail.startswith(".")):
            continue
        full = os.path.join(folder, name)
        is_dir = os.path.isdir(full)
        if not is_dir and not name.endswith(JOB_SUFFIXES):
            continue
        shown = value[: len(value) - len(tail)] + name + ("/" if is_dir else "")
        out.append((not is_dir, shown))
    return [s for _, s in sorted(out)]


def complete(value: str, base: str) -> str:
    """`value` extended by what every candidate shares (what Tab does in a shell)."""
    cands = path_candidates(value, base)
    if not cands:
        return value
    prefix = os.path.commonprefix(cands)  # noqa: RUF071 - completion is by characters
    return prefix if len(prefix) > len(value) else value


class PathSuggester(Suggester):
    """Greys in the completion Tab would make (no cache: files come and go)."""

    def __init__(self, base: str) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.base = base

    async def get_suggestion(self, value: str) -> str | None:
        done = complete(value, self.base)
        return done if done != value else None


class AddJobScreen(ModalScreen[str | None]):
    """Dismisses with the path typed (Enter), or None (Esc)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(None)", "cancel"),
        Binding("tab", "complete", "complete", priority=True),
    ]

    def __init__(self, base: str | None = None, value: str = "", error: str = "") -> None:
        """`value` and `error`: a path that was refused, shown again with why, to fix."""
        super().__init__()
        self.base = base or os.getcwd()
        self.value = value
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Queue jobs from a file (Tab completes, Enter adds, Esc cancels)")
            yield Input(
                value=self.value,
                placeholder="path/to/jobs.yaml",
                suggester=PathSuggester(self.base),
                id="path",
            )
            error = Static(self.error, id="add-error", markup=False)
            error.display = bool(self.error)
            yield error
            yield Static("", id="matches", markup=False)

    def on_mount(self) -> None:
        box = self.query_one(Input)
        box.focus()
        box.cursor_position = len(box.value)
        self._show_matches(box.value)

    def _show_matches(self, value: str) -> None:
        cands = path_candidates(value, self.base)
        more = len(cands) - MAX_SHOWN
        text = "\n".join(cands[:MAX_SHOWN]) + (f"\n… {more} more" if more > 0 else "")
        self.query_one("#matches", Static).update(text or "(no job files here)")

    @on(Input.Changed, "#path")
    def _changed(self, event: Input.Changed) -> None:
        self._show_matches(event.value)

    @on(Input.Submitted, "#path")
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if value:
            self.dismiss(value)

    def action_complete(self) -> None:
        box = self.query_one(Input)
        done = complete(box.value, self.base)
        if done != box.value:
            box.value = done
            box.cursor_position = len(done)
