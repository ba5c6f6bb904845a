"""The queue as a DataTable that is patched, never rebuilt, on each refresh.

Each row remembers the `view.signature` of the job it shows; a refresh formats only rows
whose signature changed (plus the runtime of running jobs), touches only cells whose text
changed, and re-sorts only when the order changed. With 1,000 jobs and nothing new that is
a few dictionary lookups per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tmuxtrain.core.model import Job, JobState
from tmuxtrain.core.units import printable
from tmuxtrain.ui import view
from tmuxtrain.ui.palette import Palette

# key, label, width (None: what is left), right-aligned header
WIDE = (
    ("id", "id", 5),
    ("name", "name", 26),
    ("state", "state", 11),
    ("gpus", "gpus", 5),
    ("progress", "progress", 22),
    ("loss", "loss", 8),
    ("eta", "eta", 7),
    ("runtime", "runtime", 7),
    ("reason", "reason", None),
)
NARROW = (
    ("id", "id", 4),
    ("name", "name", 14),
    ("state", "state", 10),
    ("gpus", "gpu", 3),
    ("progress", "progress / why", 19),
    ("loss", "loss", 7),
    ("eta", "eta", 6),
)
NARROW_BELOW = 110  # table widths under this use the narrow columns
CELL_PADDING = 1


@dataclass
class _Row:
    """What a row shows, and of which reading: `job` is the Job object last shown."""

    sig: tuple[Any, ...]
    cells: dict[str, Text]
    job: Job | None = None
    order_key: tuple[Any, ...] = ()


class JobTable(DataTable[Text]):
    """Rows keyed by job id; `sync()` brings them in line with a list of jobs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "attach", "attach", show=False),
        # The selection, not the view, goes to the ends (DataTable's Home/End scroll
        # sideways); g/G as in less and vim.
        Binding("home,g", "first_row", "first", show=False),
        Binding("end,G", "last_row", "last", show=False),
    ]

    class AttachRequested(Message):
        """Enter on a row: go to that job's tmux window (handled by the app)."""

        def __init__(self, job_id: int) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=CELL_PADDING, **kw)
        self.palette = Palette.default()
        self.layout_name = ""
        self._rows: dict[int, _Row] = {}
        self._order: list[int] = []
        self._jobs: Sequence[Job] = ()
        self._now = 0.0
        self.selected_id: int | None = None
        self.rows_formatted = 0  # rows formatted by the last sync (for tests and the bench)
        self._syncing = False  # rows move under the cursor: do not take that as a selection
        self.rank: Mapping[int, int] = {}  # pending job -> its place in the start order

    # ---- layout -----------------------------------------------------------------------

    def _columns_for(self, width: int) -> tuple[str, list[tuple[str, str, int]]]:
        narrow = width < NARROW_BELOW
        spec = NARROW if narrow else WIDE
        pad = 2 * CELL_PADDING
        fixed = sum((w or 0) + pad for _, _, w in spec)
        scrollbar = 1
        rest = max(12, width - fixed - pad - scrollbar)
        cols = [(k, label, w if w is not None else rest) for k, label, w in spec]
        name = "narrow" if narrow else f"wide{rest}"
        return name, cols

    def on_resize(self) -> None:
        self.configure(self.size.width)

    def configure(self, width: int) -> None:
        """Pick the columns for `width`; a change of layout is the one full rebuild."""
        if width <= 0:
            return
        name, cols = self._columns_for(width)
        if name == self.layout_name:
            return
        self.layout_name = name
        self.clear(columns=True)
        for key, label, w in cols:
            right = key in ("id", "loss", "eta", "runtime")
            self.add_column(Text(label, justify="right" if right else "left"), key=key, width=w)
        self._rows.clear()
        self._order = []
        if self._jobs:
            self.sync(self._jobs, self._now)

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)

    @property
    def narrow(self) -> bool:
        return self.layout_name == "narrow"

    def repaint(self) -> None:
        """Format every row again (after a theme change: colours live in the cells)."""
        for row in self._rows.values():
            row.sig = ()
            row.job = None
        if self._jobs:
            self.sync(self._jobs, self._now)

    # ---- rows -------------------------------------------------------------------------

    def _cells(self, job: Job, now: float) -> dict[str, Text]:
        p = self.palette
        narrow = self.narrow
        name = printable(job.spec.name)
        cells = {
            "id": Text(str(job.id), justify="right"),
            "name": Text(name, no_wrap=True, overflow="ellipsis"),
            "state": view.state_text(job, p),
            "gpus": view.gpus_text(job, p),
            "progress": view.progress_text(job, 19 if narrow else 22, p, with_reason=narrow),
            "loss": view.loss_text(job),
            "eta": view.eta_text(job),
        }
        if not narrow:
            cells["runtime"] = view.runtime_text(job, now)
            cells["reason"] = view.reason_text(job, p)
        return cells

    def sync(
        self,
        jobs: Sequence[Job],
        now: float,
        *,
        changed: bool = True,
        rank: Mapping[int, int] | None = None,
    ) -> None:
        """Make the rows show `jobs` (already filtered), in queue order (`rank`: the pending
        jobs' places in the scheduler's start order, when it changed).

        `changed=False` says the job list is the same as last time: only running jobs' clocks
        move, so only their runtime cells are looked at.
        """
        self._jobs, self._now = jobs, now
        if rank is not None:
            self.rank = rank
        if not self.columns:
            return
        self._syncing = True
        try:
            self._sync(jobs, now, changed)
        finally:
            self._syncing = False
        self.restore_selection()

    def _sync(self, jobs: Sequence[Job], now: float, changed: bool) -> None:
        formatted = 0
        if not changed:
            if not self.narrow:
                for job in jobs:
                    if job.state is JobState.RUNNING:
                        self._set(job.id, "runtime", view.runtime_text(job, now))
            self.rows_formatted = 0
            return
        reorder = False
        wanted = {j.id for j in jobs}
        for job_id in [i for i in self._rows if i not in wanted]:
            del self._rows[job_id]
            self.remove_row(str(job_id))
            reorder = True
        running = JobState.RUNNING
        for job in jobs:
            row = self._rows.get(job.id)
            if row is not None and row.job is job:  # the very same reading: nothing new
                if job.state is running and not self.narrow:
                    self._set(job.id, "runtime", view.runtime_text(job, now))
                continue
            sig = view.signature(job)
            key = view.order_key(job, self.rank)
            if row is None:
                cells = self._cells(job, now)
                formatted += 1
                self._rows[job.id] = _Row(sig, cells, job, key)
                self.add_row(*(cells[c] for c in self._column_keys()), key=str(job.id))
                reorder = True
                continue
            row.job = job
            if row.order_key != key:
                row.order_key = key
                reorder = True
            if row.sig != sig:
                formatted += 1
                row.sig = sig
                for col, cell in self._cells(job, now).items():
                    self._set(job.id, col, cell)
            elif job.state is running and not self.narrow:
                self._set(job.id, "runtime", view.runtime_text(job, now))
        if reorder:
            rows = self._rows
            order = sorted(wanted, key=lambda i: rows[i].order_key)
            if order != self._order:
                self._order = order
                rank = {str(i): n for n, i in enumerate(order)}
                self.sort("id", key=lambda cell: rank[cell.plain])
        self.rows_formatted = formatted

    def _column_keys(self) -> list[str]:
        return [str(k.value) for k in self.columns]

    def _set(self, job_id: int, key: str, cell: Text) -> None:
        row = self._rows.get(job_id)
        if row is None:
            return
        old = row.cells.get(key)
        if old is not None and (old.plain, old.spans, old.style) == (
            cell.plain,
            cell.spans,
            cell.style,
        ):
            return
        row.cells[key] = cell
        self.update_cell(str(job_id), key, cell)

    # ---- selection --------------------------------------------------------------------

    def restore_selection(self) -> None:
        """Keep the cursor on the same job when rows move, are added or are filtered out."""
        if not self.row_count:
            self.selected_id = None
            return
        if self.selected_id is not None:
            try:
                index = self.get_row_index(str(self.selected_id))
            except RowDoesNotExist:
                index = min(self.cursor_row, self.row_count - 1)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=True)
        self._note_selected()

    def _note_selected(self) -> None:
        if not self.row_count:
            self.selected_id = None
            return
        row = min(max(self.cursor_row, 0), self.row_count - 1)
        key = self.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value
        self.selected_id = int(key) if key is not None else None

    def watch_cursor_coordinate(self, old: Any, new: Any) -> None:
        super().watch_cursor_coordinate(old, new)
        if self.row_count and not self._syncing:
            self._note_selected()

    def action_attach(self) -> None:
        if self.selected_id is not None:
            self.post_message(self.AttachRequested(self.selected_id))
