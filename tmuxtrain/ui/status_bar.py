"""The top line: the scheduler (running or down, and the key that starts it) and job counts."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from tmuxtrain.ui.palette import Palette

# (state, wide label, narrow label, palette attribute)
COUNTS = (
    ("running", "running", "run", "ok"),
    ("pending", "pending", "pend", "warn"),
    ("succeeded", "done", "ok", "primary"),
    ("failed", "failed", "fail", "err"),
    ("cancelled", "cancelled", "canc", "muted"),
)


class StatusBar(Widget):
    """One line; redrawn only when what it shows changed."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.palette = Palette.default()
        self._state: tuple[Any, ...] = ({"running": False, "pid": None}, {}, "", "")

    def show(
        self,
        scheduler: dict[str, Any],
        counts: dict[str, int],
        gpu_note: str = "",
        filter_text: str = "",
    ) -> None:
        state = (scheduler, counts, gpu_note, filter_text)
        if state != self._state:
            self._state = state
            self.refresh()

    def set_filter(self, filter_text: str) -> None:
        scheduler, counts, gpu_note, _ = self._state
        self.show(scheduler, counts, gpu_note, filter_text)

    def render(self) -> Text:
        scheduler, counts, gpu_note, filter_text = self._state
        p = self.palette
        narrow = self.size.width < 100
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" tmuxtrain ", style="bold")
        if scheduler.get("running"):
            pid = scheduler.get("pid")
            t.append("● ", style=p.ok)
            where = f" (pid {pid})" if pid else ""
            t.append("scheduler" if narrow else f"scheduler running{where}")
        else:
            t.append("○ ", style=p.err)
            t.append("scheduler down", style=p.err)
            t.append(" u: start" if narrow else " · press u to start it", style=p.muted)
        t.append("  │ ", style=p.muted)
        for state, wide_label, narrow_label, attr in COUNTS:
            n = counts.get(state, 0)
            style = getattr(p, attr) if n else p.muted
            t.append(f"{n} ", style=style)
            t.append(narrow_label if narrow else wide_label, style=style)
            t.append("  ")
        if filter_text:
            t.append("│ ", style=p.muted)
            t.append(f"filter: {filter_text}", style=p.accent)
            t.append("  ")
        if gpu_note and not narrow and "simulated" in gpu_note:
            t.append("│ ", style=p.muted)
            t.append("simulated GPUs", style=p.muted)
        return t
