"""One exception root; the CLI turns any of these into a one-line message and exit status 2."""

from __future__ import annotations


class TmuxtrainError(Exception):
    """Base of every error meant for a user: its str() is the whole message."""

    exit_code = 2


class SpecError(TmuxtrainError):
    """A job or config file is wrong: names the file, the line (when known) and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        self.path, self.line, self.field, self.message = path, line, field, message
        where = path if line is None else f"{path}:{line}"
        what = f"{field}: {message}" if field else message
        # One line, whatever the file held (a key may contain a newline).
        super().__init__(f"{where}: {what}".replace("\r", "\\r").replace("\n", "\\n"))


class NotFound(TmuxtrainError):
    """An id or name that names no job."""


class StateError(TmuxtrainError):
    """The job is not in a state that allows the action (e.g. retry of a running job)."""


class NotStarted(TmuxtrainError):
    """Jobs were queued (`ids`), but the scheduler that would run them did not start: the
    CLI prints the ids anyway (so nobody queues them twice) and exits 3."""

    exit_code = 3

    def __init__(self, ids: list[int], message: str) -> None:
        super().__init__(message)
        self.ids = ids
