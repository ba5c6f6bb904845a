"""One line per GPU: VRAM bar (tmuxtrain's jobs apart from other processes), figures,
utilisation, temperature and the jobs on it. Two GPUs a line when narrow with many GPUs.
With `runner: slurm`, one line per partition of the cluster below: its GPUs in use, free."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widget import Widget

from tmuxtrain.core.units import printable
from tmuxtrain.ui import view
from tmuxtrain.ui.palette import Palette


class GpuPanel(Widget):
    """Renders from the last `show()`; the height follows the number of lines."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.palette = Palette.default()
        self._gpus: Sequence[dict[str, Any]] = ()
        self._names: dict[int, str] = {}
        self._note = ""
        self._cluster: dict[str, Any] | None = None
        self._laid_out = 1  # rows the last layout gave the content

    def show(
        self,
        gpus: Sequence[dict[str, Any]],
        names: dict[int, str],
        note: str,
        cluster: dict[str, Any] | None = None,
    ) -> None:
        """New readings; `names` maps the ids of jobs on the GPUs to their names; `cluster`
        is `Client.cluster()` (None: no Slurm)."""
        wanted = {i for g in gpus for i in g.get("jobs", ())}
        names = {i: n for i, n in names.items() if i in wanted}
        if (gpus, names, note, cluster) == (self._gpus, self._names, self._note, self._cluster):
            return
        layout_changed = len(gpus) != len(self._gpus) or self._cluster_rows(
            cluster
        ) != self._cluster_rows(self._cluster)
        self._gpus, self._names, self._note, self._cluster = gpus, names, note, cluster
        self._titles()
        self.refresh(layout=layout_changed)

    def on_resize(self) -> None:
        self._titles()

    def _titles(self) -> None:
        """Title, and the bar's legend: below when there is a bottom border, else beside."""
        simulated = any(g.get("simulated") for g in self._gpus)
        legend = "[$primary]█[/] tmuxtrain jobs  [$warning]█[/] other processes"
        title = "GPUs" + (" · simulated" if simulated else "")
        if self.styles.border_bottom[0] in ("", "none", "hidden"):
            self.border_title, self.border_subtitle = f"{title} · {legend}", ""
        else:
            self.border_title, self.border_subtitle = title, legend

    def _columns(self) -> int:
        return 2 if len(self._gpus) > 4 and self.size.width < 120 else 1

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        self._laid_out = self._rows(width)
        return self._laid_out

    def _rows(self, width: int) -> int:
        extra = self._cluster_rows(self._cluster)
        if not self._gpus:
            return extra or 1
        cols = 2 if len(self._gpus) > 4 and width < 120 else 1
        return -(-len(self._gpus) // cols) + extra

    @staticmethod
    def _cluster_rows(cluster: dict[str, Any] | None) -> int:
        if cluster is None:
            return 0
        return len(cluster["partitions"]) or 1

    def render(self) -> Text:
        if self._rows(self.content_region.width) != self._laid_out:
            # New readings came after the last layout (a first refresh racing the
            # mount): lay out again, or the panel keeps the height of none.
            self.call_later(self.refresh, layout=True)
        p = self.palette
        width = self.content_region.width or self.size.width
        lines = self._cluster_lines(width)
        if not self._gpus:
            if lines:
                return Text("\n", no_wrap=True).join(lines)
            note = self._note or "no GPUs"
            return Text(f"no GPUs — {note}", style=p.muted, no_wrap=True, overflow="ellipsis")
        lines = self._gpu_lines(width) + lines
        return Text("\n", no_wrap=True).join(lines)

    def _gpu_lines(self, width: int) -> list[Text]:
        cols = self._columns()
        lines = []
        if cols == 1:
            name_w = min(24, max(len(self._label(g)) for g in self._gpus))
            for g in self._gpus:
                lines.append(self._line(g, width, name_w))
        else:
            cell = (width - 2) // 2
            rows = -(-len(self._gpus) // 2)
            for r in range(rows):
                line = self._compact(self._gpus[r], cell)
                if r + rows < len(self._gpus):
                    line.append("  ")
                    line.append_text(self._compact(self._gpus[r + rows], cell))
                lines.append(line)
        return lines

    def _cluster_lines(self, width: int) -> list[Text]:
        """`slurm gpu*  nodes 1/1  ███░░░░░  3/4 GPUs free`, one per partition."""
        c, p = self._cluster, self.palette
        if c is None:
            return []
        if not c["partitions"]:
            why = c["error"] or "no partitions"
            return [Text(f"slurm — {why}", style=p.muted, no_wrap=True, overflow="ellipsis")]
        name_w = min(16, max(len(q["name"]) + q["default"] for q in c["partitions"]))
        out = []
        for q in c["partitions"]:
            t = Text(no_wrap=True, overflow="ellipsis")
            t.append("slurm ", style=p.muted)
            t.append((printable(q["name"]) + ("*" if q["default"] else ""))[:name_w].ljust(name_w))
            t.append(f"  nodes {q['nodes_usable']}/{q['nodes']}  ", style=p.muted)
            total, free = q["gpus"], q["gpus_free"]
            bar_w = max(8, min(32, width - t.cell_len - 20))
            used_w = round(bar_w * (total - free) / total) if total else 0
            t.append("█" * used_w, style=p.primary)
            t.append("─" * (bar_w - used_w), style=p.muted)
            t.append(f"  {free}/{total} GPUs free")
            out.append(t)
        return out

    @staticmethod
    def _label(g: dict[str, Any]) -> str:
        return printable(str(g.get("name") or "GPU"))

    def _util_temp(self, g: dict[str, Any], compact: bool) -> Text:
        p = self.palette
        util, temp = g.get("utilization_pct"), g.get("temperature_c")
        t = Text(no_wrap=True)
        t.append(f"{'?' if util is None else util:>3}%", style=view.level_style(util, 101, 101, p))
        if not compact:
            t.append(" util", style=p.muted)
        t.append(
            f" {'?' if temp is None else temp:>3}°C"[: 5 if compact else 7],
            style=view.level_style(temp, 75, 85, p),
        )
        return t

    def _line(self, g: dict[str, Any], width: int, name_w: int) -> Text:
        """`0 NAME sim ████──── 42/80 GiB  90% util  41°C  7 resnet`: the bar takes what the
        fixed fields leave, between 10 and 48 cells."""
        p = self.palette
        compact = width < 100
        figs = view.vram_figures(g, compact)
        figs_w = 8 if compact else 13
        name_w = min(name_w, 14 if compact else 24)
        fixed = 3 + name_w + 4 + 1 + figs_w + 1 + (10 if compact else 15) + 1
        jobs_min = 16 if compact else 24
        bar_w = max(10, min(48, width - fixed - jobs_min))
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{g.get('index', '?'):>2} ", style="bold")
        t.append(self._label(g)[:name_w].ljust(name_w))
        t.append(" sim " if g.get("simulated") else "     ", style=p.muted)
        t.append_text(view.vram_bar(g, bar_w, p))
        t.append(" " + figs.rjust(figs_w))
        t.append(" ")
        t.append_text(self._util_temp(g, compact))
        jobs_w = max(1, width - t.cell_len - 2)
        t.append("  ")
        jobs = view.gpu_jobs_text(g.get("jobs", ()), self._names, jobs_w)
        t.append(jobs, style=p.muted if jobs == "idle" else p.fg)
        return t

    def _compact(self, g: dict[str, Any], width: int) -> Text:
        """Half a line: `0 ██████──── 42/80G  90%  41° 3,4`."""
        p = self.palette
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"{g.get('index', '?'):>2} ", style="bold")
        bar_w = max(6, width - 3 - 9 - 10 - 5)
        t.append_text(view.vram_bar(g, bar_w, p))
        t.append(" " + view.vram_figures(g, True).rjust(8))
        t.append(" ")
        t.append_text(self._util_temp(g, True))
        ids = ",".join(map(str, g.get("jobs", ())))
        room = width - t.cell_len - 1
        if room > 0:
            t.append(" " + (ids[:room] if ids else "idle"[:room]), style=p.muted if not ids else "")
        t.truncate(width)
        return t
