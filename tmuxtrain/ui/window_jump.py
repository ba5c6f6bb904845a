"""Going to a job's tmux window from the dashboard: the commands that run it, and the
one-time hint, shown by tmux in the job window's status line, of how to come back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[Any]"]

# tmux expands #{prefix} to the user's own prefix key (C-b unless they changed it).
BACK_OUTSIDE = "tmuxtrain: detach with #{prefix} d to come back to the dashboard"
BACK_INSIDE = (
    "tmuxtrain: back to the dashboard with #{prefix} L (last session) or #{prefix} l (last window)"
)
HINT_MS = 6000  # how long tmux shows it


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[Any]:
    """Run the attach command on the user's terminal (the app is suspended meanwhile)."""
    return subprocess.run(list(argv), check=False)


def run_quiet(argv: Sequence[str]) -> subprocess.CompletedProcess[Any]:
    """Run a tmux command that must not touch the terminal (switch-client)."""
    return subprocess.run(list(argv), check=False, capture_output=True, text=True)


def with_hint(argv: Sequence[str]) -> list[str]:
    """The tmux command `argv` (`select-window ; attach-session` or `; switch-client`),
    followed by a message on the client it moved, saying how to come back."""
    text = BACK_INSIDE if "switch-client" in argv else BACK_OUTSIDE
    return [*argv, ";", "display-message", "-d", str(HINT_MS), text]
