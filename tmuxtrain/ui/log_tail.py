"""The last lines of the selected job's log, following live.

A progress bar redrawn with `\\r` updates the last line in place (as in the terminal) instead
of adding a line per redraw; only as many lines as fit are drawn. Scrolling back is the full
log view's job (key l).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.text import Text
from textual.widget import Widget

from tmuxtrain.ui.palette import Palette
from tmuxtrain.ui.source import clean_log

KEEP_LINES = 400


class LogTail(Widget):
    """Fed raw text by `feed()`; keeps complete lines and the line still being written."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.palette = Palette.default()
        self.lines: deque[str] = deque(maxlen=KEEP_LINES)
        self.partial = ""
        self.job_id: int | None = None

    def feed(self, job_id: int, text: str, reset: bool) -> None:
        if reset or job_id != self.job_id:
            self.lines.clear()
            self.partial = ""
            self.job_id = job_id
            self.border_title = f"log · job {job_id}"
            self.border_subtitle = "l: full log"
        text = self.partial + text
        cut = text.rfind("\n")
        if cut >= 0:
            self.lines.extend(clean_log(text[:cut]))
            self.partial = text[cut + 1 :]
        else:
            self.partial = text
        self.refresh()

    def reset(self, job_id: int | None) -> None:
        self.lines.clear()
        self.partial = ""
        self.job_id = job_id
        self.border_title = "log" if job_id is None else f"log · job {job_id}"
        self.refresh()

    def last_lines(self, height: int) -> list[str]:
        """The last `height` lines, the line being written (its latest redraw) included."""
        tail = list(self.lines)[-height:] if height > 0 else []
        if self.partial:
            last = clean_log(self.partial)[-1]
            tail = ([*tail, last])[-height:] if height > 0 else []
        return tail

    def render(self) -> Text:
        height = self.content_region.height
        lines = self.last_lines(height)
        if not lines:
            return Text("(no output yet)", style=self.palette.muted)
        return Text("\n".join(lines), no_wrap=True, overflow="crop")
