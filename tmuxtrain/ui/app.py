"""`tmuxtrain ui`: the dashboard. GPUs on top, the queue, and the selected job's settings,
metric curve and live log below; keys act on the selected job.

All I/O happens in thread workers (`DataSource`); results come back as messages and are
applied on the UI thread by patching widgets, so a refresh never blocks typing. The app is
built by `make_app(client, ...)` from its inputs (clock, refresh period, how to run the
attach command) so tests, the screenshot script and the benchmark build it the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.widgets import DataTable, Footer

from tmuxtrain.api import Client
from tmuxtrain.core.errors import TmuxtrainError
from tmuxtrain.core.model import Job, JobState
from tmuxtrain.ui import view
from tmuxtrain.ui.add_job_screen import AddJobScreen
from tmuxtrain.ui.confirm_screen import ConfirmScreen, cancel_question
from tmuxtrain.ui.filter_bar import FilterBar
from tmuxtrain.ui.gpu_panel import GpuPanel
from tmuxtrain.ui.help_screen import HelpScreen
from tmuxtrain.ui.job_info import JobInfo
from tmuxtrain.ui.job_table import JobTable
from tmuxtrain.ui.log_screen import LogScreen
from tmuxtrain.ui.log_tail import LogTail
from tmuxtrain.ui.messages import Done, Fetched
from tmuxtrain.ui.metric_plot import MetricPlot
from tmuxtrain.ui.palette import Palette
from tmuxtrain.ui.source import DataSource, Snapshot
from tmuxtrain.ui.status_bar import StatusBar
from tmuxtrain.ui.window_jump import Runner, run_command, run_quiet, with_hint

REFRESH_S = 0.75  # about 1.3 refreshes a second
SELECT_DEBOUNCE_S = 0.12  # arrow keys held down: fetch the detail once they stop


class TmuxtrainApp(App[int]):
    """The dashboard; build it with `make_app`."""

    CSS_PATH = "app.tcss"
    TITLE = "tmuxtrain"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]  # noqa: RUF012 - Textual's
    SCREENS = {"help": HelpScreen}  # noqa: RUF012 - Textual's
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "attach", "attach", key_display="⏎"),
        Binding("c", "cancel", "cancel"),
        Binding("r", "retry", "retry"),
        Binding("plus,equals_sign", "priority(1)", "prio", key_display="+/-"),
        Binding("minus", "priority(-1)", "prio-", show=False),
        Binding("h", "hold", "hold/release", show=False),
        Binding("l", "log", "log"),
        Binding("n", "add", "add"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("u", "up", "start"),
        Binding("m", "metric", "metric", show=False),
        Binding("x", "axis", "x axis", show=False),
        Binding("t", "toggle_theme", "light/dark", show=False),
        Binding("question_mark", "push_screen('help')", "keys", key_display="?"),
        Binding("q", "quit", "quit"),
        # Ctrl-C quits, as in any terminal program (Textual's default only shows a toast).
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(
        self,
        client: Client,
        *,
        clock: Callable[[], float] = time.time,
        refresh_s: float | None = REFRESH_S,
        run_command: Runner = run_command,
        run_quiet: Runner = run_quiet,
    ) -> None:
        super().__init__()
        self.source = DataSource(client)
        self.clock = clock
        self.refresh_s = refresh_s
        self.run_command = run_command
        self.run_quiet = run_quiet
        self.palette = Palette.default()
        self.jobs: Sequence[Job] = ()
        self.by_id: dict[int, Job] = {}
        self.scheduler: dict[str, Any] = {"running": False, "pid": None}
        self.loads = 0  # snapshots applied (tests wait on it)
        self.last_error = ""
        self.notes: list[tuple[str, str]] = []  # (severity, message) of notifications
        self._fetching = False
        self._again = False  # a refresh was asked for while one ran
        self._fresh_detail = True  # the next fetch re-reads the selected job's history and log
        self._shown_detail: int | None = None  # the job whose plot and log are on screen
        self._select_timer: Any = None
        self._hinted = False  # the way back from a job window was shown
        self.table = JobTable(id="jobs")  # replaced by compose; here so it always exists

    # ---- building ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: a refresh that lands while the app closes finds them detached
        # (harmless) instead of failing a query.
        self.status_bar = StatusBar(id="status")
        self.gpu_panel = GpuPanel(id="gpus")
        self.table = JobTable(id="jobs")
        self.info = JobInfo(id="info")
        self.plot = MetricPlot(id="plot")
        self.tail = LogTail(id="tail")
        self.filter_bar = FilterBar(id="filter")
        yield self.status_bar
        yield self.gpu_panel
        yield self.table
        with Horizontal(id="detail"):
            yield self.info
            yield self.plot
            yield self.tail
        yield self.filter_bar
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.filter_bar.display = False
        self._apply_palette()
        self.theme_changed_signal.subscribe(self, lambda _theme: self._apply_palette(True))
        self.table.focus()
        self.refresh_now(force=True)
        if self.refresh_s:
            self.set_interval(self.refresh_s, self.refresh_now)

    def _apply_palette(self, repaint: bool = False) -> None:
        """Cells and bars carry concrete colours: recolour them for the new theme."""
        self.palette = Palette.from_variables(self.theme_variables, dark=self.current_theme.dark)
        for widget in self.query("StatusBar, GpuPanel, JobTable, JobInfo, MetricPlot, LogTail"):
            widget.palette = self.palette  # type: ignore[attr-defined]
            widget.refresh()
        if repaint:
            self.table.repaint()

    # ---- refreshing -------------------------------------------------------------------

    def refresh_now(self, force: bool = False) -> None:
        """Start a refresh in a worker thread, unless one is running (then once more after)."""
        if self._fetching:
            self._again = True
            return
        if not self.table.is_attached:  # not composed yet, or a timer during shutdown
            return
        selected = self.table.selected_id
        self._fetching = True
        fresh, self._fresh_detail = self._fresh_detail, False
        self._fetch(selected, force, fresh)

    @work(thread=True, group="refresh", exit_on_error=False)
    def _fetch(self, selected: int | None, force: bool, fresh: bool) -> None:
        try:
            snap = self.source.fetch(selected, force=force, fresh=fresh)
            self.post_message(Fetched(snap, selected))
        except Exception as e:  # shown once as a notification; the next tick tries again
            self.post_message(Fetched(None, selected, f"{type(e).__name__}: {e}"))

    def on_fetched(self, message: Fetched) -> None:
        self._fetching = False
        if not self.table.is_attached:  # the app is closing
            return
        if message.snap is not None:
            self.apply_snapshot(message.snap, message.selected)
        elif message.error != self.last_error:
            self.last_error = message.error
            self.notify(message.error, title="refresh failed", severity="error")
        if self._again:
            self._again = False
            self.refresh_now()

    def visible_jobs(self) -> Sequence[Job]:
        words = self.filter_bar.words
        return [j for j in self.jobs if view.matches(j, words)] if words else self.jobs

    def apply_snapshot(self, snap: Snapshot, selected: int | None) -> None:
        """Patch every widget from one snapshot (UI thread)."""
        now = self.clock()
        changed = snap.jobs is not None
        if snap.jobs is not None:
            self.jobs = snap.jobs
            self.by_id = {j.id: j for j in snap.jobs}
        self.table.sync(self.visible_jobs(), now, changed=changed, rank=snap.order)
        if snap.scheduler != self.scheduler:
            self.scheduler = snap.scheduler
            self.refresh_bindings()
        self.status_bar.show(snap.scheduler, snap.counts, snap.gpu_note, self.filter_bar.value)
        names = {j.id: j.spec.name for j in self.jobs if j.state is JobState.RUNNING}
        self.gpu_panel.show(snap.gpus, names, snap.gpu_note)
        current = self.table.selected_id
        self.info.show(self.by_id.get(current) if current else None, now)
        if selected == current and current is not None:
            if snap.history is not None and snap.history[0] == current:
                self.plot.show(current, snap.history[1])
            if snap.log is not None and snap.log.job_id == current:
                self.tail.feed(current, snap.log.text, snap.log.reset)
            self._shown_detail = current
        elif current != self._shown_detail:
            self._fresh_detail = True  # read for another job: read this one's from scratch
            self._again = True
        self.loads += 1

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """App.notify, in plain text (names may hold '['), kept in `notes` (the last 50)."""
        self.notes.append((severity, message))
        del self.notes[:-50]
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def is_settled(self) -> bool:
        """Loaded, nothing in flight, and the selected job's detail on screen (tests and the
        screenshot wait for this instead of sleeping)."""
        if self.loads < 1 or self._fetching or self._again or self._fresh_detail:
            return False
        if self.workers and any(w.group == "refresh" and w.is_running for w in self.workers):
            return False
        return self.table.selected_id == self._shown_detail

    # ---- selection --------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#jobs")
    def _highlighted(self) -> None:
        self._selection_changed()

    def _selection_changed(self) -> None:
        """Show what is known of the newly selected job now; fetch its detail shortly."""
        job_id = self.table.selected_id
        if job_id == self._shown_detail:
            return
        self.info.show(self.by_id.get(job_id) if job_id else None, self.clock())
        self.plot.show(job_id, {})
        self.tail.reset(job_id)
        self._shown_detail = None
        self._fresh_detail = True
        if self._select_timer is not None:
            self._select_timer.stop()
        self._select_timer = self.set_timer(SELECT_DEBOUNCE_S, self.refresh_now)

    def selected_job(self) -> Job | None:
        job_id = self.table.selected_id
        return self.by_id.get(job_id) if job_id is not None else None

    # ---- actions ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "quit":
            return True
        if len(self.screen_stack) > 1:  # the log view or a dialog: job keys do not apply
            return False
        if action == "up":  # only offered (and shown) while the scheduler is down
            return not self.scheduler.get("running")
        return True

    @work(thread=True, group="action", exit_on_error=False)
    def _act(self, what: str, fn: Callable[[Client], Any], ok: Callable[[Any], str]) -> None:
        """Run one action on the action client; report back as a Done message."""
        try:
            self.post_message(Done(ok(self.source.act(fn))))
        except TmuxtrainError as e:
            self.post_message(Done(str(e), error=True))
        except Exception as e:  # anything else: say so, keep the dashboard alive
            self.post_message(Done(f"{what} failed: {type(e).__name__}: {e}", error=True))

    def on_done(self, message: Done) -> None:
        if message.attach is not None:
            self._go_to_window(message.attach)
            return
        if message.refused is not None:  # the add dialog again, with the path and why
            self.push_screen(AddJobScreen(value=message.refused, error=message.text), self._added)
            return
        if message.text:
            self.notify(message.text, severity="error" if message.error else "information")
        self.refresh_now()

    def action_attach(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        if not job.tmux_window:
            why = "has not started yet" if job.state is JobState.PENDING else "has no window"
            self.notify(f"job {job.id} {why}; press l for its log", severity="warning")
            return
        self._attach_argv(job.id)

    @on(JobTable.AttachRequested)
    def _attach_requested(self, message: JobTable.AttachRequested) -> None:
        self.action_attach()

    @work(thread=True, group="action", exit_on_error=False)
    def _attach_argv(self, job_id: int) -> None:
        try:
            argv = self.source.act(lambda c: c.attach_argv(job_id))
        except Exception as e:
            self.post_message(Done(str(e), error=True))
            return
        self.post_message(Done("", attach=argv))

    def _go_to_window(self, argv: list[str]) -> None:
        """Inside tmux on the jobs' server: switch this client to the job's window (the
        dashboard keeps running; the usual tmux keys come back). Elsewhere: give the terminal
        to `tmux attach` until the user detaches, then come back (said once, by tmux)."""
        if not self._hinted:
            self._hinted = True
            argv = with_hint(argv)
        if "switch-client" in argv:
            self._switch(argv)
            return
        try:
            with self.suspend():
                self.run_command(argv)
        except SuspendNotSupported:
            self.notify("cannot leave the dashboard in this terminal", severity="error")
        self.refresh_now(force=True)

    @work(thread=True, group="action", exit_on_error=False)
    def _switch(self, argv: list[str]) -> None:
        proc = self.run_quiet(argv)
        if proc.returncode != 0:
            err = (proc.stderr or "").strip() or f"exit {proc.returncode}"
            self.post_message(Done(f"tmux: {err}", error=True))

    def action_cancel(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        if job.state.finished:
            self.notify(f"job {job.id} already {job.state.value}", severity="warning")
            return
        what = "stop" if job.state is JobState.RUNNING else "drop"

        def answer(yes: bool | None) -> None:
            if yes:
                self._act(
                    "cancel", lambda c: c.cancel([job.id]), lambda _: f"{what}ping job {job.id}"
                )

        self.push_screen(ConfirmScreen(cancel_question(job), yes="Cancel job"), answer)

    def action_retry(self) -> None:
        job = self.selected_job()
        if job is not None:
            self._act("retry", lambda c: c.retry(job.id), lambda i: f"job {i} queued again")

    def action_priority(self, delta: int) -> None:
        job = self.selected_job()
        if job is None:
            return
        new = job.spec.priority + delta
        self._act(
            "priority",
            lambda c: c.set_priority(job.id, new),
            lambda i: f"job {i}: priority {new}",
        )

    def action_hold(self) -> None:
        """Keep a pending job from starting, or let a held one start (h toggles)."""
        job = self.selected_job()
        if job is None:
            return
        hold = not job.held
        self._act(
            "hold",
            lambda c: c.hold([job.id], hold),
            lambda _: f"job {job.id} {'held' if hold else 'released'}",
        )

    def action_log(self) -> None:
        job = self.selected_job()
        if job is not None:
            screen = LogScreen(self.source, job.id, job.spec.name, job.log_path, self.refresh_s)
            self.push_screen(screen)

    def action_add(self) -> None:
        self.push_screen(AddJobScreen(), self._added)

    def _added(self, path: str | None) -> None:
        if path:
            self._add_file(path)

    @work(thread=True, group="action", exit_on_error=False)
    def _add_file(self, path: str) -> None:
        """Queue a file's jobs; a refused file comes back to the dialog with the typed path."""
        try:
            ids = self.source.act(lambda c: c.add_files([path]))
        except Exception as e:
            why = str(e) if isinstance(e, TmuxtrainError) else f"{type(e).__name__}: {e}"
            self.post_message(Done(why, error=True, refused=path))
            return
        self.post_message(
            Done(f"queued job{'s' if len(ids) > 1 else ''} " + ", ".join(map(str, ids)))
        )

    def action_up(self) -> None:
        self._act(
            "start",
            lambda c: c.up(),
            lambda started: "scheduler started" if started else "scheduler already running",
        )

    def action_filter(self) -> None:
        bar = self.filter_bar
        bar.display = True
        # Focus now, not on the next turn of the queue: keys typed right after / (a paste,
        # tmux send-keys) must land in the box, not run as commands.
        self.screen.set_focus(bar)

    @on(FilterBar.Changed, "#filter")
    def _filter_changed(self) -> None:
        self.table.sync(self.visible_jobs(), self.clock())
        self.status_bar.set_filter(self.filter_bar.value)
        if self.table.selected_id is None:
            self._selection_changed()

    @on(FilterBar.Done)
    def _filter_done(self) -> None:
        bar = self.filter_bar
        if not bar.value:
            bar.display = False
        self.table.focus()

    def action_metric(self) -> None:
        self.plot.cycle()

    def action_axis(self) -> None:
        self.plot.toggle_axis()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    async def action_quit(self) -> None:
        self.exit(0)


def make_app(
    client: Client,
    *,
    clock: Callable[[], float] = time.time,
    refresh_s: float | None = REFRESH_S,
    run_command: Runner = run_command,
    run_quiet: Runner = run_quiet,
    theme: str | None = None,
) -> TmuxtrainApp:
    """The dashboard for `client`. Tests pass a frozen `clock`, `refresh_s=None` (refresh
    only on demand) and a recording `run_command`."""
    app = TmuxtrainApp(
        client, clock=clock, refresh_s=refresh_s, run_command=run_command, run_quiet=run_quiet
    )
    if theme:
        app.theme = theme
    return app


def run_ui(client: Client) -> int:
    """`tmuxtrain ui`: run the dashboard until q; the exit status."""
    app = make_app(client)
    try:
        app.run()
    finally:
        app.source.close()
    return app.return_code or 0
