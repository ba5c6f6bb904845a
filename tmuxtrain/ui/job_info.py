"""The selected job's settings, latest metrics and checkpoints, as a few dense lines."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from tmuxtrain.core.model import Job, JobState
from tmuxtrain.core.units import format_duration, format_metric, printable
from tmuxtrain.ui import view
from tmuxtrain.ui.palette import Palette

PROGRESS_KEYS = ("epoch", "epochs", "step", "steps", "eta_s")


def metric_value(value: Any) -> str:
    return format_metric(value)


class JobInfo(Widget):
    """Redrawn when the selected job, or anything about it, changes."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.palette = Palette.default()
        self._job: Job | None = None
        self._now = 0.0
        self._checkpoints: tuple[int, list[dict[str, Any]]] | None = None

    def show(self, job: Job | None, now: float) -> None:
        running = job is not None and job.state is JobState.RUNNING
        if job is self._job and not running:
            return
        if job is None or (self._checkpoints is not None and self._checkpoints[0] != job.id):
            self._checkpoints = None  # another job's: never shown under this one
        self._job, self._now = job, now
        self.border_title = "job" if job is None else f"job {job.id}"
        self.refresh()

    def show_checkpoints(self, read: tuple[int, list[dict[str, Any]]] | None) -> None:
        """A job's checkpoints with their evaluations (`Client.checkpoints`), kept when
        they are the shown job's; None: nothing new was read."""
        job = self._job
        if read is not None and job is not None and read[0] == job.id and self._checkpoints != read:
            self._checkpoints = read
            self.refresh()

    def render(self) -> Text:
        """Lines cut to the width (never wrapped mid-field), except the command (two lines)
        and the metrics (as many lines as they need)."""
        p = self.palette
        job = self._job
        width = max(10, self.content_region.width)
        if job is None:
            return Text("no job selected (n: add jobs from a file)", style=p.muted)
        s = job.spec
        sep = Text(" · ", style=p.muted)

        def joined(parts: list[Text | str]) -> Text:
            out = Text(no_wrap=True, overflow="ellipsis")
            for part in parts:
                if not part:
                    continue
                if out.plain:
                    out.append_text(sep)
                out.append_text(part if isinstance(part, Text) else Text(part))
            return out

        title = Text(no_wrap=True, overflow="ellipsis")
        title.append(printable(s.name), style="bold")
        title.append("  ")
        title.append_text(view.state_text(job, p))
        lines = [title]

        if job.gpus:
            where = f"GPU {','.join(map(str, job.gpus))}"
        elif s.gpus == 0:
            where = "CPU only"
        else:
            where = f"{s.gpus} GPU{'s' if s.gpus > 1 else ''}"
        vram = view.vram_text(job)
        project = printable(s.project) if s.project != "default" else ""
        lines.append(joined([where, vram, f"prio {s.priority}", project]))

        run = view.runtime_s(job, self._now)
        eta = job.metrics.get("eta_s")
        when = joined(
            [
                "" if run is None else f"ran {format_duration(run)}",
                f"eta {format_duration(eta)}"
                if job.state is JobState.RUNNING and eta is not None
                else "",
                view.progress_label(job.metrics),
                f"attempt {job.attempt}/{s.retries + 1}" if job.attempt > 1 or s.retries else "",
                "after " + ",".join(map(str, job.after_ids)) if job.after_ids else "",
            ]
        )
        if when.plain:
            lines.append(when)
        why = view.why_text(job)
        if why:
            style = p.err if job.state is JobState.FAILED else p.warn
            lines.append(Text(printable(why), style=style, no_wrap=True, overflow="ellipsis"))

        metrics = [(k, v) for k, v in job.metrics.items() if k not in PROGRESS_KEYS]
        metrics.sort(key=lambda kv: (kv[0] != "loss", kv[0]))
        line = Text(no_wrap=True, overflow="ellipsis")
        for k, v in metrics:
            item = Text()
            item.append(f"{k} ", style=p.muted)
            item.append(metric_value(v), style="bold" if k == "loss" else "")
            if line.plain and line.cell_len + 2 + item.cell_len > width:
                lines.append(line)
                line = Text(no_wrap=True, overflow="ellipsis")
            if line.plain:
                line.append("  ")
            line.append_text(item)
        if line.plain:
            lines.append(line)

        command = "$ " + printable(s.command)
        first, rest = command[:width], command[width:]
        if s.checkpoints is not None and self._checkpoints and self._checkpoints[0] == job.id:
            rows = self.content_region.height - len(lines) - 1 - bool(rest)
            cks = self._checkpoints[1]
            lines += view.checkpoint_lines(cks, s.checkpoints.keep_best, rows, p)
        lines.append(Text(first, style=p.muted, no_wrap=True))
        if rest:
            lines.append(Text(rest, style=p.muted, no_wrap=True, overflow="ellipsis"))
        return Text("\n", no_wrap=True).join(lines)
