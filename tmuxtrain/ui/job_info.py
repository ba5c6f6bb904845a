"""The selected job's settings and latest metrics, as a few dense lines."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from tmuxtrain.core.model import Job, JobState
from tmuxtrain.core.units import format_duration, format_mib
from tmuxtrain.ui import view
from tmuxtrain.ui.palette import Palette

PROGRESS_KEYS = ("epoch", "epochs", "step", "steps", "eta_s")


def metric_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class JobInfo(Widget):
    """Redrawn when the selected job, or anything about it, changes."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.palette = Palette.default()
        self._job: Job | None = None
        self._now = 0.0

    def show(self, job: Job | None, now: float) -> None:
        running = job is not None and job.state is JobState.RUNNING
        if job is self._job and not running:
            return
        self._job, self._now = job, now
        self.border_title = "job" if job is None else f"job {job.id}"
        self.refresh()

    def render(self) -> Text:
        p = self.palette
        job = self._job
        if job is None:
            return Text("no job selected: add one with n", style=p.muted)
        s = job.spec
        sep = Text(" · ", style=p.muted)
        t = Text(overflow="ellipsis")
        t.append(view.printable(s.name), style="bold")
        t.append("  ")
        t.append_text(view.state_text(job, p))
        t.append("\n")

        where = Text(no_wrap=True, overflow="ellipsis")
        if job.gpus:
            where.append(f"GPU {','.join(map(str, job.gpus))}")
        elif s.gpus == 0:
            where.append("CPU only")
        else:
            where.append(f"{s.gpus} GPU{'s' if s.gpus > 1 else ''}")
        where.append_text(sep)
        where.append("exclusive" if s.vram_mib is None else f"{format_mib(s.vram_mib)} each")
        where.append_text(sep)
        where.append(f"prio {s.priority}")
        if s.project != "default":
            where.append_text(sep)
            where.append(view.printable(s.project))
        t.append_text(where)
        t.append("\n")

        when = Text(no_wrap=True, overflow="ellipsis")
        run = view.runtime_s(job, self._now)
        if run is not None:
            when.append(f"ran {format_duration(run)}")
        eta = job.metrics.get("eta_s")
        if job.state is JobState.RUNNING and eta is not None:
            when.append_text(sep)
            when.append(f"eta {format_duration(eta)}")
        extra = [view.progress_label(job.metrics)]
        if job.attempt > 1 or s.retries:
            extra.append(f"attempt {job.attempt}/{s.retries + 1}")
        if job.after_ids:
            extra.append("after " + ",".join(map(str, job.after_ids)))
        for item in filter(None, extra):
            if when.plain:
                when.append_text(sep)
            when.append(item)
        if when.plain:
            t.append_text(when)
            t.append("\n")
        why = view.why_text(job)
        if why:
            t.append(view.printable(why) + "\n", style=p.err if job.exit_code else p.warn)
        t.append("$ " + view.printable(s.command) + "\n", style=p.muted)

        metrics = [(k, v) for k, v in job.metrics.items() if k not in PROGRESS_KEYS]
        metrics.sort(key=lambda kv: (kv[0] != "loss", kv[0]))
        for i, (k, v) in enumerate(metrics):
            if i:
                t.append("  ")
            t.append(f"{k} ", style=p.muted)
            t.append(metric_value(v), style="bold" if k == "loss" else "")
        return t
