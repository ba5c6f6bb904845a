"""A line chart of one metric of the selected job over steps or time, drawn in braille dots
(2x4 per cell) so a loss curve is legible even in the small panel of an 80x24 terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widget import Widget

from tmuxtrain.core.units import format_duration
from tmuxtrain.ui.palette import Palette

HIDDEN = frozenset({"epoch", "epochs", "step", "steps", "eta_s"})
# dot (column 0/1, row 0..3) -> bit of the braille pattern (U+2800 + bits)
_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


def plot_lines(xs: Sequence[float], ys: Sequence[float], width: int, height: int) -> list[str]:
    """Braille rows for the points, x and y scaled to fill `width` x `height` cells.

    Where several points share a dot column (more points than columns), the column draws
    their whole range, so noise shows as a band instead of being dropped.
    """
    cols, rows = width * 2, height * 4
    grid = [[0] * width for _ in range(height)]
    if not xs or width <= 0 or height <= 0:
        return ["".join(chr(0x2800 + b) for b in r) for r in grid]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    span_x = (x1 - x0) or 1.0
    span_y = (y1 - y0) or 1.0

    def dot(cx: int, cy: int) -> None:
        if 0 <= cx < cols and 0 <= cy < rows:
            grid[cy // 4][cx // 2] |= _BITS[cx % 2][cy % 4]

    def to_dots(x: float, y: float) -> tuple[int, int]:
        cx = round((x - x0) / span_x * (cols - 1)) if x1 > x0 else cols // 2
        cy = rows - 1 - round((y - y0) / span_y * (rows - 1)) if y1 > y0 else rows // 2
        return cx, cy

    prev: tuple[int, int] | None = None
    for x, y in zip(xs, ys, strict=True):
        cx, cy = to_dots(x, y)
        if prev is None:
            dot(cx, cy)
        else:  # Bresenham from the previous point
            px, py = prev
            dx, dy = abs(cx - px), -abs(cy - py)
            sx, sy = (1 if cx > px else -1), (1 if cy > py else -1)
            err = dx + dy
            while True:
                dot(px, py)
                if px == cx and py == cy:
                    break
                e2 = 2 * err
                if e2 >= dy:
                    err += dy
                    px += sx
                if e2 <= dx:
                    err += dx
                    py += sy
        prev = (cx, cy)
    return ["".join(chr(0x2800 + b) for b in r) for r in grid]


def fmt_y(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4g}"


class MetricPlot(Widget):
    """Shows `metric` (default: loss, else the first metric) of the last `show()`n history."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.palette = Palette.default()
        self.history: dict[str, list[list[float | None]]] = {}
        self.job_id: int | None = None
        self.metric: str | None = None
        self.by_time = False

    def show(self, job_id: int | None, history: dict[str, list[list[float | None]]]) -> None:
        if job_id != self.job_id:
            self.metric = None
        self.job_id, self.history = job_id, history
        self._title()
        self.refresh()

    def metrics(self) -> list[str]:
        names = [n for n, pts in self.history.items() if n not in HIDDEN and pts]
        return sorted(names, key=lambda n: (n != "loss", n))

    def current(self) -> str | None:
        names = self.metrics()
        if self.metric in names:
            return self.metric
        return names[0] if names else None

    def cycle(self) -> None:
        """The next metric (key m)."""
        names = self.metrics()
        if names:
            cur = self.current()
            self.metric = names[(names.index(cur) + 1) % len(names)] if cur else names[0]
            self._title()
            self.refresh()

    def on_click(self) -> None:
        """A click shows the next metric, as m does."""
        self.cycle()

    def toggle_axis(self) -> None:
        """Steps or wall time on x (key x)."""
        self.by_time = not self.by_time
        self._title()
        self.refresh()

    def _title(self) -> None:
        name = self.current()
        self.border_title = f"{name or 'metrics'} vs {'time' if self.by_time else 'step'}"
        more = len(self.metrics()) > 1
        self.border_subtitle = ("m: metric  " if more else "") + "x: axis"

    def points(self) -> tuple[list[float], list[float], bool]:
        """x, y of the current metric, and whether x is time (always, when it has no steps)."""
        name = self.current()
        if name is None:
            return [], [], self.by_time
        pts = self.history.get(name, [])
        xs: list[float] = []
        ys: list[float] = []
        use_time = self.by_time or not any(p[1] is not None for p in pts)
        t0 = pts[0][0] if pts and pts[0][0] is not None else 0.0
        for t, step, value in pts:
            x = (t - t0) if use_time and t is not None else step
            if x is None or value is None or not math.isfinite(value):
                continue
            xs.append(float(x))
            ys.append(float(value))
        return xs, ys, use_time

    def render(self) -> Text:
        p = self.palette
        width, height = self.content_region.width, self.content_region.height
        xs, ys, use_time = self.points()
        if not xs:
            msg = "no metrics yet" if self.job_id is not None else ""
            return Text(msg, style=p.muted, justify="center")
        labels = [fmt_y(max(ys)), fmt_y(min(ys))]
        label_w = max(len(s) for s in labels)
        plot_w = max(1, width - label_w - 1)
        plot_h = max(1, height - 1)
        rows = plot_lines(xs, ys, plot_w, plot_h)
        t = Text(no_wrap=True)
        for i, row in enumerate(rows):
            label = labels[0] if i == 0 else labels[1] if i == plot_h - 1 else ""
            t.append(label.rjust(label_w) + "│", style=p.muted)
            t.append(row, style=p.ok)
            t.append("\n")
        lo, hi = min(xs), max(xs)
        if use_time:
            left, right = format_duration(lo), format_duration(hi)
        else:
            left, right = f"{lo:g}", f"{hi:g}"
        gap = max(1, plot_w - len(left) - len(right))
        t.append(" " * (label_w + 1) + left + " " * gap + right, style=p.muted)
        return t
