"""A job's whole log (its newest 8 MiB), following live, with search (/, n, N)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, Log, Static

from tmuxtrain.ui.source import clean_log

if TYPE_CHECKING:
    from tmuxtrain.ui.source import DataSource

MATCH = Style(reverse=True, bold=True)


class QueryHighlighter(Highlighter):
    """Marks every occurrence of the search words (case-insensitive)."""

    def __init__(self) -> None:
        self.words = ""

    def highlight(self, text: Text) -> None:
        if self.words:
            text.highlight_words([self.words], MATCH, case_sensitive=False)


class SearchLog(Log):
    """A Log whose highlighting follows the search."""

    def __init__(self, **kw: object) -> None:
        super().__init__(highlight=True, auto_scroll=True, **kw)  # type: ignore[arg-type]
        self.highlighter = QueryHighlighter()

    def set_query(self, query: str) -> None:
        assert isinstance(self.highlighter, QueryHighlighter)
        self.highlighter.words = query
        self._render_line_cache.clear()  # cached lines carry the old highlighting
        self.refresh()


class LogScreen(Screen[None]):
    """Opened with l on a job; q or Esc goes back to the dashboard."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "back"),
        Binding("slash", "search", "search"),
        Binding("n", "next_match(1)", "next"),
        Binding("N", "next_match(-1)", "previous"),
        Binding("G,end", "follow", "follow"),
        Binding("g,home", "top", "top", show=False),
    ]

    def __init__(
        self, source: DataSource, job_id: int, name: str, path: str, refresh_s: float | None
    ) -> None:
        super().__init__()
        self.source = source
        self.job_id = job_id
        self.job_name = name
        self.path = path
        self.refresh_s = refresh_s
        self.read_to = 0
        self.search_text = ""
        self.current_line = -1
        self._reading = False

    def compose(self) -> ComposeResult:
        yield Static(f" log of job {self.job_id} · {self.job_name} · {self.path}", id="log-title")
        yield SearchLog(id="full-log")
        yield Input(placeholder="search (Enter: next match, Esc: back to the log)", id="search")
        yield Static("", id="log-status")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#search").display = False
        self.query_one(SearchLog).focus()
        self._read()
        if self.refresh_s:
            self.set_interval(self.refresh_s, self._read)

    @property
    def log_view(self) -> SearchLog:
        return self.query_one(SearchLog)

    def _read(self) -> None:
        if not self._reading:
            self._reading = True
            self._read_worker()

    @work(thread=True, group="log-read")
    def _read_worker(self) -> None:
        try:
            text, end = self.source.read_whole_log(self.path, self.read_to)
        finally:
            self._reading = False
        if end != self.read_to or text:
            self.app.call_from_thread(self._append, text, end)

    def _append(self, text: str, end: int) -> None:
        if end < self.read_to:  # the file was replaced: start over
            self.log_view.clear()
        self.read_to = end
        if text:
            self.log_view.write_lines(clean_log(text.rstrip("\n")))
        self._status()

    def _status(self) -> None:
        lines = self.log_view.line_count
        found = self._matches()
        where = ""
        if self.search_text:
            pos = found.index(self.current_line) + 1 if self.current_line in found else 0
            what = f" · '{self.search_text}'"
            where = f"{what}: {pos}/{len(found)} matches" if found else f"{what}: no match"
        self.query_one("#log-status", Static).update(f" {lines} lines{where}")

    def _matches(self) -> list[int]:
        if not self.search_text:
            return []
        q = self.search_text.lower()
        return [i for i, line in enumerate(self.log_view.lines) if q in line.lower()]

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.value = self.search_text
        self.set_focus(box)  # now: keys typed right after / belong to the search

    @on(Input.Submitted, "#search")
    def _searched(self, event: Input.Submitted) -> None:
        if event.value != self.search_text:
            self.search_text = event.value
            self.current_line = -1
            self.log_view.set_query(self.search_text)
        event.input.display = False  # as in less: back to the text, where n and N move
        self.log_view.focus()
        self.action_next_match(1)

    def action_next_match(self, direction: int) -> None:
        found = self._matches()
        if not found:
            self._status()
            return
        if direction > 0:
            later = [i for i in found if i > self.current_line]
            self.current_line = later[0] if later else found[0]
        else:
            earlier = [i for i in found if i < self.current_line]
            self.current_line = earlier[-1] if earlier else found[-1]
        self.log_view.auto_scroll = False
        top = max(0, self.current_line - self.log_view.size.height // 2)
        self.log_view.scroll_to(y=top, animate=False)
        self._status()

    def action_follow(self) -> None:
        self.log_view.auto_scroll = True
        self.log_view.scroll_end(animate=False)

    def action_top(self) -> None:
        self.log_view.auto_scroll = False
        self.log_view.scroll_home(animate=False)

    def action_close(self) -> None:
        box = self.query_one("#search", Input)
        if box.has_focus:  # Esc in the search box: back to the log, keep the highlights
            box.display = False
            self.log_view.focus()
            return
        self.dismiss()
