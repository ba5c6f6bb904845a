"""The `/` filter: words that every shown job must contain (id, name, state, project)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    """Filters as you type; Enter keeps the filter and goes back to the table, Esc clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    class Done(Message):
        """The user finished with the filter box (kept or cleared)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(
            placeholder="filter: words in id, name, state, project (Enter keeps, Esc clears)",
            **kw,  # type: ignore[arg-type]
        )

    @property
    def words(self) -> list[str]:
        return self.value.lower().split()

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(self.Done())

    async def action_submit(self) -> None:
        self.post_message(self.Done())
