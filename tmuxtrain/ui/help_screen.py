"""`?`: the dashboard's keys, over the dashboard; any of Esc, `?` or `q` closes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

# (keys, what they do), in the order a newcomer needs them.
KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓  PgUp PgDn", "move the selection"),
    ("Home End  g G", "the first / the last job"),
    ("Enter  a", "go to the job's tmux window (the way back is shown the first time)"),
    ("l", "the job's full log, with search (/, n, N)"),
    ("c", "cancel the job (asks first)"),
    ("r", "retry a finished job (a succeeded one: rerun)"),
    ("h", "hold a pending job, or release a held one"),
    ("+  -", "raise / lower a pending job's priority"),
    ("n", "queue jobs from a file (Tab completes the path)"),
    ("/", "filter the table (Esc clears)"),
    ("m  x", "which metric the curve shows / plot over steps or time"),
    ("u", "start the scheduler when it is down"),
    ("t", "light or dark theme"),
    ("?", "this help"),
    ("q  Ctrl-C", "quit (jobs keep running)"),
)


def keys_text(keys: Sequence[tuple[str, str]] = KEYS) -> str:
    width = max(len(k) for k, _ in keys)
    return "\n".join(f"{k.ljust(width)}   {what}" for k, what in keys)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss(None)", "close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("tmuxtrain dashboard: keys (Esc closes)", id="help-title")
            yield Static(keys_text(), id="help-keys", markup=False)
