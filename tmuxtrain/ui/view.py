"""What the dashboard shows, as pure functions of jobs, GPUs, a palette and `now`.

Kept apart from the widgets so the table can compare a row's inputs (`signature`) before it
formats anything, and so tests can check ordering and formatting without a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text

from tmuxtrain.core.model import Job, JobState
from tmuxtrain.core.units import (
    format_duration,
    format_metric,
    format_mib,
    format_progress,
    printable,
)
from tmuxtrain.ui.palette import Palette

EIGHTHS = " ▏▎▍▌▋▊▉"


def order_key(job: Job, rank: Mapping[int, int]) -> tuple[Any, ...]:
    """The queue order: running (by id), pending in the order they will start (`rank`:
    their places in `core.schedule.start_order`, under the configured policy), finished
    newest first."""
    if job.state is JobState.RUNNING:
        return (0, job.id)
    if job.state is JobState.PENDING:
        return (1, rank.get(job.id, len(rank)), job.id)
    return (2, -(job.finished_at or 0.0), -job.id)


def signature(job: Job) -> tuple[Any, ...]:
    """Everything a table row shows except the running clock: equal means nothing to redraw."""
    return (
        job.state,
        job.attempt,
        job.held,
        job.gpus,
        job.reason,
        job.exit_code,
        job.spec.name,
        job.spec.gpus,
        job.spec.priority,
        job.started_at,
        job.finished_at,
        job.metrics,
    )


def matches(job: Job, words: Sequence[str]) -> bool:
    """The `/` filter: every word is found in the job's id, name, state, project or GPUs."""
    if not words:
        return True
    hay = (
        f"{job.id} {job.spec.name} {job.state.value} {'held' if job.held else ''} "
        f"{job.spec.project} gpu{','.join(map(str, job.gpus))}"
    ).lower()
    return all(w in hay for w in words)


def runtime_s(job: Job, now: float) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at if job.finished_at is not None else now
    return max(0.0, end - job.started_at)


def progress_fraction(m: dict[str, Any]) -> float | None:
    """Share of the run done: the log parser's `progress` (None when it has none), the
    same that `tmuxtrain ls` prints.

    Metrics stored before the parser reported `progress` fall back to the counters: a step
    that does not exceed `steps` is read as the step within the current (1-based) epoch.
    """
    progress = m.get("progress")
    if progress is not None:
        return min(1.0, max(0.0, float(progress)))
    epoch, epochs, step, steps = m.get("epoch"), m.get("epochs"), m.get("step"), m.get("steps")
    if epochs and epoch is not None:
        done = max(0.0, float(epoch) - 1.0)
        if steps and step is not None and step <= steps:
            done += float(step) / float(steps)
        return min(1.0, max(0.0, done / float(epochs)))
    if steps and step is not None:
        return min(1.0, max(0.0, float(step) / float(steps)))
    return None


def progress_label(m: dict[str, Any]) -> str:
    """The counters `tmuxtrain ls` prints, without its percentage: the bar shows that."""
    return format_progress(m, percent=False)


def bar(fraction: float, width: int, fill: Any, empty: Any) -> Text:
    """A horizontal bar `width` cells wide, with eighth-cell resolution at its edge."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = Text("█" * full, style=fill)
    if full < width:
        text.append(EIGHTHS[part] if part else "", style=fill)
        rest = width - full - (1 if part else 0)
        text.append("─" * rest, style=empty)
    return text


def state_text(job: Job, p: Palette) -> Text:
    style = {
        JobState.RUNNING: p.ok,
        JobState.PENDING: p.warn,
        JobState.SUCCEEDED: p.primary,
        JobState.FAILED: p.err,
        JobState.CANCELLED: p.muted,
    }[job.state]
    label = "held" if job.held and job.state is JobState.PENDING else job.state.value
    if job.attempt > 1 and job.state in (JobState.RUNNING, JobState.PENDING):
        label += f" #{job.attempt}"
    return Text(label, style=style, no_wrap=True, overflow="ellipsis")


def gpus_text(job: Job, p: Palette) -> Text:
    if job.gpus:
        return Text(",".join(map(str, job.gpus)), no_wrap=True, overflow="ellipsis")
    if job.spec.gpus == 0:
        return Text("cpu", style=p.muted)
    return Text(f"({job.spec.gpus})", style=p.muted)


def vram_text(job: Job) -> str:
    """What the job asks for per GPU, and where that came from when it is not its own
    declaration: `12 GiB each (learned)` from its sweep, `(raised)` after an OOM."""
    v = job.vram_mib
    text = "exclusive" if v is None else f"{format_mib(v)} each"
    return text if job.vram_source == "declared" else f"{text} ({job.vram_source})"


def why_text(job: Job) -> str:
    """Why a job waits or how it ended: the scheduler's reason, or the exit status."""
    if job.state is JobState.SUCCEEDED:
        return ""
    if job.state is JobState.FAILED and job.exit_code not in (None, 0):
        return f"exit {job.exit_code}" + (f": {job.reason}" if job.reason else "")
    return job.reason


def progress_text(job: Job, width: int, p: Palette, *, with_reason: bool) -> Text:
    """The progress cell: a bar and `ep 3/5`; with `with_reason` (the narrow layout, which
    has no reason column) a pending or failed job shows why instead."""
    m = job.metrics
    if with_reason and job.state is not JobState.RUNNING:
        why = why_text(job)
        if why:
            return Text(printable(why), style=p.muted, no_wrap=True, overflow="ellipsis")
    frac = progress_fraction(m)
    if job.state is JobState.SUCCEEDED:
        frac = 1.0
    label = progress_label(m)
    if frac is None:
        return Text(label, style=p.muted, no_wrap=True)
    bar_w = max(4, min(10, width - len(label) - 1))
    fill = p.ok if job.state is JobState.RUNNING else p.muted
    text = bar(frac, bar_w, fill, p.bar_free)
    if label:
        text.append(" " + label)
    return text


def loss_text(job: Job) -> Text:
    loss = job.metrics.get("loss")
    return Text(format_metric(loss), justify="right", no_wrap=True)


def eta_text(job: Job) -> Text:
    eta = job.metrics.get("eta_s")
    if job.state is not JobState.RUNNING or eta is None:
        return Text("")
    return Text(format_duration(eta), justify="right", no_wrap=True)


def runtime_text(job: Job, now: float) -> Text:
    s = runtime_s(job, now)
    return Text("" if s is None else format_duration(s), justify="right", no_wrap=True)


def reason_text(job: Job, p: Palette) -> Text:
    style = p.err if job.state is JobState.FAILED else p.muted
    return Text(printable(why_text(job)), style=style, no_wrap=True, overflow="ellipsis")


def gpu_jobs_text(ids: Iterable[int], names: dict[int, str], width: int) -> str:
    """`7 resnet, 9 bert` as room allows, else just the ids."""
    ids = list(ids)
    if not ids:
        return "idle"
    full = ", ".join(f"{i} {printable(names[i])}" if i in names else str(i) for i in ids)
    if len(full) <= width:
        return full
    short = ",".join(map(str, ids))
    return short if len(short) <= width else short[: max(1, width - 1)] + "…"


def vram_bar(gpu: dict[str, Any], width: int, p: Palette) -> Text:
    """Used / total as a bar: tmuxtrain's jobs, then other processes, then free memory."""
    total = gpu.get("memory_total_mib")
    used = gpu.get("memory_used_mib")
    if not total or used is None:
        return Text("─" * width, style=p.bar_free)
    jobs = min(gpu.get("memory_jobs_mib") or 0, used)
    other = max(0, used - jobs)
    cells_jobs = round(jobs / total * width)
    cells_other = round(other / total * width)
    # A sliver of memory in use must still show: at least one cell per non-empty part.
    if jobs and not cells_jobs:
        cells_jobs = 1
    if other and not cells_other:
        cells_other = 1
    over = cells_jobs + cells_other - width
    if over > 0:
        cells_other = max(0, cells_other - over)
    text = Text("█" * cells_jobs, style=p.bar_jobs)
    text.append("█" * cells_other, style=p.bar_other)
    text.append("─" * (width - cells_jobs - cells_other), style=p.bar_free)
    return text


def vram_figures(gpu: dict[str, Any], compact: bool) -> str:
    """`42.5/80 GiB` (compact: `42/80G`)."""
    total, used = gpu.get("memory_total_mib"), gpu.get("memory_used_mib")
    if total is None or used is None:
        return "?"
    if compact:
        return f"{used / 1024:.0f}/{total / 1024:.0f}G"
    if total < 1024:
        return f"{used}/{total} MiB"
    # used in the unit of the total, so the two read as one fraction: 0.5/24 GiB
    u = f"{used / 1024:.1f}".removesuffix(".0")
    return f"{u}/{format_mib(total)}"


def level_style(value: float | None, warn: float, bad: float, p: Palette) -> Any:
    if value is None:
        return p.muted
    return p.err if value >= bad else p.warn if value >= warn else p.fg


SCORE_NAMES = ("eval_loss", "val_loss", "test_loss", "loss")  # shown when keep_best is unset
CHECKPOINT_MARKS = {"succeeded": "✓", "failed": "✗", "cancelled": "✗", "running": "▶"}


def checkpoint_score(metrics: Mapping[str, Any], keep_best: str | None) -> tuple[str, Any] | None:
    """The one score a checkpoint row shows: the `keep_best` metric, else the first loss
    among SCORE_NAMES, else the first metric by name; None before there is any."""
    if keep_best:
        name = keep_best.split(":", 1)[1] if keep_best.startswith(("min:", "max:")) else keep_best
        return (name, metrics[name]) if name in metrics else None
    for name in SCORE_NAMES:
        if name in metrics:
            return name, metrics[name]
    names = sorted(k for k in metrics if k not in ("progress", "eta_s"))
    return (names[0], metrics[names[0]]) if names else None


def checkpoint_lines(
    cks: Sequence[Mapping[str, Any]], keep_best: str | None, rows: int, p: Palette
) -> list[Text]:
    """A job's checkpoints in at most `rows` lines: a summary, then the newest ones, each
    with its evaluation's state and score; the best starred."""
    if rows < 1 or not cks:
        return []
    scored = sum(1 for c in cks if c.get("eval_state") == "succeeded")
    head = Text(no_wrap=True, overflow="ellipsis")
    head.append(f"{len(cks)} checkpoint{'s' if len(cks) != 1 else ''}", style="bold")
    head.append(f" · {scored} scored", style=p.muted)
    shown = list(cks)[-(rows - 1) :] if rows > 1 else []
    best = next((c for c in cks if c.get("best")), None)
    if best is not None and best not in shown:  # scrolled off: named up here
        head.append(" · best ", style=p.muted)
        head.append(checkpoint_label(best), style=p.ok)
    out = [head]
    for c in shown:
        state = c.get("eval_state") or "pending"
        line = Text(no_wrap=True, overflow="ellipsis")
        mark = "★" if c.get("best") else CHECKPOINT_MARKS.get(state, "·")
        style = p.err if state in ("failed", "cancelled") else p.ok if c.get("best") else p.muted
        line.append(f"{mark} ", style=style)
        line.append(checkpoint_label(c), style="bold" if c.get("best") else "")
        score = checkpoint_score(c.get("metrics") or {}, keep_best)
        if score is not None:
            line.append(f"  {score[0]} ", style=p.muted)
            line.append(format_metric(score[1]))
        elif state != "succeeded":
            line.append(f"  {state}", style=p.err if style is p.err else p.warn)
        out.append(line)
    return out


def checkpoint_label(ck: Mapping[str, Any]) -> str:
    """`checkpoint-500`, `last.ckpt@2`: what tells a job's checkpoints apart at a glance."""
    name = printable(str(ck.get("path", "")).rstrip("/").rsplit("/", 1)[-1])
    version = int(ck.get("version") or 1)
    return name + (f"@{version}" if version > 1 else "")
