"""Fair-share usage for the scheduler: each project's decayed GPU-seconds (see
`core.fairshare`), kept up to date without re-reading the history every decision.

On its first use it reads the attempts that finished within the last 40 half-lives (older
ones weigh under 2^-40); after that only the attempt records added since, by row. Running
jobs are counted to `now` from their start. A restarted scheduler reads it all again, so
nothing of it needs to be stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from tmuxtrain.core.fairshare import Usage
from tmuxtrain.core.model import Job
from tmuxtrain.store import Store

HORIZON = 40  # half-lives of history read on start


class UsageTracker:
    def __init__(self, store: Store, half_life: float) -> None:
        self.store = store
        self.usage = Usage(half_life)
        self.last_row = 0
        self.loaded = False

    def of(self, running: Sequence[Job], now: float) -> dict[str, float]:
        """Decayed GPU-seconds per project at `now`."""
        history = self.store.history
        if self.loaded:
            rows = history.finished_usage(self.last_row, 0.0)
        else:  # (this scheduler is the only writer of attempt records)
            last = history.last_attempt_row()
            rows = history.finished_usage(0, now - HORIZON * self.usage.half_life)
            self.last_row, self.loaded = last, True
        for row, project, started, finished, share in rows:
            self.usage.add(project, share, started, finished, now)
            self.last_row = max(self.last_row, row)
        return self.usage.of(running, now)
